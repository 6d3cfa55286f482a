"""`inferwatch gpu-exporter`: the GPU collector served on /metrics through the kit."""

from __future__ import annotations

import logging
from typing import Any

from inferwatch.config import GpuExporterConfig
from inferwatch.exporters.gpu.collector import GpuCollector
from inferwatch.kit.exporter import Exporter, serve
from inferwatch.kit.web import load_web_config

log = logging.getLogger(__name__)


def start(config: GpuExporterConfig, nvml: Any = None) -> Exporter:
    """Start serving in background threads; the caller owns the returned handle."""
    web = load_web_config(config.web_config_file)  # before anything starts: a bad file is a config error
    exporter = serve(GpuCollector(config, nvml), config.listen_address, config.port, web)
    log.info("GPU exporter on %s (naming=%s%s)", exporter.url, config.naming,
             f", simulated: {config.simulate}" if config.simulate else "")
    return exporter
