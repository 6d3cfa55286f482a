"""`inferwatch versions`: each model's version history from Prometheus, and the comparison the
`versions` rules record between the current version and the previous one (docs/versions.md)."""

from __future__ import annotations

import argparse
import json
import time

from inferwatch.config import InferwatchConfig
from inferwatch.kit.commands import EXIT_OK, EXIT_USAGE, CommandError
from inferwatch.kit.prometheus import CommandPrometheus

HELP = "list model versions (first/last seen, endpoints) and compare the current version with the previous one"

STEP = 60  # seconds: one point a minute
INFO = "inferwatch_model_version_info"
# (label, the settled version's recorded mean, the previous version's)
COMPARED = (
    ("ttft p95 (s)", "model_name_version:llm_time_to_first_token_seconds:p95_rate5m_avg30m",
     "model_name:llm_time_to_first_token_seconds:previous_p95_rate5m_avg30m"),
    ("itl p95 (s)", "model_name_version:llm_inter_token_latency_seconds:p95_rate5m_avg30m",
     "model_name:llm_inter_token_latency_seconds:previous_p95_rate5m_avg30m"),
    ("requests/s", "model_name_version:llm_requests:rate5m_avg30m", "model_name:llm_requests:previous_rate5m_avg30m"),
    ("error ratio", "model_name_version:llm_request_errors_per_requests:ratio_avg30m",
     "model_name:llm_request_errors_per_requests:previous_ratio_avg30m"),
    ("negative feedback", "model_name_version:inferwatch_feedback_negative_per_feedback:ratio_rate1h_avg30m",
     "model_name:inferwatch_feedback_negative_per_feedback:previous_ratio_rate1h_avg30m"),
)
Z = "model_name_version:llm_request_errors_per_requests:zscore_avg30m"
PREVIOUS = "model_name_version:inferwatch_model_version:previous"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prometheus-url", required=True, metavar="URL", help="e.g. http://localhost:9090")
    parser.add_argument("--model", help="only this model_name")
    parser.add_argument("--since", default="7d", help="how far back: an age (90m, 24h, 7d; default 7d)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def parse_age(text: str) -> float:
    from inferwatch.kit.timeparse import parse_duration

    try:
        return parse_duration(text, "--since")
    except ValueError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None


def _selector(metric: str, model: str | None) -> str:
    if model is None:
        return metric
    return metric + '{model_name="' + model.replace("\\", "\\\\").replace('"', '\\"') + '"}'


def history(prom: CommandPrometheus, model: str | None, start: float, end: float) -> dict[str, list[dict]]:
    """model -> versions in order of first sight: first/last seen and the most endpoints serving it."""
    # last_over_time over one step: a version served for less than a step between two steps still shows.
    expr = f"count by (model_name, version) (last_over_time({_selector(INFO, model)}[{STEP}s]))"
    points: dict[tuple[str, str], list[tuple[float, int]]] = {}
    for series in prom.query_range(expr, start, end):
        key = (series["metric"].get("model_name", ""), series["metric"].get("version", ""))
        points.setdefault(key, []).extend((float(t), int(float(v))) for t, v in series["values"])
    models: dict[str, list[dict]] = {}
    for (name, version), samples in points.items():
        models.setdefault(name, []).append({"version": version, "first_seen": min(t for t, _ in samples),
                                            "last_seen": max(t for t, _ in samples),
                                            "max_endpoints": max(n for _, n in samples)})
    for versions in models.values():
        versions.sort(key=lambda v: (v["first_seen"], v["version"]))
    return dict(sorted(models.items()))


def comparison(prom: CommandPrometheus, model: str | None) -> dict[str, dict]:
    """model -> the settled current version, the previous one and each recorded pair of values."""
    out: dict[str, dict] = {}
    for sample in prom.query(_selector(PREVIOUS, model)):
        out.setdefault(sample["metric"]["model_name"], {})["previous"] = sample["metric"]["version"]
    for label, current, previous in COMPARED:
        for sample in prom.query(_selector(current, model)):
            entry = out.setdefault(sample["metric"]["model_name"], {})
            entry["current"] = sample["metric"]["version"]
            entry.setdefault("metrics", {}).setdefault(label, {})["current"] = float(sample["value"][1])
        for sample in prom.query(_selector(previous, model)):
            entry = out.setdefault(sample["metric"]["model_name"], {})
            entry.setdefault("metrics", {}).setdefault(label, {})["previous"] = float(sample["value"][1])
    for sample in prom.query(_selector(Z, model)):
        out.setdefault(sample["metric"]["model_name"], {})["error_z"] = float(sample["value"][1])
    return out


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(t))


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"


def run(args: argparse.Namespace, config: InferwatchConfig) -> int:
    end = time.time()
    start = end - parse_age(args.since)
    prom = CommandPrometheus(args.prometheus_url, step=STEP)
    models = history(prom, args.model, start, end)
    compared = comparison(prom, args.model)
    if args.json:
        print(json.dumps({"models": {m: {"versions": models.get(m, []), "comparison": compared.get(m)}
                                     for m in sorted(set(models) | set(compared))}}, indent=1))
        return EXIT_OK
    if not models and not compared:
        print(f"no {INFO} series" + (f" for model {args.model}" if args.model else "") + f" since {args.since}")
        return EXIT_OK
    for name in sorted(set(models) | set(compared)):
        print(f"model {name}")
        for v in models.get(name, []):
            print(f"  {v['version']:<24} first seen {_when(v['first_seen'])}  last seen {_when(v['last_seen'])}"
                  f"  endpoints {v['max_endpoints']}")
        entry = compared.get(name)
        if entry and "metrics" in entry:
            print(f"  compared (last 30m): {entry.get('current', '-')} vs previous {entry.get('previous', '-')}")
            for label, pair in entry["metrics"].items():
                print(f"    {label:<18} {_num(pair.get('current')):>10} {_num(pair.get('previous')):>10}")
            if "error_z" in entry:
                print(f"    {'error z-test':<18} {_num(entry['error_z']):>10}")
        else:
            print("  compared: no settled version with a previous one yet (canary, or too recent)")
    return EXIT_OK
