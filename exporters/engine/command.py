"""Serve serving-engine health metrics on /metrics: health, served models, versions, redundancy."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from typing import Any

from inferwatch.config import InferwatchConfig
from inferwatch.exporters.gpu.command import overrides
from inferwatch.kit.commands import EXIT_USAGE, CommandError, reload_section, serve_until_signal

log = logging.getLogger(__name__)

HELP = "probe serving endpoints: health, models, versions, redundancy"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, help="listen port (overrides engine_exporter.port)")
    parser.add_argument("--listen-address", help="listen address (overrides engine_exporter.listen_address)")
    parser.add_argument("--web.config.file", dest="web_config_file", metavar="FILE",
                        help="TLS and basic auth, in Prometheus' web-config format")


def run(args: argparse.Namespace, config: InferwatchConfig) -> int:
    from inferwatch.exporters.engine import server

    keys = ("port", "listen_address", "web_config_file")
    cfg = dataclasses.replace(config.engine_exporter, **overrides(args, *keys))
    if not cfg.endpoints:
        raise CommandError("engine_exporter.endpoints is empty: nothing to probe (see the example config)",
                           EXIT_USAGE)

    def reload(running: Any) -> None:
        from inferwatch.exporters.engine.collector import EngineCollector

        section = reload_section(args, running,
                                 lambda c: dataclasses.replace(c.engine_exporter, **overrides(args, *keys)))
        if section is not None and not section.endpoints:
            log.error("config reload: engine_exporter.endpoints is empty; keeping the running config")
            running.collector.self_metrics.config_ok = False
        elif section is not None:
            running.replace_collector(EngineCollector(section, previous=running.collector))

    return serve_until_signal(lambda: server.start(cfg), cfg.listen_address, cfg.port, reload)
