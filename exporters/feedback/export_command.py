"""Export negatively rated requests (ids, model, version, score, time; never text) as JSON Lines.

Reads the store directory directly, or a running feedback server's GET /v1/feedback/export.
A retraining or evaluation pipeline joins these ids with the application's own conversation store.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.parse

from inferwatch.config import InferwatchConfig
from inferwatch.kit.commands import EXIT_OK, EXIT_USAGE, CommandError, add_actions

HELP = "export negatively rated request ids for retraining (JSON Lines)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = add_actions(parser)
    export = add("export", HELP, _export)
    source = export.add_mutually_exclusive_group()
    source.add_argument("--store-dir", metavar="DIR", help="the store (default: feedback_server.store_dir)")
    source.add_argument("--url", metavar="URL", help="a running feedback server, e.g. http://localhost:9838")
    export.add_argument("--token-file", metavar="FILE", help="with --url: the bearer token")
    export.add_argument("--model", help="only this model")
    export.add_argument("--score", help="only this score")
    export.add_argument("--since", help="from this time: unix seconds, ISO 8601 or an age (24h, 7d)")
    export.add_argument("--until", help="up to this time (same forms)")
    export.add_argument("--limit", type=int, help="at most this many records")
    export.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")


def run(args: argparse.Namespace, config: InferwatchConfig) -> int:
    return args.action(args, config)


def _export(args: argparse.Namespace, config: InferwatchConfig) -> int:
    from inferwatch.exporters.feedback.store import export
    from inferwatch.kit.timeparse import parse_time

    try:
        since = parse_time(args.since, "--since") if args.since else None
        until = parse_time(args.until, "--until") if args.until else None
    except ValueError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
    try:
        if args.url:
            out.write(_fetch(args, since, until))
        else:
            directory = args.store_dir or config.feedback_server.store_dir
            if not directory:
                raise CommandError("no store: pass --store-dir DIR or --url URL, or set feedback_server.store_dir",
                                   EXIT_USAGE)
            if not os.path.isdir(directory):
                raise CommandError(f"{directory}: not a directory", EXIT_USAGE)
            for record in export(directory, args.model, args.score, since, until, args.limit):
                out.write(json.dumps(record, separators=(",", ":")) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    return EXIT_OK


def _fetch(args: argparse.Namespace, since: float | None, until: float | None) -> str:
    from inferwatch.kit.httpclient import FetchError, get

    params = {k: v for k, v in (("model", args.model), ("score", args.score), ("since", since), ("until", until),
                                ("limit", args.limit)) if v is not None}
    headers = {}
    if args.token_file:
        with open(args.token_file, encoding="utf-8") as handle:
            headers["Authorization"] = "Bearer " + handle.read().strip()
    url = args.url.rstrip("/") + "/v1/feedback/export?" + urllib.parse.urlencode(params)
    try:
        status, body = get(url, headers, timeout=60.0, max_bytes=1 << 30)
    except FetchError as exc:
        raise CommandError(str(exc)) from None
    if status != 200:
        raise CommandError(f"{args.url} answered HTTP {status}")
    return body.decode("utf-8")
