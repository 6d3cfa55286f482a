"""Start the demo stack on loopback (real vLLM, exporters, Prometheus, Alertmanager) until Ctrl-C."""

from __future__ import annotations

import argparse

from inferwatch.config import InferwatchConfig

HELP = "run the local demo stack (vLLM, exporters, Prometheus, Alertmanager)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", help="where configs, data and logs go (default: a new temp dir)")
    parser.add_argument("--duration", type=float, default=0, help="stop after this many seconds (0 = until Ctrl-C)")
    parser.add_argument("--no-engine", action="store_true", help="skip vLLM and the engine exporter (GPU only)")
    parser.add_argument("--load-seconds", type=float, default=15, help="seconds of injected load (default 15)")
    parser.add_argument("--previews", metavar="DIR",
                        help="where the dashboard previews (PNG) go (default: WORKDIR/dashboards)")


def run(args: argparse.Namespace, config: InferwatchConfig) -> int:
    import logging

    from inferwatch.lab.demo import run_demo

    if getattr(args, "log_level", "info") == "info":  # the demo prints its own summary: keep it readable
        logging.getLogger("inferwatch.exporters").setLevel(logging.WARNING)

    return run_demo(config, workdir=args.workdir, duration=args.duration, engine=not args.no_engine,
                    load_seconds=args.load_seconds, previews=args.previews)
