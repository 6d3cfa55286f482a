"""`inferwatch engine-exporter`: the engine collector served on /metrics through the kit."""

from __future__ import annotations

import logging

from inferwatch.config import EngineExporterConfig
from inferwatch.exporters.engine.collector import EngineCollector
from inferwatch.kit.exporter import Exporter, serve

log = logging.getLogger(__name__)


def start(config: EngineExporterConfig) -> Exporter:
    """Start serving in background threads; the caller owns the returned handle."""
    exporter = serve(EngineCollector(config), config.listen_address, config.port)
    log.info("engine exporter on %s probing %d endpoint(s)", exporter.url, len(config.endpoints))
    return exporter
