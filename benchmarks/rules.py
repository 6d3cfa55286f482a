"""Rule-evaluation cost in a real Prometheus loaded with a synthetic fleet, without and with history.

200 vLLM instances serving 2 models each (every vLLM histogram with its real bucket set, the
counters and gauges the rules read), 1,600 GPUs and 400 engine-exporter endpoints are served by
one synthetic exporter (honor_labels keeps each series' `instance`). Prometheus 2.42 scrapes it
every 15 s and evaluates every inferwatch rule group every 15 s (or at the group's `interval`).
Reported per group: `prometheus_rule_group_last_duration_seconds` over distinct evaluations
(median and max), and the number of series the recording rules add.

Two runs, one after the other, same rule files, same synthetic target:
1. without history: a fresh data directory (what the first version of this benchmark measured;
   groups reading `offset 1w` or `[30d]` windows find them empty, so that is a lower bound);
2. with `--history-days` (default 8) of history backfilled with promtool before Prometheus
   starts: the raw series of all three jobs for the whole fleet at `--history-step` (default
   1 minute), and every series the rule files record, at its group's evaluation interval. The
   recorded series are written directly (labels and current values taken from run 1, a +-10 %
   daily cycle applied), not evaluated with `promtool tsdb create-blocks-from rules`: that tool
   evaluates at one `--eval-interval` for every group and needs one pass per level of rules
   reading rules (five here), which on this machine would take longer than the raw backfill, and
   at 60 s it would give the long windows 4x fewer points than a server recording every 15 s.

Target: every rule group evaluates in <= 100 ms, with history.

Run: .venv/bin/python benchmarks/rules.py [--minutes 6] [--history-days 8] [--history-step 60]
     [--config inferwatch.yaml | --rule-files FILE...]
(`--config`: the rules rendered from that file's slo/cost sections; `--rule-files`: these files,
e.g. another revision's for an A/B run; `--history-days 0`: run 1 only.)
"""

from __future__ import annotations

import argparse
import http.server
import math
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from backfill import DAY, DayWriter, RecordedSeries, Series, backfill, recorded_names

from inferwatch import rules
from inferwatch.config import load_config
from inferwatch.lab.stack import Prometheus

INSTANCES, MODELS, GPUS_PER_HOST = 200, 2, 8
TTFT = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0,
        80.0, 160.0, 640.0, 2560.0]
ITL = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0]
E2E = [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0,
       960.0, 1920.0, 7680.0]
HISTOGRAMS = {  # name -> (buckets, median seconds, observations per request)
    "vllm:time_to_first_token_seconds": (TTFT, 0.2, 1),
    "vllm:inter_token_latency_seconds": (ITL, 0.03, 100),
    "vllm:e2e_request_latency_seconds": (E2E, 3.0, 1),
    "vllm:request_queue_time_seconds": (E2E, 0.05, 1),
}
JOBS = (("vllm", "vllm"), ("inferwatch-gpu", "gpu"), ("inferwatch-engine", "engine"))  # job, path
EVALUATION_SECONDS = 15
RETENTION = "30d"
HEAD_ONLY_SECONDS = 600  # history ends at least this long before run 2 starts


def lognormal_cdf(x: float, median: float, sigma: float = 0.8) -> float:
    return 0.5 * (1 + math.erf(math.log(x / median) / (sigma * math.sqrt(2))))


