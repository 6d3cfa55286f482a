"""The one exporter handle: serve a component's collector on /metrics, know its port, stop it."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server

from inferwatch.kit.selfmetrics import ComponentCollector, InstrumentedCollector


@dataclass
class Exporter:
    """A running exporter. `collector` is the component's own (unwrapped) collector."""

    collector: Any
    address: str
    port: int
    _server: Any
    _thread: threading.Thread

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.address in ("0.0.0.0", "") else self.address
        return f"http://{host}:{self.port}/metrics"

    def stop(self) -> None:
        """Stop serving, then release the collector's threads and handles."""
        self._server.shutdown()
        self._server.server_close()
        self.collector.close()


def registry_for(collector: ComponentCollector) -> CollectorRegistry:
    """A fresh registry with the collector (self-metrics included) and process metrics."""
    registry = CollectorRegistry()
    registry.register(InstrumentedCollector(collector))
    ProcessCollector(registry=registry)
    return registry


def serve(collector: ComponentCollector, address: str, port: int) -> Exporter:
    """Serve `collector` in background threads; port 0 = any free port. OSError if the port is taken."""
    server, thread = start_http_server(port, addr=address, registry=registry_for(collector))
    return Exporter(collector, address, server.server_address[1], server, thread)
