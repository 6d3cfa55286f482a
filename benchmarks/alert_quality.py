"""Alert quality on an adversarial synthetic fleet: the shipped rules against a static-threshold baseline.

Generates 15 days of a three-model vLLM fleet at 1-minute resolution with labelled incidents
(`inferwatch.lab.traffic`), saves the history and the incidents, and replays both rule sets over
them through the CLI, exactly as a user would:

    inferwatch rules backtest --history history.json.gz --incidents incidents.yaml --json
    inferwatch rules backtest --history history.json.gz --incidents static-incidents.yaml \
        --rules benchmarks/static_rules.yaml --json

The static set has other alert names, so its incidents file is the same incidents with `expect`
/ `forbid` remapped (`STATIC`). Writes the results into docs/alert-quality.md between the
`<!-- alert-quality:begin -->` / `<!-- alert-quality:end -->` markers: targets met, per incident
(detected by, delay, forbidden alerts that fired), per alert (episodes, false episodes, false
episodes per normal week), the false episodes themselves, the fleet's parameters, machine facts
and the runtime of each stage.

Targets (issue 15): no false episode on normal traffic; every labelled incident caught;
ttft_regression within 10 min; target_down within 2 scrape intervals; error_burst, sla_breach and
kv_saturation within 5 min; no latency-regression alert on the traffic peak.

Run: .venv/bin/python benchmarks/alert_quality.py [--days 15] [--seed 15] [--out docs/alert-quality.md]
     [--keep DIR] [--jobs N]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from inferwatch.backtest.history import History, parse_series_key
from inferwatch.backtest.score import Incident
from inferwatch.lab import traffic

REPO = Path(__file__).resolve().parent.parent
STATIC_RULES = REPO / "benchmarks" / "static_rules.yaml"
BEGIN, END = "<!-- alert-quality:begin -->", "<!-- alert-quality:end -->"
STATIC_LATENCY = "Static(TTFT|ITL)High"
# incident kind -> (expect, forbid) in the static set's names. It has no capacity, abort, absence or
# restart alert: those incidents expect a name it does not have, so they count as missed.
STATIC: dict[str, tuple[str, str | None]] = {
    "traffic_peak": ("StaticCapacityAlert", STATIC_LATENCY),
    "error_burst": ("StaticErrorRatioHigh", None),
    "target_down": ("StaticTargetDown", None),
    "ttft_regression": ("StaticTTFTHigh", None),
    "itl_regression": ("StaticITLHigh", None),
    "kv_saturation": ("StaticKVCacheHigh", None),
    "engine_restart": ("StaticTargetDown", None),
    "sla_breach": ("StaticTTFTHigh", None),
    "abort_burst": ("StaticErrorRatioHigh", None),
    "series_absent": ("StaticTargetDown", None),
}
STATIC_DEPLOY_FORBID = "Static(TTFTHigh|ITLHigh|ErrorRatioHigh)"
# kind -> longest acceptable detection delay in minutes (None: only that it is detected)
DELAY_TARGETS = {"ttft_regression": 10, "target_down": 2, "error_burst": 5, "sla_breach": 5, "kv_saturation": 5}
WEEK = 7 * 86_400


@dataclass
class Run:
    """One rule set's backtest: its report (the CLI's JSON) and how long the CLI took."""

    name: str
    report: dict[str, Any]
    seconds: float


def static_incidents(incidents: list[Incident]) -> list[Incident]:
    """The incidents with expect/forbid in the static set's alert names."""
    out = []
    for item in incidents:
        expect, forbid = STATIC[item.kind]
        if item.forbid and item.kind == "engine_restart":
            forbid = STATIC_DEPLOY_FORBID  # the nightly rolling deploy: restarts must not look like regressions
        out.append(replace(item, expect=expect, forbid=forbid))
    return out


def cli() -> list[str]:
    """The installed `inferwatch` script beside this interpreter, else `python -m inferwatch.cli`."""
    script = Path(sys.executable).with_name("inferwatch")
    if script.exists():
        return [str(script)]
    found = shutil.which("inferwatch")
    return [found] if found else [sys.executable, "-m", "inferwatch.cli"]


def backtest(name: str, history: Path, incidents: Path, rules: Path | None, jobs: int | None) -> Run:
    command = [*cli(), "rules", "backtest", "--history", str(history), "--incidents", str(incidents), "--json"]
    if rules:
        command += ["--rules", str(rules)]
    if jobs:
        command += ["--jobs", str(jobs)]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"alert_quality: {' '.join(command[-8:])} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return Run(name, json.loads(done.stdout), seconds)


# -- scoring against the targets ------------------------------------------------------------------

def normal_weeks(report: dict[str, Any], grace: float = 3600) -> float:
    """Weeks of the span outside every incident window (+ grace): the exposure for false episodes."""
    start, end = report["span"]["start"], report["span"]["end"]
    windows = sorted((max(start, i["start"]), min(end, i["end"] + grace)) for i in report["incidents"])
    busy, cursor = 0.0, start
    for a, b in windows:
        a = max(a, cursor)
        if b > a:
            busy += b - a
            cursor = b
    return max(end - start - busy, 0.0) / WEEK


