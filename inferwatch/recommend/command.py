"""`inferwatch recommend`: measure what one replica serves within the latency SLO, and advise.

`sweep` measures a real endpoint under its current vLLM settings (closed-loop concurrency levels) and
writes a sweep file; run it once per configuration (restart vLLM with one setting changed, sweep
again). `advise` reads sweep files and prints, per configuration, the requests/s one replica serves
within the SLO, the replicas a target load needs, and the setting changes worth making with their
measured effect. `history` reads the same capacity off Prometheus (the shipped recording rules over a
past window): no load to generate, but only the loads the fleet happened to run at (docs/recommend.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from inferwatch.kit.commands import EXIT_USAGE, CommandError, add_actions
from inferwatch.recommend import advice as advice_module
from inferwatch.recommend.advice import SETTINGS, Slo
from inferwatch.recommend.sweep import SweepFileError, read_sweep

HELP = "measure capacity within the latency SLO (sweep) and advise replicas and vLLM settings (advise)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = add_actions(parser)
    sweep = add("sweep", "measure an endpoint at several concurrency levels and write a sweep file", _sweep)
    sweep.add_argument("--url", required=True, help="base URL of the vLLM (OpenAI-compatible) server")
    sweep.add_argument("--model", required=True, help="served model name")
    sweep.add_argument("--levels", default="1,2,4,8", help="closed-loop concurrency levels (default 1,2,4,8)")
    sweep.add_argument("--seconds", type=float, default=30.0, help="measured seconds per level (default 30)")
    sweep.add_argument("--warmup", type=float, default=5.0, help="unmeasured seconds before each level (default 5)")
    sweep.add_argument("--prompt-tokens", type=int, default=128)
    sweep.add_argument("--output-tokens", type=int, default=64)
    sweep.add_argument("--setting", action="append", default=[], metavar="NAME=VALUE",
                       help=f"the server's setting, recorded with the sweep ({', '.join(SETTINGS)}); repeatable")
    sweep.add_argument("--timeout", type=float, default=300.0, help="per-request timeout, seconds")
    sweep.add_argument("--auth-header-env", help="env var holding an Authorization header value")
    sweep.add_argument("--out", required=True, type=Path, help="the sweep file to write (JSON)")
    adv = add("advise", "read sweep files and advise replicas and settings", _advise)
    adv.add_argument("sweeps", nargs="+", type=Path, metavar="SWEEP", help="sweep files (`recommend sweep --out`)")
    _slo_arguments(adv)
    hist = add("history", "read the capacity per replica off Prometheus history (the shipped rules)", _history)
    hist.add_argument("--prometheus-url", required=True, metavar="URL", help="e.g. http://localhost:9090")
    hist.add_argument("--model", required=True, help="model_name")
    hist.add_argument("--since", default="7d", help="how far back (default 7d)")
    hist.add_argument("--step", default="5m", help="one step per this much history (default 5m, the rate window)")
    hist.add_argument("--bins", type=int, default=10, help="load bins (default 10)")
    hist.add_argument("--min-steps", type=int, default=6, help="steps a bin needs to count (default 6)")
    _slo_arguments(hist)


def _slo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ttft-slo", type=float, default=2.0,
                        help="p95 TTFT SLO, seconds (default 2, the mixin's SLA)")
    parser.add_argument("--tpot-slo", type=float, default=0.2,
                        help="p95 time per output token SLO, seconds (default 0.2, the mixin's ITL SLA)")
    parser.add_argument("--max-error-ratio", type=float, default=0.01, help="errors allowed (default 0.01)")
    parser.add_argument("--target-rps", type=float, help="the load to plan for, requests/s: gives replica counts")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")


def _slo(args: argparse.Namespace, action: str) -> Slo:
    if args.ttft_slo <= 0 or args.tpot_slo <= 0 or not 0 <= args.max_error_ratio < 1:
        raise CommandError(f"recommend {action}: the SLOs must be positive and --max-error-ratio in [0, 1)",
                           EXIT_USAGE)
    if args.target_rps is not None and args.target_rps <= 0:
        raise CommandError(f"recommend {action}: --target-rps must be positive", EXIT_USAGE)
    return Slo(args.ttft_slo, args.tpot_slo, args.max_error_ratio)


def run(args: argparse.Namespace, config: Any) -> int:
    return args.action(args, config)


def parse_settings(pairs: list[str]) -> dict[str, str]:
    settings = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip().lstrip("-").replace("-", "_")
        if not sep or not name or not value.strip():
            raise CommandError(f"recommend sweep: --setting {pair!r}: expected NAME=VALUE", EXIT_USAGE)
        settings[name] = value.strip()
    return settings


def parse_levels(text: str) -> list[int]:
    try:
        levels = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        levels = []
    if not levels or any(level < 1 for level in levels):
        raise CommandError(f"recommend sweep: --levels {text!r}: expected positive integers, comma-separated",
                           EXIT_USAGE)
    return levels


def _sweep(args: argparse.Namespace, config: Any) -> int:
    from inferwatch.inject.client import Target
    from inferwatch.recommend.sweep import run_sweep, sweep_to_json

    levels, settings = parse_levels(args.levels), parse_settings(args.setting)
    if args.seconds <= 0 or args.prompt_tokens < 1 or args.output_tokens < 1:
        raise CommandError("recommend sweep: --seconds, --prompt-tokens and --output-tokens must be positive",
                           EXIT_USAGE)
    auth = os.environ.get(args.auth_header_env) if args.auth_header_env else None
    target = Target(args.url, args.model, auth_header=auth, timeout=args.timeout)
    say = lambda line: print(f"inferwatch recommend: {line}", file=sys.stderr)  # noqa: E731
    result = run_sweep(target, levels, args.seconds, args.warmup, args.prompt_tokens, args.output_tokens,
                       settings, say)
    if all(p.requests == 0 for p in result.points):
        raise CommandError(f"recommend sweep: no request to {args.url} succeeded at any level")
    args.out.write_text(sweep_to_json(result, {"url": args.url, "model": args.model, "levels": levels,
                                               "seconds_per_level": args.seconds}))
    say(f"wrote {args.out}")
    return 0


def _advise(args: argparse.Namespace, config: Any) -> int:
    slo = _slo(args, "advise")
    try:
        sweeps = [read_sweep(path) for path in args.sweeps]
    except SweepFileError as exc:
        raise CommandError(f"recommend advise: {exc}", EXIT_USAGE) from None
    result = advice_module.advise(sweeps, slo, args.target_rps)
    print(json.dumps(to_json(result), indent=2) if args.json else advice_module.format_advice(result))
    return 0


def _history(args: argparse.Namespace, config: Any) -> int:
    import time

    from inferwatch.kit.prometheus import CommandPrometheus
    from inferwatch.kit.timeparse import parse_duration
    from inferwatch.recommend import history

    slo = _slo(args, "history")
    try:
        since, step = parse_duration(args.since, "--since"), parse_duration(args.step, "--step")
    except ValueError as exc:
        raise CommandError(f"recommend history: {exc}", EXIT_USAGE) from None
    if args.bins < 1 or args.min_steps < 1:  # durations are positive once parsed
        raise CommandError("recommend history: --bins and --min-steps must be positive", EXIT_USAGE)
    end = time.time()
    steps = history.read_steps(CommandPrometheus(args.prometheus_url, step=step), args.model, end - since, end)
    if not steps:
        raise CommandError(f"recommend history: no {history.SERIES['load']} and "
                           f"{history.SERIES['ttft']} for model {args.model!r} in the last {args.since}: "
                           "are the inferwatch recording rules loaded?")
    result = history.capacity_from_history(steps, slo, args.bins, args.min_steps)
    if args.json:
        print(json.dumps({"model": args.model, "slo": slo.__dict__, "steps": result.steps,
                          "bins": [b.__dict__ | {"holds": b.holds} for b in result.bins],
                          "requests_per_second_within_slo": result.requests_per_second,
                          "lower_bound": result.lower_bound, "target_requests_per_second": args.target_rps,
                          "replicas": result.replicas(args.target_rps), "notes": result.notes}, indent=2))
    else:
        print(history.format_history(result, args.model, args.target_rps))
    return 0


def to_json(result: advice_module.Advice) -> dict[str, Any]:
    return {
        "slo": result.slo.__dict__,
        "target_requests_per_second": result.target_requests_per_second,
        "configurations": [{"settings": c.sweep.settings, "source": c.sweep.source,
                            "prompt_tokens": c.sweep.prompt_tokens, "output_tokens": c.sweep.output_tokens,
                            "requests_per_second_within_slo": c.requests_per_second,
                            "at_concurrency": c.point.concurrency if c.point else None,
                            "replicas": result.replicas(c)} for c in result.capacities],
        "changes": [{"setting": ch.setting, "from": ch.before, "to": ch.after, "capacity_from": ch.capacity_before,
                     "capacity_to": ch.capacity_after, "ratio": ch.ratio} for ch in result.changes],
        "recommended": result.best.sweep.settings,
        "notes": result.notes,
    }
