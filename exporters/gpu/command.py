"""Serve GPU metrics from NVML on /metrics (dcgm-exporter parity)."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from inferwatch.config import InferwatchConfig
from inferwatch.kit.commands import EXIT_USAGE, CommandError, reload_section, serve_until_signal

HELP = "serve GPU metrics from NVML (dcgm-exporter parity)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, help="listen port (overrides gpu_exporter.port)")
    parser.add_argument("--listen-address", help="listen address (overrides gpu_exporter.listen_address)")
    parser.add_argument("--naming", choices=["inferwatch", "dcgm"], help="metric names: ours or dcgm-exporter's")
    parser.add_argument("--simulate", metavar="SCENARIO",
                        help="use a simulated NVML scenario instead of the driver (demo/testing); "
                        "see `inferwatch gpu-scenarios`")
    parser.add_argument("--web.config.file", dest="web_config_file", metavar="FILE",
                        help="TLS and basic auth, in Prometheus' web-config format")


def run(args: argparse.Namespace, config: InferwatchConfig) -> int:
    from inferwatch.exporters.gpu import server

    keys = ("port", "listen_address", "naming", "simulate", "web_config_file")
    cfg = dataclasses.replace(config.gpu_exporter, **overrides(args, *keys))

    def start() -> object:
        try:
            return server.start(cfg)
        except ValueError as exc:  # an unknown simulated scenario
            raise CommandError(str(exc), EXIT_USAGE) from None

    def reload(running: Any) -> None:
        from inferwatch.exporters.gpu.collector import GpuCollector

        section = reload_section(args, running, lambda c: dataclasses.replace(c.gpu_exporter, **overrides(args, *keys)))
        if section is not None:
            running.replace_collector(GpuCollector(section, self_metrics=running.collector.self_metrics))

    return serve_until_signal(start, cfg.listen_address, cfg.port, reload)


def overrides(args: argparse.Namespace, *keys: str) -> dict:
    """Command-line flags win over the config file."""
    return {key: getattr(args, key) for key in keys if getattr(args, key) is not None}
