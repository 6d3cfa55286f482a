"""Serving a collector on /metrics: the one piece every exporter shares."""

from __future__ import annotations

import threading
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
from prometheus_client.registry import Collector


def serve(collector: Collector, address: str, port: int) -> tuple[Any, threading.Thread, int]:
    """Register `collector` (and process metrics) in a fresh registry and serve it; port 0 = any free port."""
    registry = CollectorRegistry()
    registry.register(collector)
    ProcessCollector(registry=registry)
    server, thread = start_http_server(port, addr=address, registry=registry)
    return server, thread, server.server_address[1]
