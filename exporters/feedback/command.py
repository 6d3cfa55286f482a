"""Receive user feedback over HTTP and export it as Prometheus series (POST /v1/feedback).

Ratings are counted by model, the version that served the request, score and bounded value; the
request id rides as an exemplar. Negatively rated requests are kept on disk for retraining
(`inferwatch feedback export`).
"""

from __future__ import annotations

import argparse

from inferwatch.config import FeedbackServerConfig, InferwatchConfig
from inferwatch.kit.commands import (
    add_listen_arguments,
    checked_section,
    checking_reload,
    listen_overrides,
    serve_until_signal,
)

HELP = "receive user feedback (POST /v1/feedback) and export it as Prometheus series"
KEYS = ("store_dir", "prometheus_url", "bearer_token_file")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_listen_arguments(parser, "feedback_server", 9838)
    parser.add_argument("--store-dir", dest="store_dir", metavar="DIR",
                        help="keep negatively rated request ids here (overrides feedback_server.store_dir)")
    parser.add_argument("--prometheus-url", dest="prometheus_url", metavar="URL",
                        help="resolve missing model versions from the engine exporter's series in this Prometheus")
    parser.add_argument("--bearer-token-file", dest="bearer_token_file", metavar="FILE",
                        help="clients must send Authorization: Bearer <the token in FILE>")


def run(args: argparse.Namespace, config: InferwatchConfig) -> int:
    from inferwatch.exporters.feedback import server

    cfg = configured(args, config)

    return serve_until_signal(lambda: server.start(cfg), cfg.listen_address, cfg.port,
                              checking_reload(args, "feedback_server", lambda c: configured(args, c)))


def configured(args: argparse.Namespace, config: InferwatchConfig) -> FeedbackServerConfig:
    return checked_section(config.feedback_server, "feedback_server", listen_overrides(args, *KEYS))
