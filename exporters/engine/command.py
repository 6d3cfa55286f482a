"""Serve serving-engine health metrics on /metrics: health, served models, versions, redundancy."""

from __future__ import annotations

import argparse
import dataclasses

from inferwatch.config import InferwatchConfig
from inferwatch.exporters.gpu.command import overrides
from inferwatch.kit.commands import EXIT_USAGE, CommandError, serve_until_signal

HELP = "probe serving endpoints: health, models, versions, redundancy"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, help="listen port (overrides engine_exporter.port)")
    parser.add_argument("--listen-address", help="listen address (overrides engine_exporter.listen_address)")
    parser.add_argument("--web.config.file", dest="web_config_file", metavar="FILE",
                        help="TLS and basic auth, in Prometheus' web-config format")


def run(args: argparse.Namespace, config: InferwatchConfig) -> int:
    from inferwatch.exporters.engine import server

    cfg = dataclasses.replace(config.engine_exporter, **overrides(args, "port", "listen_address", "web_config_file"))
    if not cfg.endpoints:
        raise CommandError("engine_exporter.endpoints is empty: nothing to probe (see the example config)",
                           EXIT_USAGE)
    return serve_until_signal(lambda: server.start(cfg), cfg.listen_address, cfg.port)
