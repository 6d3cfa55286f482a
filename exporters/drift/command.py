"""Compute input drift per model and export it: token-length histograms from Prometheus, and text
features from samples the application posts (POST /v1/samples); PSI, Jensen-Shannon, KS and MMD.
"""

from __future__ import annotations

import argparse
import os

from inferwatch.config import DriftExporterConfig, InferwatchConfig
from inferwatch.kit.commands import (
    add_listen_arguments,
    checked_section,
    checking_reload,
    listen_overrides,
    serve_until_signal,
)

HELP = "input drift per model (token-length histograms, posted text samples) as Prometheus series"
KEYS = ("prometheus_url", "references_dir", "interval_seconds")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_listen_arguments(parser, "drift_exporter", 9839)
    parser.add_argument("--prometheus-url", dest="prometheus_url", metavar="URL",
                        help="where the length histograms are read (overrides drift_exporter.prometheus_url)")
    parser.add_argument("--references-dir", dest="references_dir", metavar="DIR",
                        help="pinned references (overrides drift_exporter.references_dir)")
    parser.add_argument("--interval", dest="interval_seconds", type=float, metavar="SECONDS",
                        help="seconds between drift runs (default 60)")


def run(args: argparse.Namespace, config: InferwatchConfig) -> int:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy loads
    from inferwatch.exporters.drift import server
    from inferwatch.kit.extras import require

    cfg = configured(args, config)
    if cfg.samples.language:
        require("language")

    return serve_until_signal(lambda: server.start(cfg), cfg.listen_address, cfg.port,
                              checking_reload(args, "drift_exporter", lambda c: configured(args, c)))


def configured(args: argparse.Namespace, config: InferwatchConfig) -> DriftExporterConfig:
    return checked_section(config.drift_exporter, "drift_exporter", listen_overrides(args, *KEYS))
