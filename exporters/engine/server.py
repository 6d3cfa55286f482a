"""`inferwatch engine-exporter`: wire config to the collector and serve /metrics."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from inferwatch.config import EngineExporterConfig
from inferwatch.exporters.engine.collector import EngineCollector
from inferwatch.exporters.http import serve

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
    server, thread, port = serve(collector, config.listen_address, config.port)
    log.info("engine exporter on http://%s:%d/metrics probing %d endpoint(s)", config.listen_address, port,
             len(config.endpoints))
    return RunningEngineExporter(collector, server, thread, port)
