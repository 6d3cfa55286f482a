"""Shared fixtures: one real Prometheus and one real Alertmanager per test session.

Tests add their own scrape jobs with `prometheus.set_job(...)` and query by job, so servers
are started once. Both are stopped by PID at the end of the session.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from inferwatch.config import GpuExporterConfig
from inferwatch.exporters.gpu import server as gpu_server
from inferwatch.exporters.gpu.simnvml import SimulatedNvml
from inferwatch.stack import Alertmanager, Prometheus

REPO = Path(__file__).resolve().parent.parent


def _require(binary: str) -> None:
    if shutil.which(binary) is None:
        pytest.fail(f"{binary} is not installed: run the README's test command (it installs it)")


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    _require("prometheus")
    server = Prometheus(tmp_path_factory.mktemp("prometheus")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Alertmanager]:
    _require("prometheus-alertmanager")
    server = Alertmanager(tmp_path_factory.mktemp("alertmanager")).start()
    yield server
    server.stop()


class GpuExporters:
    """Starts in-process GPU exporters on simulated scenarios and stops them afterwards."""

    def __init__(self) -> None:
        self.running: list[gpu_server.RunningExporter] = []

    def start(self, scenario: str | dict, **config) -> gpu_server.RunningExporter:
        nvml = SimulatedNvml.from_scenario(scenario)
        cfg = GpuExporterConfig(listen_address="127.0.0.1", port=0, hostname="testhost",
                                docker_socket="", **config)
        exporter = gpu_server.start(cfg, nvml=nvml)
        self.running.append(exporter)
        return exporter

    def stop_all(self) -> None:
        for exporter in self.running:
            exporter.nvml.release_hangs()
            exporter.stop()


@pytest.fixture
def gpu_exporters() -> Iterator[GpuExporters]:
    exporters = GpuExporters()
    yield exporters
    exporters.stop_all()
