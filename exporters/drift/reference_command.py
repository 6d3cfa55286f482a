"""Manage drift references: capture one from a time range, pin it for models, list, unpin, delete.

A reference holds the length histograms of the range (from Prometheus) and, with --exporter, the
sample sketches a running drift exporter still holds for it. The exporter picks up pins and
changed files on its next run.
"""

from __future__ import annotations

import argparse
import json
import time

from inferwatch.config import InferwatchConfig
from inferwatch.kit.commands import EXIT_OK, EXIT_USAGE, CommandError, add_actions

HELP = "drift references: capture from a time range, pin, unpin, list, delete"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = add_actions(parser)
    reference = add("reference", HELP, _dispatch)
    reference.add_argument("--references-dir", metavar="DIR", help="default: drift_exporter.references_dir")
    sub = reference.add_subparsers(dest="verb", required=True, metavar="VERB")
    capture = sub.add_parser("capture", help="capture NAME from the range --from .. --to")
    capture.add_argument("name")
    capture.add_argument("--from", dest="start", required=True, help="unix seconds, ISO 8601 or an age (7d)")
    capture.add_argument("--to", dest="end", default="0s", help="default: now")
    capture.add_argument("--model", action="append", help="only these models (repeat); default: all")
    capture.add_argument("--prometheus-url", help="default: drift_exporter.prometheus_url")
    capture.add_argument("--exporter", metavar="URL", help="a running drift exporter: include its sample sketches")
    capture.add_argument("--token-file", metavar="FILE", help="with --exporter: its bearer token")
    capture.add_argument("--overwrite", action="store_true", help="replace an existing reference of that name")
    pin = sub.add_parser("pin", help="judge these models against NAME")
    pin.add_argument("name")
    pin.add_argument("--model", action="append", help="default: every model in the reference")
    unpin = sub.add_parser("unpin", help="back to the same window a week (a day, for samples) ago")
    unpin.add_argument("--model", action="append", required=True)
    sub.add_parser("list", help="references, pins, and files that do not load")
    delete = sub.add_parser("delete", help="delete NAME (unpin it first)")
    delete.add_argument("name")


def run(args: argparse.Namespace, config: InferwatchConfig) -> int:
    return args.action(args, config)


def _dispatch(args: argparse.Namespace, config: InferwatchConfig) -> int:
    from inferwatch.exporters.drift.references import ReferenceError, ReferenceStore

    directory = args.references_dir or config.drift_exporter.references_dir
    if not directory:
        raise CommandError("no references directory: pass --references-dir DIR or set "
                           "drift_exporter.references_dir", EXIT_USAGE)
    store = ReferenceStore(directory)
    try:
        if args.verb == "capture":
            path = store.save(_capture(args, config), overwrite=args.overwrite)
            print(f"captured {args.name} in {path}")
        elif args.verb == "pin":
            reference = store.load(args.name)
            models = args.model or sorted({*reference.histograms, *reference.samples})
            if not models:
                raise CommandError(f"reference {args.name!r} holds no models; name them with --model")
            store.pin(args.name, models)
            print(f"pinned {args.name} for {', '.join(models)}")
        elif args.verb == "unpin":
            print(f"unpinned {', '.join(store.unpin(args.model)) or 'nothing'}")
        elif args.verb == "list":
            from inferwatch.exporters.drift.server import describe_references

            print(json.dumps(describe_references(store), indent=2))
        elif args.verb == "delete":
            store.delete(args.name)
            print(f"deleted {args.name}")
    except ReferenceError as exc:
        raise CommandError(str(exc)) from None
    return EXIT_OK


def _capture(args: argparse.Namespace, config: InferwatchConfig):
    from inferwatch.exporters.drift.histograms import HistogramSource, feature_name
    from inferwatch.exporters.drift.references import Reference, check_name
    from inferwatch.kit.httpclient import FetchError
    from inferwatch.kit.timeparse import parse_time

    check_name(args.name)
    now = time.time()
    try:
        start, end = parse_time(args.start, "--from", now), parse_time(args.end, "--to", now)
    except ValueError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    if not end - start >= 1:
        raise CommandError("--from must be at least a second before --to", EXIT_USAGE)
    section = config.drift_exporter
    url = args.prometheus_url or section.prometheus_url
    reference = Reference(args.name, now, start, end)
    try:
        if url:
            source = HistogramSource(url, section.model_label, section.selector, section.query_timeout_seconds,
                                     section.max_models)
            for histogram in section.histograms:
                for model, dist in source.distributions(histogram, end - start, end, args.model).items():
                    reference.histograms.setdefault(model, {})[feature_name(histogram)] = dist
        if args.exporter:
            reference.samples = _sketches(args, start, end)
    except FetchError as exc:
        raise CommandError(f"capture failed: {exc}") from None
    if not reference.histograms and not reference.samples:
        raise CommandError("nothing to capture: no histograms in Prometheus for that range (is prometheus_url "
                           "set?) and no --exporter with samples")
    return reference


def _sketches(args: argparse.Namespace, start: float, end: float) -> dict:
    import urllib.parse

    from inferwatch.kit.httpclient import FetchError, get_json

    headers = {}
    if args.token_file:
        with open(args.token_file, encoding="utf-8") as handle:
            headers["Authorization"] = "Bearer " + handle.read().strip()
    models = args.model or [None]
    out = {}
    for model in models:
        query = urllib.parse.urlencode({"from": start, "to": end, **({"model": model} if model else {})})
        answer = get_json(f"{args.exporter.rstrip('/')}/v1/samples/sketch?{query}", headers, timeout=60.0)
        if not isinstance(answer, dict):
            raise FetchError("malformed", "the exporter answered an unexpected shape")
        out.update(answer)
    return out