def fleet_series() -> dict[str, list[Series]]:
    """Exposition kind (vllm, gpu, engine: one scrape job each, as in production) -> its series.

    One table for the live exposition and the backfilled history, so both are the same series
    and the counters continue across the join."""
    kinds: dict[str, list[Series]] = {"vllm": [], "gpu": [], "engine": []}
    vllm, gpu, engine = kinds["vllm"], kinds["gpu"], kinds["engine"]
    cdfs = {name: [lognormal_cdf(le, median) for le in buckets] + [1.0]
            for name, (buckets, median, _) in HISTOGRAMS.items()}
    for i in range(INSTANCES):
        inst = f"vllm-{i}:8000"
        for m in range(MODELS):
            base = f'instance="{inst}",model_name="model-{m}",engine="0"'
            requests = 2 + (i % 7)  # per second

            def counter(family: str, labels: str, rate: float, digits: int) -> None:
                vllm.append(Series(family, "counter", f"{family}_total", labels, rate, digits=digits))

            def gauge(name: str, value: float, digits: int, kind_list: list[Series] = vllm,
                      labels: str = base) -> None:
                kind_list.append(Series(name, "gauge", name, labels, 0.0, value, digits))

            for name, (buckets, _, per_request) in HISTOGRAMS.items():
                observations = requests * per_request
                for le, share in zip([*map(str, buckets), "+Inf"], cdfs[name], strict=True):
                    vllm.append(Series(name, "histogram", f"{name}_bucket", f'{base},le="{le}"',
                                       observations * share))
                vllm.append(Series(name, "histogram", f"{name}_count", base, observations))
                vllm.append(Series(name, "histogram", f"{name}_sum", base, observations * 0.3, digits=3))
            for reason, share in (("stop", 0.9), ("length", 0.095), ("error", 0.005)):
                counter("vllm:request_success", f'{base},finished_reason="{reason}"', requests * share, 1)
            counter("vllm:prompt_tokens", base, requests * 800, 0)
            counter("vllm:generation_tokens", base, requests * 200, 0)
            counter("vllm:num_preemptions", base, requests * 0.001, 2)
            counter("vllm:prefix_cache_queries", base, requests * 800, 0)
            counter("vllm:prefix_cache_hits", base, requests * 200, 0)
            gauge("vllm:num_requests_running", 4 + i % 5, 0)
            gauge("vllm:num_requests_waiting", i % 3, 0)
            gauge("vllm:kv_cache_usage_perc", 0.3 + (i % 10) / 20, 2)
            gauge("inferwatch_engine_up", 1, 0, engine,
                  f'endpoint="e-{i}-{m}",model_name="model-{m}",role="primary",hostname="host-{i}"')
            gauge("inferwatch_model_version_info", 1, 0, engine,
                  f'endpoint="e-{i}-{m}",model_name="model-{m}",version="v1",source="config"')
        for g in range(GPUS_PER_HOST):
            gpu.append(Series("inferwatch_gpu_up", "gauge", "inferwatch_gpu_up",
                              f'instance="host-{i}:9835",hostname="host-{i}",gpu="{g}",uuid="GPU-{i}-{g}"', 0.0, 1,
                              0))
    for m in range(MODELS):
        for name, value in (("inferwatch_model_healthy_endpoints", INSTANCES),
                            ("inferwatch_model_configured_endpoints", INSTANCES)):
            engine.append(Series(name, "gauge", name, f'model_name="model-{m}",role="primary"', 0.0, value, 0))
    return kinds


class FleetExposition:
    """Renders the fleet's exposition for the current time (counters grow with time since
    `origin`; with history, the origin is before the history's start, so there is no reset)."""

    def __init__(self, origin: float | None = None) -> None:
        self.origin = time.time() - 60 if origin is None else origin
        self.series = fleet_series()

    def render(self, kind: str) -> bytes:
        """`kind` is vllm, gpu or engine: one scrape job each, as in production."""
        elapsed = time.time() - self.origin
        return ("\n".join(s.exposition_line(elapsed) for s in self.series.get(kind, [])) + "\n").encode()

    def history_series(self, target: str) -> list[tuple[Series, str]]:
        """Every series with the labels a scrape adds (`job`; `instance` = the target when the
        exposition has none, as honor_labels does), grouped by family for OpenMetrics."""
        rows = []
        for job, kind in JOBS:
            for series in self.series[kind]:
                labels = f'job="{job}",{series.labels}'
                if 'instance="' not in series.labels:
                    labels = f'instance="{target}",{labels}'
                rows.append((series, labels))
        return sorted(rows, key=lambda row: row[0].family)  # stable: series stay in exposition order


