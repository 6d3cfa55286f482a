"""`inferwatch engine-exporter`: the engine collector served on /metrics through the kit."""

from __future__ import annotations

import logging

from inferwatch.config import EngineExporterConfig
from inferwatch.exporters.engine.collector import EngineCollector
from inferwatch.kit.exporter import Exporter, serve
from inferwatch.kit.web import load_web_config

log = logging.getLogger(__name__)


def start(config: EngineExporterConfig) -> Exporter:
    """Start serving in background threads; the caller owns the returned handle."""
    web = load_web_config(config.web_config_file)  # before anything starts: a bad file is a config error
    exporter = serve(EngineCollector(config), config.listen_address, config.port, web)
    log.info("engine exporter on %s probing %d endpoint(s)", exporter.url, len(config.endpoints))
    return exporter
