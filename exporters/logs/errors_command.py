"""The recurring engine errors a running log exporter holds: `inferwatch errors top [--url URL]`."""

from __future__ import annotations

import argparse
import datetime
import urllib.parse

from inferwatch.config import InferwatchConfig
from inferwatch.kit.commands import EXIT_OK, CommandError, add_actions
from inferwatch.kit.httpclient import FetchError, get_json

HELP = "recurring engine errors from a running log exporter (GET /errors)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = add_actions(parser)
    top = add("top", "the most frequent error templates per source", _top)
    top.add_argument("--url", default="http://127.0.0.1:9840", help="the log exporter (default %(default)s)")
    top.add_argument("--source", help="only this source")
    top.add_argument("-n", type=int, default=10, help="templates per source (default 10)")
    top.add_argument("--json", action="store_true", help="print the exporter's JSON as it is")


def run(args: argparse.Namespace, config: InferwatchConfig) -> int:
    return args.action(args, config)


def _top(args: argparse.Namespace, config: InferwatchConfig) -> int:
    query = {"n": args.n, **({"source": args.source} if args.source else {})}
    try:
        answer = get_json(f"{args.url.rstrip('/')}/errors?{urllib.parse.urlencode(query)}")
    except FetchError as exc:
        raise CommandError(f"cannot read {args.url}/errors: {exc.detail}") from None
    if args.json:
        import json

        print(json.dumps(answer, indent=1))
        return EXIT_OK
    for source, entries in answer.get("sources", {}).items():
        print(f"{source}: {len(entries)} template(s)")
        for e in entries:
            last = datetime.datetime.fromtimestamp(e["last_seen"], datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
            new = f"  NEW in {e['new_in_version']}" if e.get("new_in_version") else ""
            print(f"  {e['count']:>8}  {e['class']:16} {e['severity']:8} last {last}{new}\n            {e['template']}")
    return EXIT_OK
