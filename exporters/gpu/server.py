"""`inferwatch gpu-exporter`: wire config to the collector and serve /metrics."""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass
from typing import Any

from inferwatch.config import GpuExporterConfig
from inferwatch.exporters.gpu.collector import GpuCollector
from inferwatch.exporters.gpu.containers import ContainerResolver
from inferwatch.exporters.gpu.nvml import load_backend
from inferwatch.exporters.http import serve

log = logging.getLogger(__name__)


@dataclass
class RunningExporter:
    collector: GpuCollector
    server: Any
    thread: threading.Thread
    port: int
    nvml: Any

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.collector.close()


def build_collector(config: GpuExporterConfig, nvml: Any = None) -> tuple[GpuCollector, Any]:
    nvml = nvml if nvml is not None else load_backend(config.simulate)
    hostname = config.hostname or os.environ.get("NODE_NAME") or socket.gethostname()
    containers = ContainerResolver(config.proc_root, config.docker_socket) if config.process_attribution else None
    collector = GpuCollector(
        nvml,
        hostname=hostname,
        naming=config.naming,
        timeout_seconds=config.nvml_timeout_seconds,
        xid_events=config.xid_events,
        containers=containers,
        max_containers_per_gpu=config.max_containers_per_gpu,
    )
    return collector, nvml


def start(config: GpuExporterConfig, nvml: Any = None) -> RunningExporter:
    """Start serving in background threads; the caller owns the returned handle."""
    collector, nvml = build_collector(config, nvml)
    server, thread, port = serve(collector, config.listen_address, config.port)
    log.info("GPU exporter on http://%s:%d/metrics (naming=%s%s)", config.listen_address, port,
             config.naming, f", simulated: {config.simulate}" if config.simulate else "")
    return RunningExporter(collector, server, thread, port, nvml)
