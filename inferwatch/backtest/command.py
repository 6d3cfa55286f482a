"""`inferwatch rules backtest`: how often, and when, would these alerts have fired on my history?

Reads the raw series the rules need from a Prometheus (`--prometheus URL --from T --to T`) or a
saved history (`--history FILE`), replays the rules over it with promtool, and prints per alert
how often and when it fired (`--json` for machines); with `--incidents FILE`, also detection
delay per incident and false episodes. Only argparse is imported here: the backtest modules load
when the action runs, so `inferwatch --help` stays fast.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO

from inferwatch.kit.commands import EXIT_OK, EXIT_USAGE, CommandError

HELP = "replay the rules over past data (a Prometheus or a saved history) and report what would have fired"
DESCRIPTION = (
    "Replay the alert rules over history with promtool's own rule engine and report, per alert, how often "
    "and when it would have fired. History comes from a Prometheus (--prometheus URL --from T --to T, "
    "optionally --match '{job=\"vllm\"}'; the raw series the rules read are fetched with query_range) or from "
    "a saved history file (--history). With --incidents FILE (YAML list of model, kind, start, end, optional "
    "expect/forbid regexes) it also reports detection delay and false episodes. Rules: the shipped files by "
    "default; pass --rules for files rendered with your own SLOs (`inferwatch rules render --config`). "
    "Times: RFC 3339, unix seconds, or relative such as now-7d."
)
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800, "y": 31_536_000}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|[smhdwy])")


def seconds(text: str) -> float:
    """`90`, `1m`, `1h30m`, `0.5s` -> seconds (ValueError when not one)."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        parts = _DURATION.findall(text)
        if not parts or "".join(a + b for a, b in parts) != text:
            raise ValueError(f"not a duration (like 60s, 1m, 1h30m): {text[:40]!r}") from None
        value = sum(float(a) * _UNITS[b] for a, b in parts)
    if not value > 0 or value == float("inf"):
        raise ValueError(f"a duration must be positive: {text[:40]!r}")
    return value


def when(text: str, now: float | None = None) -> float:
    """RFC 3339, unix seconds, `now`, or `now-7d` / `now-1h30m` -> unix seconds (ValueError)."""
    from inferwatch.backtest.score import parse_time

    text = text.strip()
    now = time.time() if now is None else now
    relative = re.fullmatch(r"now\s*(?:([-+])\s*(\S+))?", text)
    if relative:
        if relative.group(1) is None:
            return now
        offset = seconds(relative.group(2))
        return now - offset if relative.group(1) == "-" else now + offset
    return parse_time(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_argument_group("history (one of)")
    source.add_argument("--prometheus", metavar="URL", help="Prometheus (or Thanos/Mimir query) base URL")
    source.add_argument("--history", metavar="FILE", help="a saved history (.json or .json.gz)")
    fetch = parser.add_argument_group("reading from --prometheus")
    fetch.add_argument("--from", dest="start", metavar="T", help="start (RFC 3339, unix seconds, now-7d)")
    fetch.add_argument("--to", dest="end", metavar="T", default="now", help="end (default: now)")
    fetch.add_argument("--match", metavar="SELECTOR",
                       help="label matchers limiting every series, e.g. '{job=\"vllm\"}'")
    fetch.add_argument("--step", default="1m", metavar="DURATION",
                       help="sample grid, near your scrape interval (default: 1m)")
    fetch.add_argument("--max-samples", type=int, default=5_000_000, metavar="N",
                       help="refuse to fetch more samples than this (default: 5000000)")
    fetch.add_argument("--save-history", metavar="FILE", help="also save what was fetched (replay it with --history)")
    parser.add_argument("--rules", action="append", metavar="PATH",
                        help="rule file or directory of them (repeatable; default: the shipped rules)")
    parser.add_argument("--alert", action="append", metavar="NAME", help="only these alerts (repeatable)")
    parser.add_argument("--interval", metavar="DURATION", help="evaluation interval (default: the history's step)")
    parser.add_argument("--incidents", metavar="FILE", help="known incidents (YAML) to score detection against")
    parser.add_argument("--grace", default="1h", metavar="DURATION",
                        help="after an incident ends, alerts for its model still count as its (default: 1h)")
    parser.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1), metavar="N",
                        help="parallel promtool processes (default: min(4, CPUs))")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--progress", action="store_true", help="show progress on stderr (default: when a TTY)")
    parser.add_argument("--keep", metavar="DIR", help="keep the generated promtool files in DIR")


