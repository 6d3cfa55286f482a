"""The one exporter handle: serve a component's collector on /metrics, know its port, stop it."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.exposition import choose_encoder

from inferwatch.kit.selfmetrics import ComponentCollector, InstrumentedCollector
from inferwatch.kit.web import Route, WebConfig, WebServer, serve_forever_in_thread

LANDING = b"<html><head><title>inferwatch</title></head><body><a href=\"/metrics\">Metrics</a></body></html>\n"


@dataclass
class Exporter:
    """A running exporter. `collector` is the component's own (unwrapped) collector."""

    collector: Any
    address: str
    port: int
    server: WebServer
    _thread: threading.Thread
    _instrumented: InstrumentedCollector

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.address in ("0.0.0.0", "", "::") else self.address
        scheme = "https" if self.server.tls else "http"
        return f"{scheme}://{host}:{self.port}/metrics"

    def replace_collector(self, collector: ComponentCollector, grace_seconds: float = 10.0) -> None:
        """Serve a new collector (a reloaded config) from the next scrape on; close the old one once
        scrapes already running on it are done (`grace_seconds` later)."""
        old = self.collector
        self._instrumented.swap(collector)
        self.collector = collector
        closer = threading.Timer(grace_seconds, old.close)
        closer.daemon = True
        closer.start()

    def stop(self) -> None:
        """Stop serving, then release the collector's threads and handles."""
        self.server.shutdown()
        self.server.server_close()
        self.collector.close()


def registry_for(collector: ComponentCollector | InstrumentedCollector) -> CollectorRegistry:
    """A fresh registry with the collector (self-metrics included) and process metrics."""
    registry = CollectorRegistry()
    registry.register(collector if isinstance(collector, InstrumentedCollector) else InstrumentedCollector(collector))
    ProcessCollector(registry=registry)
    return registry


def metrics_route(registry: CollectorRegistry) -> Any:
    def route(handler: Any) -> tuple[int, str, bytes]:
        encoder, content_type = choose_encoder(handler.headers.get("Accept", ""))
        return 200, content_type, encoder(registry)

    return route


def serve(collector: ComponentCollector, address: str, port: int, web: WebConfig | None = None,
          routes: dict[str, Route] | None = None, post_routes: dict[str, Route] | None = None) -> Exporter:
    """Serve `collector` in background threads; port 0 = any free port. OSError if the port is taken.

    `routes`: a component's own GET paths (the probe exporter's `/probe`) besides `/metrics` and `/`;
    `post_routes` its POST paths (the feedback service's `/v1/feedback`).
    """
    instrumented = InstrumentedCollector(collector)
    routes = {**(routes or {}), "/metrics": metrics_route(registry_for(instrumented)),
              "/": lambda handler: (200, "text/html; charset=utf-8", LANDING)}
    server = WebServer((address, port), routes, web, post_routes=post_routes)
    thread = serve_forever_in_thread(server, f"http-{server.port}")
    return Exporter(collector, address, server.port, server, thread, instrumented)
