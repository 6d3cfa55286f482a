"""Grafana dashboards: build the JSON from the grafanalib sources, list them, preview them from a live Prometheus.

`inferwatch dashboards build [--check] [--out DIR]` needs the 'dashboards' extra (grafanalib);
`inferwatch dashboards preview --prometheus URL [--out DIR]` needs 'preview' (matplotlib) and draws
one PNG per shipped dashboard, every panel from the live data; `list` needs nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from inferwatch.config import InferwatchConfig
from inferwatch.kit import extras
from inferwatch.kit.commands import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CommandError, add_actions

HELP = "Grafana dashboards: build the JSON, list it, or preview every panel from a live Prometheus as PNGs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = add_actions(parser)
    build = add("build", "render dashboards/*.json and dashboards.libsonnet from the grafanalib sources", _build)
    build.add_argument("--out", metavar="DIR", help="output directory (default: the package's dashboards folder)")
    build.add_argument("--check", action="store_true", help="write nothing; exit 1 listing the stale files")
    add("list", "the shipped dashboards: file, uid, title, panels", _list)
    preview = add("preview", "draw every panel of every dashboard from a live Prometheus, one PNG each", _preview)
    preview.add_argument("--prometheus", required=True, metavar="URL", help="Prometheus base URL")
    preview.add_argument("--out", default="dashboard-previews", metavar="DIR", help="default: ./dashboard-previews")
    preview.add_argument("--range", dest="time_range", default="30m", help="time range ending now (default 30m)")
    preview.add_argument("--scrape-interval", default="15s",
                         help="the data source's scrape interval, for $__rate_interval (default 15s, Grafana's)")
    preview.add_argument("--dashboard", action="append", metavar="NAME", help="only these (fleet, engine, ...)")


def run(args: argparse.Namespace, config: InferwatchConfig) -> int:
    return args.action(args, config)


def _seconds(text: str, key: str) -> float:
    from inferwatch.kit.timeparse import parse_duration

    try:
        return parse_duration(text, key)
    except ValueError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None


def _build(args: argparse.Namespace, config: InferwatchConfig) -> int:
    extras.require("dashboards")
    from inferwatch.dashboards import build

    out = Path(args.out) if args.out else build.SOURCE_DIR
    try:
        stale = build.stale(out)
        if args.check:
            if stale:
                print("stale (run `inferwatch dashboards build`): " + ", ".join(str(out / n) for n in stale),
                      file=sys.stderr)
                return EXIT_FAILED
            print("up to date")
            return EXIT_OK
        out.mkdir(parents=True, exist_ok=True)
        build.write(out)
    except ValueError as exc:
        raise CommandError(f"a dashboard breaks the import checks: {exc}") from None
    except OSError as exc:
        raise CommandError(f"cannot write dashboards under {out}: {exc.strerror or exc}") from None
    print("up to date" if not stale else "wrote " + ", ".join(str(out / n) for n in stale))
    return EXIT_OK


def _list(args: argparse.Namespace, config: InferwatchConfig) -> int:
    from inferwatch import assets
    from inferwatch.dashboards.check import panels

    for name, model in assets.dashboards().items():
        count = sum(1 for p in panels(model) if p.get("type") != "row")
        print(f"{name:28} {model['uid']:22} {count:3} panels  {model['title']}")
    return EXIT_OK


def _preview(args: argparse.Namespace, config: InferwatchConfig) -> int:
    extras.require("preview")
    from inferwatch.dashboards.render import preview_all

    end = time.time()
    start = end - _seconds(args.time_range, "--range")
    try:
        written, empty = preview_all(args.prometheus, Path(args.out), start, end,
                                     _seconds(args.scrape_interval, "--scrape-interval"), args.dashboard)
    except OSError as exc:
        raise CommandError(f"cannot write previews under {args.out}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    for path in written:
        print(path)
    if empty:
        print(f"{len(empty)} panel(s) had no data: " + ", ".join(empty), file=sys.stderr)
    return EXIT_OK