class _Progress:
    """`inferwatch: fetching 12/40` rewritten in place on stderr."""

    def __init__(self, stream: TextIO, what: str):
        self.stream, self.what, self.started = stream, what, time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        elapsed = time.monotonic() - self.started
        end = "\n" if done >= total else ""
        self.stream.write(f"\rinferwatch: {self.what} {done}/{total} ({elapsed:.0f} s){end}")
        self.stream.flush()


def _rule_paths(args: argparse.Namespace, folder: Path) -> list[Path]:
    if not args.rules:
        from inferwatch import assets

        return assets.write_rule_files(folder)
    paths = []
    for given in args.rules:
        path = Path(given)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml", ".json") and p.is_file())
            if not found:
                raise CommandError(f"--rules {given}: no .yaml/.yml/.json rule files in that directory", EXIT_USAGE)
            paths += found
        elif path.is_file():
            paths.append(path)
        else:
            raise CommandError(f"--rules {given}: no such file or directory", EXIT_USAGE)
    return paths


def _usage(message: str) -> CommandError:
    return CommandError(message, EXIT_USAGE)


def run(args: argparse.Namespace, config: Any = None) -> int:
    from inferwatch.backtest import BacktestError
    from inferwatch.backtest.history import History, fetch
    from inferwatch.backtest.replay import replay, required_series
    from inferwatch.backtest.score import load_incidents, score
    from inferwatch.config import ConfigError

    if bool(args.prometheus) == bool(args.history):
        raise _usage("give exactly one of --prometheus URL (with --from) or --history FILE")
    if args.prometheus and not args.start:
        raise _usage("--prometheus needs --from (e.g. --from now-7d)")
    if args.history and (args.start or args.match or args.save_history):
        raise _usage("--from/--match/--save-history read from --prometheus; a --history file is replayed whole")
    try:
        step = seconds(args.step)
        interval = seconds(args.interval) if args.interval else None
        grace = seconds(args.grace)
    except ValueError as exc:
        raise _usage(str(exc)) from None
    if args.jobs < 1 or args.max_samples < 1:
        raise _usage("--jobs and --max-samples must be at least 1")
    show = args.progress or sys.stderr.isatty()
    try:
        incidents = load_incidents(args.incidents) if args.incidents else None
    except ConfigError as exc:
        raise _usage(f"incidents file: {exc}") from None
    with tempfile.TemporaryDirectory(prefix="inferwatch-backtest-") as scratch:
        rules = _rule_paths(args, Path(scratch))
        try:
            if args.history:
                history = History.load(args.history)
            else:
                try:
                    start, end = when(args.start), when(args.end)
                except ValueError as exc:
                    raise _usage(f"--from/--to: {exc}") from None
                if end <= start:
                    raise _usage(f"--to must be after --from (got {args.start!r} .. {args.end!r})")
                history = fetch(args.prometheus, start, end, step, required_series(rules, args.alert), args.match,
                                args.max_samples, progress=_Progress(sys.stderr, "fetching") if show else None)
                if args.save_history:
                    history.save(args.save_history)
            episodes = replay(rules, history, interval, args.alert, jobs=args.jobs, workdir=args.keep,
                              progress=_Progress(sys.stderr, "replaying") if show else None)
        except BacktestError as exc:
            raise CommandError(str(exc)) from None
    report = score(episodes, incidents, (history.start, history.end()), grace)
    print(report.to_json() if args.json else report.to_text(), end="\n" if args.json else "")
    return EXIT_OK
