"""`inferwatch engine-exporter`: wire config to the collector and serve /metrics."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server

from inferwatch.config import EngineExporterConfig
from inferwatch.exporters.engine.collector import EngineCollector

log = logging.getLogger(__name__)


@dataclass
class RunningEngineExporter:
    collector: EngineCollector
    server: Any
    thread: threading.Thread
    port: int

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.collector.close()


def start(config: EngineExporterConfig) -> RunningEngineExporter:
    collector = EngineCollector(config)
    registry = CollectorRegistry()
    registry.register(collector)
    ProcessCollector(registry=registry)
    server, thread = start_http_server(config.port, addr=config.listen_address, registry=registry)
    port = server.server_address[1]
    log.info("engine exporter on http://%s:%d/metrics probing %d endpoint(s)", config.listen_address, port,
             len(config.endpoints))
    return RunningEngineExporter(collector, server, thread, port)