def targets(report: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """(target, met, evidence) for one rule set."""
    incidents = report["incidents"]
    false = sum(a["false_episodes"] or 0 for a in report["alerts"].values())
    missed = [f"{i['kind']} ({i['model']})" for i in incidents if not i["detected"]]
    rows = [("0 false episodes on normal traffic", false == 0, f"{false} false episodes"),
            ("every labelled incident caught", not missed, "missed: " + ", ".join(missed) if missed else "all")]
    for kind, limit in DELAY_TARGETS.items():
        mine = [i for i in incidents if i["kind"] == kind]
        delays = [i["delay_seconds"] for i in mine]
        met = bool(mine) and all(d is not None and d <= limit * 60 for d in delays)
        shown = ", ".join("missed" if d is None else f"{d / 60:.0f} min" for d in delays) or "no such incident"
        rows.append((f"{kind} detected within {limit} min", met, shown))
    peak = [i for i in incidents if i["kind"] == "traffic_peak"]
    fired = sorted({name for i in peak for name in i["forbid_violations"]})
    rows.append(("traffic peak: no latency-regression alert", bool(peak) and not fired,
                 ", ".join(fired) if fired else "none fired"))
    return rows


# -- markdown -------------------------------------------------------------------------------------

def table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def stamp(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%a %m-%d %H:%M")


def incident_cell(item: dict[str, Any]) -> tuple[str, str, str]:
    if not item["detected"]:
        detected = "**missed**"
        delay = "-"
    else:
        detected = item["alert"]
        delay = f"{item['delay_seconds'] / 60:.0f}"
    return detected, delay, ", ".join(item["forbid_violations"]) or "-"


def incidents_section(shipped: Run, static: Run) -> list[str]:
    rows = []
    for a, b in zip(shipped.report["incidents"], static.report["incidents"], strict=True):
        rows.append((a["kind"], a["model"], stamp(a["start"]), f"{(a['end'] - a['start']) / 60:.0f}",
                     *incident_cell(a), *incident_cell(b)))
    return table(("incident", "model", "start (UTC)", "min", "shipped: detected by", "delay min",
                  "forbidden fired", "static: detected by", "delay min", "forbidden fired"), rows)


def alerts_section(run: Run) -> list[str]:
    weeks = normal_weeks(run.report)
    rows = []
    for name, stats in run.report["alerts"].items():
        false = stats["false_episodes"] or 0
        rows.append((name, stats["episodes"], false, f"{false / weeks:.1f}" if weeks else "-",
                     f"{stats['firing_minutes']:.0f}"))
    if not rows:
        return ["No alert fired."]
    return [f"Normal traffic in the span: {weeks * 7:.1f} days.", "",
            *table(("alert", "episodes", "false episodes", "false per normal week", "firing minutes"), rows)]


def false_section(run: Run, limit: int = 40) -> list[str]:
    false = [e for e in run.report["episodes"] if e["false"]]
    if not false:
        return ["None."]
    rows = []
    for e in false[:limit]:
        labels = ", ".join(f"{k}={v}" for k, v in sorted(e["labels"].items())
                           if k not in ("team", "service", "severity"))
        rows.append((stamp(e["start"]), f"{(e['end'] - e['start']) / 60:.0f}", e["alertname"], labels))
    more = ["", f"... and {len(false) - limit} more."] if len(false) > limit else []
    return [*table(("start (UTC)", "min", "alert", "labels"), rows), *more]


def fleet_section(history: History, incidents: list[Incident]) -> list[str]:
    """The generator's parameters and what they produce: p95 TTFT at a normal peak and at the traffic peak."""
    peak = next(i for i in incidents if i.kind == "traffic_peak")
    normal_day = peak.start - traffic.DAY  # the same time the day before: a normal weekday peak
    rows = []
    rho = traffic.PEAK_RHO * traffic.TRAFFIC_PEAK_FACTOR
    for model in traffic.MODELS:
        usual = max_p95(history, model.name, normal_day - 3 * 3600, normal_day + 3 * 3600)
        during = max_p95(history, model.name, peak.start, peak.end) if model.name == peak.model else None
        night = traffic.usual_rate(model, traffic.START + 4 * 3600)
        rows.append((model.name, model.replicas, f"{model.capacity:.2f}", f"{model.peak_rate:g}",
                     f"{night:.2f}", f"{traffic.PEAK_RHO:.2f}", f"{usual:.2f}",
                     "-" if during is None else f"{during:.2f} (rho {rho:.2f})",
                     f"{traffic.TTFT_SLA:g}"))
    return table(("model", "replicas", "capacity req/s/replica", "weekday peak req/s", "night req/s",
                  "peak rho", "max 5m p95 TTFT, the day before, same hours +-3h (s)",
                  "max 5m p95 TTFT, traffic peak (s)", "TTFT SLA (s)"), rows)


def max_p95(history: History, model: str, start: float, end: float, window: int = 5) -> float:
    """The largest 5-minute p95 TTFT of a model between start and end, as histogram_quantile sees it."""
    columns: dict[str, dict[str, list[float | None]]] = {}
    for key, values in history.series.items():
        name, labels = parse_series_key(key)
        if name == "vllm:time_to_first_token_seconds_bucket" and labels["model_name"] == model:
            columns.setdefault(labels["instance"], {})[labels["le"]] = values
    first = int((start - history.start) // history.step)
    last = min(int((end - history.start) // history.step), history.steps() - 1)
    les = [str(b) for b in traffic.TTFT_BOUNDS] + ["+Inf"]
    best = 0.0
    for i in range(max(first, window), last + 1):
        totals = [0.0] * len(les)
        for buckets in columns.values():
            for j, le in enumerate(les):
                a, b = buckets[le][i - window], buckets[le][i]
                if a is not None and b is not None and b >= a:
                    totals[j] += b - a
        if totals[-1] > 0:
            best = max(best, traffic.bucket_quantile(0.95, traffic.TTFT_BOUNDS, totals))
    return best


def render(shipped: Run, static: Run, history: History, incidents: list[Incident],
           timings: dict[str, float], args: argparse.Namespace) -> str:
    lines = [f"Run {datetime.date.today().isoformat()} on {os.cpu_count()} cores ({platform.machine()}, "
             f"Python {platform.python_version()}, {promtool_version()}), `--days {args.days} --seed {args.seed}`: "
             f"{len(history.series)} series x {history.steps()} steps "
             f"({history.samples():,} samples), {len(incidents)} labelled incidents.", ""]
    lines += table(("stage", "seconds"), [(k, f"{v:.1f}") for k, v in timings.items()])
    lines += ["", "### Targets", ""]
    rows = [(target, "yes" if a_met else "**no**", a_why, "yes" if b_met else "**no**", b_why)
            for (target, a_met, a_why), (_, b_met, b_why) in zip(targets(shipped.report), targets(static.report),
                                                                strict=True)]
    lines += table(("target", "shipped rules", "evidence", "static rules", "evidence"), rows)
    lines += ["", "### Incidents", "", *incidents_section(shipped, static)]
    lines += ["", "### Alerts: shipped rules", "", *alerts_section(shipped)]
    lines += ["", "### Alerts: static rules", "", *alerts_section(static)]
    lines += ["", "### False episodes: shipped rules", "", *false_section(shipped)]
    lines += ["", "### False episodes: static rules", "", *false_section(static)]
    lines += ["", "### The fleet", "", *fleet_section(history, incidents)]
    return "\n".join(lines) + "\n"


def promtool_version() -> str:
    try:
        out = subprocess.run(["promtool", "--version"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return "no promtool"
    match = re.search(r"version (\S+)", out)
    return f"promtool {match.group(1)}" if match else "promtool"


def splice(path: Path, body: str) -> None:
    """Replace what is between the markers (append the markers when the file has none)."""
    text = path.read_text() if path.exists() else ""
    block = f"{BEGIN}\n{body}{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + block + "\n"
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--days", type=int, default=15)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "alert-quality.md")
    parser.add_argument("--keep", metavar="DIR", help="keep history, incidents and reports in DIR")
    parser.add_argument("--jobs", type=int, help="passed to the backtest (default: its own)")
    args = parser.parse_args(argv)
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="inferwatch-alert-quality-"))
    folder.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    try:
        started = time.monotonic()
        history, incidents = traffic.generate(days=args.days, seed=args.seed)
        timings["generate the fleet"] = time.monotonic() - started
        started = time.monotonic()
        history_path = folder / "history.json.gz"
        history.save(history_path)
        (folder / "incidents.yaml").write_text(traffic.incidents_yaml(incidents))
        (folder / "static-incidents.yaml").write_text(traffic.incidents_yaml(static_incidents(incidents)))
        timings["save history + incidents"] = time.monotonic() - started
        print(f"alert_quality: {len(history.series)} series x {history.steps()} steps in {folder}", flush=True)
        shipped = backtest("shipped", history_path, folder / "incidents.yaml", None, args.jobs)
        timings["backtest, shipped rules (CLI)"] = shipped.seconds
        print(f"alert_quality: shipped rules replayed in {shipped.seconds:.0f} s", flush=True)
        static = backtest("static", history_path, folder / "static-incidents.yaml", STATIC_RULES, args.jobs)
        timings["backtest, static rules (CLI)"] = static.seconds
        print(f"alert_quality: static rules replayed in {static.seconds:.0f} s", flush=True)
        for run in (shipped, static):
            (folder / f"report-{run.name}.json").write_text(json.dumps(run.report, indent=1))
        timings["total"] = sum(timings.values())
        splice(args.out, render(shipped, static, history, incidents, timings, args))
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    print(f"alert_quality: wrote {args.out} (total {timings.get('total', 0):.0f} s)")
    for target, met, why in targets(shipped.report):
        print(f"  shipped  {'yes' if met else 'NO ':3}  {target}: {why}")
    for target, met, why in targets(static.report):
        print(f"  static   {'yes' if met else 'NO ':3}  {target}: {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
