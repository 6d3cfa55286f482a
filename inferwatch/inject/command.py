"""Open-loop load and fault injection against an OpenAI-compatible endpoint; client-side latency report."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

from inferwatch.config import check_http_url
from inferwatch.inject import faults, schedule
from inferwatch.kit import httpclient
from inferwatch.kit.commands import EXIT_USAGE, CommandError

HELP = "open-loop load and fault injection against an OpenAI-compatible endpoint"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", required=True, help="base URL, e.g. http://127.0.0.1:8000")
    p.add_argument("--model", help="model name (default: the first one /v1/models lists)")
    load = p.add_argument_group("load")
    load.add_argument("--rate", type=float, default=2.0, help="Poisson arrivals per second (default 2)")
    load.add_argument("--duration", type=float, default=30.0, help="seconds of Poisson load (default 30)")
    load.add_argument("--prompt-tokens", type=int, default=64)
    load.add_argument("--output-tokens", type=int, default=32)
    load.add_argument("--trace", help="replay a CSV in the Azure LLM inference format "
                      "(TIMESTAMP,ContextTokens,GeneratedTokens) instead of Poisson")
    load.add_argument("--time-scale", type=float, default=1.0, help="trace speed-up (2 = twice as fast)")
    load.add_argument("--rate-scale", type=float, default=1.0, help="trace request-rate multiplier")
    load.add_argument("--limit", type=int, help="use the first N trace rows")
    load.add_argument("--max-prompt-tokens", type=int, help="cap prompt lengths")
    load.add_argument("--max-output-tokens", type=int, help="cap output lengths")
    load.add_argument("--max-model-len", type=int, help="context size (default: from /v1/models)")
    load.add_argument("--concurrency", type=int, default=256, help="in-flight cap; arrivals over it are dropped")
    load.add_argument("--timeout", type=float, default=120.0, help="per-request timeout, seconds")
    load.add_argument("--seed", type=int, default=0)
    fault = p.add_argument_group("faults")
    fault.add_argument("--fault", choices=faults.FAULTS, help="apply a named fault in the middle third of the run")
    fault.add_argument("--fault-factor", type=float, default=4.0, help="surge / prompt-growth factor (default 4)")
    fault.add_argument("--engine-name", default="default",
                       help="inferwatch-managed engine to stop and restart for endpoint-outage")
    out = p.add_argument_group("output and compatibility")
    out.add_argument("--json", help="also write the report as JSON to this file")
    out.add_argument("--no-progress", action="store_true")
    out.add_argument("--text-prompts", action="store_true", help="send text prompts instead of token ids")
    out.add_argument("--no-vllm-extensions", action="store_true", help="do not send ignore_eos")
    out.add_argument("--auth-header-env", help="env var holding an Authorization header value")


def _models(url: str, headers: dict[str, str]) -> list[dict]:
    """The entries of /v1/models; a clean CommandError for anything a server might answer instead."""
    try:
        answer = httpclient.get_json(url.rstrip("/") + "/v1/models", headers, timeout=10)
    except httpclient.FetchError as exc:
        raise CommandError(f"inject: cannot read the model list: {exc.detail}") from None
    entries = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(entries, list):
        raise CommandError(f"inject: {url}/v1/models is not an OpenAI model list")
    return [e for e in entries if isinstance(e, dict) and isinstance(e.get("id"), str)]


# (flag, attribute, smallest allowed (exclusive when a float), largest allowed)
LIMITS = (
    ("--rate", "rate", 0.0, 10_000.0),
    ("--duration", "duration", 0.0, 7 * 86400.0),
    ("--time-scale", "time_scale", 0.0, 10_000.0),
    ("--rate-scale", "rate_scale", 0.0, 1_000.0),
    ("--timeout", "timeout", 0.0, 3600.0),
    ("--fault-factor", "fault_factor", 0.0, 100.0),
    ("--prompt-tokens", "prompt_tokens", 1, 1_000_000),
    ("--output-tokens", "output_tokens", 1, 1_000_000),
    ("--concurrency", "concurrency", 1, 100_000),
)
MAX_PLANNED_REQUESTS = 10_000_000


def validate(args: argparse.Namespace) -> None:
    """Reject what would loop forever, allocate without bound, or fail only after the whole run."""
    for flag, attribute, low, high in LIMITS:
        value = getattr(args, attribute)
        if isinstance(low, float):
            if not (math.isfinite(value) and low < value <= high):
                raise CommandError(f"inject: {flag} must be a number above {low:g} and at most {high:g}; "
                                   f"got {value!r}", EXIT_USAGE)
        elif not low <= value <= high:
            raise CommandError(f"inject: {flag} must be between {low} and {high}; got {value}", EXIT_USAGE)
    for flag, attribute in (("--max-prompt-tokens", "max_prompt_tokens"), ("--max-output-tokens", "max_output_tokens"),
                            ("--max-model-len", "max_model_len"), ("--limit", "limit")):
        value = getattr(args, attribute)
        if value is not None and value < 1:
            raise CommandError(f"inject: {flag} must be at least 1; got {value}", EXIT_USAGE)
    if not args.trace and args.rate * args.duration > MAX_PLANNED_REQUESTS:
        raise CommandError(f"inject: --rate x --duration plans {args.rate * args.duration:.3g} requests; "
                           f"the limit is {MAX_PLANNED_REQUESTS:,}", EXIT_USAGE)
    problem = check_http_url("--url", args.url)
    if problem:
        raise CommandError(f"inject: {problem[0]} {problem[1]}", EXIT_USAGE)
    if args.json:
        try:
            with open(args.json, "a"):
                pass
        except OSError as exc:
            raise CommandError(f"inject: cannot write --json {args.json}: {exc.strerror}", EXIT_USAGE) from None


def run(args: argparse.Namespace, config) -> int:
    import asyncio

    from inferwatch.inject.client import Target
    from inferwatch.inject.runner import format_report
    from inferwatch.inject.runner import run as run_load

    validate(args)
    auth = os.environ.get(args.auth_header_env) if args.auth_header_env else None
    model, max_len = args.model, args.max_model_len
    if model is None or max_len is None:
        listed = _models(args.url, {"Authorization": auth} if auth else {})
        entry = next((m for m in listed if model in (None, m.get("id"))), None)
        if entry is None:
            raise CommandError(f"inject: model {model!r} not served at {args.url}")
        model = model or entry["id"]
        listed_len = entry.get("max_model_len")
        max_len = max_len or (listed_len if isinstance(listed_len, int) and listed_len > 1 else 4096)
    try:
        if args.trace:
            arrivals = schedule.scale(schedule.read_trace(args.trace, args.limit), args.time_scale, args.rate_scale,
                                      args.seed)
        else:
            arrivals = schedule.poisson(args.rate, args.duration, args.prompt_tokens, args.output_tokens, args.seed)
    except (OSError, ValueError) as exc:
        raise CommandError(f"inject: {exc}", EXIT_USAGE) from None
    outage = None
    if args.fault:
        arrivals = faults.apply(args.fault, arrivals, args.seed, args.fault_factor)
        if args.fault == "endpoint-outage":
            outage = (faults.window_of(arrivals), _engine_hooks(args.engine_name))
    arrivals = schedule.fit(arrivals, max_len, args.max_prompt_tokens, args.max_output_tokens)
    target = Target(args.url, model, text_prompts=args.text_prompts, vllm_extensions=not args.no_vllm_extensions,
                    auth_header=auth, timeout=args.timeout)
    print(f"inferwatch inject: {len(arrivals)} requests to {args.url} ({model})"
          + (f", fault {args.fault}" if args.fault else ""), file=sys.stderr)
    report = asyncio.run(run_load(arrivals, target, args.concurrency, not args.no_progress, outage))
    summary = report.summary()
    print(format_report(summary))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(summary, handle, indent=2)
    return 0


def _engine_hooks(name: str) -> faults.OutageHooks:
    from inferwatch.lab.engine import control  # the drill drives an inferwatch-managed engine

    return faults.OutageHooks(stop=lambda: control.down(name), start=lambda: control.restart(name))
