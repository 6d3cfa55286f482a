"""Rule-evaluation cost in a real Prometheus loaded with a synthetic fleet.

200 vLLM instances serving 2 models each (every vLLM histogram with its real bucket set, the
counters and gauges the rules read), 1,600 GPUs and 400 engine-exporter endpoints are served by
one synthetic exporter (honor_labels keeps each series' `instance`). Prometheus 2.42 scrapes it
every 15 s and evaluates every inferwatch rule group every 15 s. Reported per group:
`prometheus_rule_group_last_duration_seconds` (median and max over the run), and the number of
series the recording rules add.

Target: every rule group evaluates in <= 100 ms.

Run: .venv/bin/python benchmarks/rules.py [--minutes 4] [--config inferwatch.yaml]
(`--config`: the rules rendered from that file's slo/cost sections, e.g. per-model SLO thresholds
for model-0 / model-1, to measure what the per-model branches cost.)
"""

from __future__ import annotations

import argparse
import http.server
import math
import statistics
import tempfile
import threading
import time
from pathlib import Path

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


def lognormal_cdf(x: float, median: float, sigma: float = 0.8) -> float:
    return 0.5 * (1 + math.erf(math.log(x / median) / (sigma * math.sqrt(2))))


class FleetExposition:
    """Builds the whole fleet's exposition for the current time (counters grow with time)."""

    def __init__(self) -> None:
        self.start = time.time()
        self.cdfs = {name: [lognormal_cdf(le, median) for le in buckets] + [1.0]
                     for name, (buckets, median, _) in HISTOGRAMS.items()}

    def render(self, kind: str) -> bytes:
        """`kind` is vllm, gpu or engine: one scrape job each, as in production."""
        elapsed = time.time() - self.start + 60
        lines: list[str] = []
        add = lines.append if kind == "vllm" else (lambda line: None)
        add_gpu = lines.append if kind == "gpu" else (lambda line: None)
        add_engine = lines.append if kind == "engine" else (lambda line: None)
        for i in range(INSTANCES):
            inst = f"vllm-{i}:8000"
            for m in range(MODELS):
                base = f'instance="{inst}",model_name="model-{m}",engine="0"'
                requests = (2 + (i % 7)) * elapsed
                for name, (buckets, _, per_request) in HISTOGRAMS.items():
                    observations = requests * per_request
                    cdf = self.cdfs[name]
                    for le, share in zip([*map(str, buckets), "+Inf"], cdf, strict=True):
                        add(f'{name}_bucket{{{base},le="{le}"}} {observations * share:.1f}')
                    add(f"{name}_count{{{base}}} {observations:.1f}")
                    add(f"{name}_sum{{{base}}} {observations * 0.3:.3f}")
                for reason, share in (("stop", 0.9), ("length", 0.095), ("error", 0.005)):
                    add(f'vllm:request_success_total{{{base},finished_reason="{reason}"}} {requests * share:.1f}')
                add(f"vllm:prompt_tokens_total{{{base}}} {requests * 800:.0f}")
                add(f"vllm:generation_tokens_total{{{base}}} {requests * 200:.0f}")
                add(f"vllm:num_preemptions_total{{{base}}} {requests * 0.001:.2f}")
                add(f"vllm:prefix_cache_queries_total{{{base}}} {requests * 800:.0f}")
                add(f"vllm:prefix_cache_hits_total{{{base}}} {requests * 200:.0f}")
                add(f"vllm:num_requests_running{{{base}}} {4 + i % 5}")
                add(f"vllm:num_requests_waiting{{{base}}} {i % 3}")
                add(f"vllm:kv_cache_usage_perc{{{base}}} {0.3 + (i % 10) / 20:.2f}")
                add_engine(f'inferwatch_engine_up{{endpoint="e-{i}-{m}",model_name="model-{m}",role="primary",'
                           f'hostname="host-{i}"}} 1')
                add_engine(f'inferwatch_model_version_info{{endpoint="e-{i}-{m}",model_name="model-{m}",'
                           f'version="v1",source="config"}} 1')
            for g in range(GPUS_PER_HOST):
                add_gpu(f'inferwatch_gpu_up{{instance="host-{i}:9835",hostname="host-{i}",gpu="{g}",'
                        f'uuid="GPU-{i}-{g}"}} 1')
        for m in range(MODELS):
            add_engine(f'inferwatch_model_healthy_endpoints{{model_name="model-{m}",role="primary"}} {INSTANCES}')
            add_engine(f'inferwatch_model_configured_endpoints{{model_name="model-{m}",role="primary"}} {INSTANCES}')
        return ("\n".join(lines) + "\n").encode()


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--config", help="render the rules from this inferwatch.yaml (default: the shipped rules)")
    parser.add_argument("--rule-files", nargs="+", metavar="FILE",
                        help="load these rule files instead (e.g. another revision's, for an A/B run)")
    args = parser.parse_args()
    config = load_config(args.config) if args.config else None
    exposition = FleetExposition()
    server = serve(exposition)
    target = f"127.0.0.1:{server.server_address[1]}"
    with tempfile.TemporaryDirectory() as tmp:
        rule_files = [str(Path(f).resolve()) for f in args.rule_files or []]
        for relative, text in ({} if args.rule_files else rules.rendered(config)).items():
            path = Path(tmp) / Path(relative).name
            path.write_text(text)
            rule_files.append(str(path))
        prometheus = Prometheus(Path(tmp) / "prometheus", scrape_interval="15s", evaluation_interval="15s",
                                rule_files=rule_files)
        # One job per exporter kind (one path each on the synthetic target); the selectors in the
        # rules pick them by job name, exactly as in production.
        prometheus.scrape_configs = [
            {"job_name": job, "honor_labels": True, "scrape_timeout": "14s", "metrics_path": f"/{path}",
             "static_configs": [{"targets": [target]}]}
            for job, path in (("vllm", "vllm"), ("inferwatch-gpu", "gpu"), ("inferwatch-engine", "engine"))
        ]
        prometheus.start()
        # Prometheus's own metrics hold the rule-group durations.
        prometheus.set_job("prometheus", [f"127.0.0.1:{prometheus.port}"])
        try:
            raw = prometheus.wait_for_series('scrape_samples_scraped{job="vllm"}')[0]["value"][1]
            started = time.time()
            time.sleep(args.minutes * 60)
            durations = prometheus.query_range("prometheus_rule_group_last_duration_seconds", started + 60,
                                               time.time(), 15)
            recorded = prometheus.query_value('count({__name__=~"[a-z_]*:.+:.+"})')
            per_group = {}
            for series in durations:
                group = series["metric"]["rule_group"].split(";")[-1]
                per_group[group] = [float(v) * 1000 for _, v in series["values"]]
        finally:
            prometheus.stop()
            server.shutdown()
    print(f"# Rule groups on {INSTANCES} vLLM instances x {MODELS} models, Prometheus 2.42, 15 s interval, "
          f"{args.minutes:.0f} min")
    print(f"raw samples per scrape of the vLLM job: {raw}; series added by recording rules: {recorded:.0f}\n")
    print("| rule group | median ms | max ms | evaluations |")
    print("|---|---|---|---|")
    for group, values in sorted(per_group.items()):
        print(f"| {group} | {statistics.median(values):.1f} | {max(values):.1f} | {len(values)} |")


if __name__ == "__main__":
    main()