def serve(exposition: FleetExposition) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            body = exposition.render(self.path.strip("/"))
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@dataclass
class RunResult:
    per_group: dict[str, list[float]]  # group -> ms per distinct evaluation
    raw_samples: str
    recorded_count: float
    recorded: list[RecordedSeries]
    compactions: float
    head_series: float


def measure(workdir: Path, target: str, rule_files: list[str], minutes: float,
            names: dict[str, int]) -> RunResult:
    """Start Prometheus on `workdir/data` (empty or backfilled), let it scrape and evaluate for
    `minutes`, and read each group's evaluation durations and the recorded series."""
    # Retention must cover the backfilled days (or Prometheus deletes the blocks at start-up), and
    # `max-block-duration=2h` keeps the compactor from merging the backfilled blocks (promtool
    # cuts a day into 6-18 h blocks) during the measurement.
    prometheus = Prometheus(workdir, scrape_interval=f"{EVALUATION_SECONDS}s",
                            evaluation_interval=f"{EVALUATION_SECONDS}s", rule_files=rule_files,
                            retention=RETENTION, extra_args=["--storage.tsdb.max-block-duration=2h"])
    # One job per exporter kind (one path each on the synthetic target); the selectors in the
    # rules pick them by job name, exactly as in production.
    prometheus.scrape_configs = [
        {"job_name": job, "honor_labels": True, "scrape_timeout": "14s", "metrics_path": f"/{path}",
         "static_configs": [{"targets": [target]}]}
        for job, path in JOBS
    ]
    prometheus.start()
    # Prometheus's own metrics hold the rule-group durations.
    prometheus.set_job("prometheus", [f"127.0.0.1:{prometheus.port}"])
    try:
        raw = prometheus.wait_for_series('scrape_samples_scraped{job="vllm"}', timeout=120)[0]["value"][1]
        started = time.time()
        time.sleep(minutes * 60)
        end = time.time()
        durations = prometheus.query_range("prometheus_rule_group_last_duration_seconds", started + 60, end, 5)
        stamps = prometheus.query_range("prometheus_rule_group_last_evaluation_timestamp_seconds",
                                        started + 60, end, 5)
        evaluated = {s["metric"]["rule_group"]: [v for _, v in s["values"]] for s in stamps}
        per_group: dict[str, list[float]] = {}
        for series in durations:
            key = series["metric"]["rule_group"]
            seen: dict[str, float] = {}  # evaluation timestamp -> duration: one value per evaluation
            for (_, value), stamp in zip(series["values"], evaluated.get(key, []), strict=False):
                seen.setdefault(stamp, float(value) * 1000)
            per_group[key.split(";")[-1]] = list(seen.values())
        recorded_count = prometheus.query_value('count({__name__=~"[a-z_]*:.+:.+"})') or 0.0
        recorded = []
        for name, interval in names.items():
            for sample in prometheus.query(f'{{__name__="{name}"}}'):
                labels = {k: v for k, v in sample["metric"].items() if k != "__name__"}
                recorded.append(RecordedSeries(name, labels, float(sample["value"][1]), interval))
        compactions = prometheus.query_value("sum(prometheus_tsdb_compactions_total)") or 0.0
        head_series = prometheus.query_value("prometheus_tsdb_head_series") or 0.0
    finally:
        prometheus.stop()
    return RunResult(per_group, raw, recorded_count, recorded, compactions, head_series)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=6.0, help="live evaluation per run (default 6)")
    parser.add_argument("--history-days", type=float, default=8.0,
                        help="days of backfilled history for the second run; 0: no second run (default 8)")
    parser.add_argument("--history-step", type=int, default=60,
                        help="seconds between backfilled raw samples (default 60; recorded series use "
                             "their group's interval)")
    parser.add_argument("--config", help="render the rules from this inferwatch.yaml (default: the shipped rules)")
    parser.add_argument("--rule-files", nargs="+", metavar="FILE",
                        help="load these rule files instead (e.g. another revision's, for an A/B run)")
    args = parser.parse_args()
    began = time.monotonic()
    config = load_config(args.config) if args.config else None
    history_seconds = int(args.history_days * DAY)
    now = int(time.time())
    exposition = FleetExposition(origin=now - history_seconds - 60)
    server = serve(exposition)
    target = f"127.0.0.1:{server.server_address[1]}"
    runs: dict[str, RunResult] = {}
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        rule_files = [str(Path(f).resolve()) for f in args.rule_files or []]
        for relative, text in ({} if args.rule_files else rules.rendered(config)).items():
            path = Path(tmp) / Path(relative).name
            path.write_text(text)
            rule_files.append(str(path))
        names = recorded_names(rule_files, EVALUATION_SECONDS)
        try:
            print(f"run 1: no history, {args.minutes:g} min", flush=True)
            runs["none"] = measure(Path(tmp) / "fresh", target, rule_files, args.minutes, names)
            if history_seconds:
                end = int(time.time()) // 60 * 60 - 60  # blocks must end before the head's first sample
                start = end - history_seconds
                writer = DayWriter(exposition.history_series(target), runs["none"].recorded, args.history_step,
                                   exposition.origin)
                print(f"backfill: {args.history_days:g} days, raw every {args.history_step} s, "
                      f"{len(runs['none'].recorded)} recorded series", flush=True)
                report = backfill(Path(tmp) / "history" / "data", Path(tmp) / "scratch", writer, start, end)
                print(f"backfill: {report.samples / 1e6:.0f} M samples in {report.wall_seconds:.0f} s "
                      f"({report.write_seconds:.0f} s writing text), {len(report.blocks)} blocks", flush=True)
                # Let the short windows over raw series ([5m] rates, 5 min lookback) leave the last
                # block before measuring: in production the head holds the last hours, so they
                # read the head only; a window straddling block and head costs ~2x more.
                time.sleep(max(0.0, end + HEAD_ONLY_SECONDS - time.time()))
                print(f"run 2: {args.history_days:g} days of history, {args.minutes:g} min", flush=True)
                runs["history"] = measure(Path(tmp) / "history", target, rule_files, args.minutes, names)
        finally:
            server.shutdown()
    total = time.monotonic() - began
    first = runs["none"]
    print(f"\n# Rule groups on {INSTANCES} vLLM instances x {MODELS} models, Prometheus 2.42, "
          f"{EVALUATION_SECONDS} s interval, {args.minutes:g} min per run")
    print(f"raw samples per scrape of the vLLM job: {first.raw_samples}; series added by recording rules: "
          f"{first.recorded_count:.0f}")
    if "history" in runs:
        second = runs["history"]
        print(f"history: {args.history_days:g} days, raw every {args.history_step} s, recorded series at their "
              f"group interval; backfill {report.samples / 1e6:.0f} M samples, {report.wall_seconds:.0f} s; "
              f"compactions during run 2: {second.compactions:.0f}")
    print(f"benchmark wall time: {total / 60:.1f} min\n")
    columns = [label for label in ("none", "history") if label in runs]
    header = " | ".join(f"{c} median ms | {c} max ms | {c} evals" for c in columns)
    print(f"| rule group | {header} |")
    print("|---" * (1 + 3 * len(columns)) + "|")
    groups = sorted(set().union(*(r.per_group for r in runs.values())))
    for group in groups:
        cells = []
        for c in columns:
            values = runs[c].per_group.get(group) or [math.nan]
            cells.append(f"{statistics.median(values):.1f} | {max(values):.1f} | {len(values)}")
        print(f"| {group} | {' | '.join(cells)} |")
    worst = {c: max((max(v), g) for g, v in runs[c].per_group.items()) for c in columns}
    print("\nworst evaluation: " + ", ".join(f"{c} {worst[c][0]:.1f} ms ({worst[c][1]})" for c in columns))


if __name__ == "__main__":
    main()
