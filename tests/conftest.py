"""Shared fixtures: one real Prometheus and one real Alertmanager per test session.

Tests add their own scrape jobs with `prometheus.set_job(...)` and query by job, so servers
are started once. Both are stopped by PID at the end of the session.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from inferwatch.config import GpuExporterConfig
from inferwatch.exporters.gpu import server as gpu_server
from inferwatch.exporters.gpu.simnvml import SimulatedNvml
from inferwatch.kit.exporter import Exporter
from inferwatch.lab.fake_openai import Behaviour, FakeOpenAI
from inferwatch.lab.stack import Alertmanager, Prometheus

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
    """Starts in-process GPU exporters on simulated scenarios and stops them afterwards.

    Process attribution reads an empty proc root unless a test passes `proc_root`: the scenarios'
    PIDs (4242, ...) may well exist on the machine running the tests.
    """

    def __init__(self, empty_proc_root: Path) -> None:
        self.running: list[Exporter] = []
        self.empty_proc_root = empty_proc_root

    def start(self, scenario: str | dict, **config) -> Exporter:
        nvml = SimulatedNvml.from_scenario(scenario)
        settings = {"listen_address": "127.0.0.1", "port": 0, "hostname": "testhost", "docker_socket": "",
                    "proc_root": str(self.empty_proc_root), **config}
        exporter = gpu_server.start(GpuExporterConfig(**settings), nvml=nvml)
        self.running.append(exporter)
        return exporter

    def stop_all(self) -> None:
        for exporter in self.running:
            exporter.collector.nv.release_hangs()
            exporter.stop()


@pytest.fixture
def gpu_exporters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GpuExporters]:
    exporters = GpuExporters(tmp_path_factory.mktemp("empty-proc"))
    yield exporters
    exporters.stop_all()


# -- the slow tier: a real vLLM (CPU build) ---------------------------------------------------

PLUGIN_CONFIG = """
slo:
  defaults: {ttft_seconds: 0.5, itl_seconds: 0.05}
"""


class Engine:
    """The session's vLLM server; tests that stop it must leave it running again."""

    def __init__(self, workdir: Path, config_path: Path):
        self.workdir, self.config_path = workdir, config_path
        self.server = None

    def start(self, seed: int = 0, **options):
        from inferwatch.lab.engine import runtime
        from inferwatch.lab.engine.server import VllmServer

        port = self.server.port if self.server else 0
        env = {"INFERWATCH_CONFIG": str(self.config_path), **options.pop("env", {})}
        self.server = VllmServer(runtime.ensure_tiny_model(seed), self.workdir, port=port, env=env,
                                 **options).start()
        return self.server

    def stop(self) -> None:
        if self.server:
            self.server.stop()


@pytest.fixture(scope="session")
def engine_runtime():
    """The engine venv and tiny model; skips (with the reason) only where vLLM cannot be installed."""
    from inferwatch.lab.engine import runtime

    try:
        runtime.ensure_venv()
        runtime.ensure_tiny_model(0)
    except (runtime.EngineUnavailable, OSError) as exc:
        pytest.skip(f"vLLM CPU engine cannot be installed here: {exc}")
    return runtime


@pytest.fixture(scope="session")
def vllm_engine(engine_runtime, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    workdir = tmp_path_factory.mktemp("vllm")
    config_path = workdir / "inferwatch.yaml"
    config_path.write_text(PLUGIN_CONFIG)
    engine = Engine(workdir, config_path)
    engine.start()
    yield engine
    engine.stop()


@pytest.fixture
def fake_engines() -> Iterator[Callable[..., FakeOpenAI]]:
    """Starts fake OpenAI-compatible engines (`Behaviour` fields as keywords); stops them after the test."""
    started: list[FakeOpenAI] = []

    def start(**fields: object) -> FakeOpenAI:
        fake = FakeOpenAI(Behaviour(**fields)).start()  # type: ignore[arg-type]
        started.append(fake)
        return fake

    yield start
    for fake in started:
        fake.stop()
