"""Token-length drift on the real vLLM server: `inferwatch inject` shifts the prompt lengths and the
histogram drift scores cross their thresholds, while a same-distribution control stays below.

A warm-up, then three phases against one engine, each a trace of 600 requests whose prompt lengths are drawn
(with replacement, seeded) from the Azure conversation trace, scaled to the tiny model's context:
reference (captured and pinned with the CLI), control (a fresh draw), shift (a fresh draw with
`--fault prompt-shift`: prompts doubled from the first third on).
"""

from __future__ import annotations

import csv
import datetime
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import scrape

from inferwatch.config import DriftExporterConfig
from inferwatch.exporters.drift import server as drift_server

pytestmark = pytest.mark.slow

REQUESTS = 600  # per phase: at 600, PSI and JS stay under 0.1 on 200 of 200 same-distribution draws (docs)
RATE = 40.0
TRACE = Path(__file__).parent / "data" / "azure-conv-300.csv"


def write_phase(path: Path, seed: int) -> None:
    lengths = [int(row["ContextTokens"]) for row in csv.DictReader(TRACE.open())]
    rng = random.Random(seed)
    start, t = datetime.datetime(2026, 1, 1), 0.0
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["TIMESTAMP", "ContextTokens", "GeneratedTokens"])
        for _ in range(REQUESTS):
            t += rng.expovariate(RATE)
            prompt = min(200, max(12, rng.choice(lengths) // 10))
            writer.writerow([(start + datetime.timedelta(seconds=t)).isoformat(sep=" "), prompt, 2])


def inject(base: str, trace: Path, *extra: str) -> tuple[float, float]:
    """Replay one phase; every request must complete. A client timeout aborts the request inside vLLM,
    which still records it, with the tokens generated so far: under a loaded CI machine a 60 s timeout
    put aborted 0-token requests into the generation histogram and made it "drift"."""
    begin = time.time()
    report = trace.with_suffix(".json")
    done = subprocess.run([sys.executable, "-m", "inferwatch.cli", "inject", "--url", base, "--trace", str(trace),
                           "--max-output-tokens", "2", "--no-progress", "--timeout", "600", "--concurrency", "1000",
                           "--json", str(report), *extra],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(report.read_text())
    assert summary["errors"] == {} and summary["requests_ok"] == REQUESTS, (trace.name, summary["errors"])
    time.sleep(3)  # Prometheus scrapes every second: the phase's last requests are in
    return begin - 1, time.time()


def drift_scores(prometheus, refs: Path, begin: float, end: float) -> dict[tuple[str, str], tuple[float, float]]:
    """{(feature, method): (score, detected)} from a drift exporter started for the window [begin, end]
    (a fresh process-like start each time: the pinned reference comes from disk)."""
    config = DriftExporterConfig(listen_address="127.0.0.1", port=0, prometheus_url=prometheus.url,
                                 references_dir=str(refs), window_seconds=round(end - begin), min_samples=500,
                                 interval_seconds=3600, selector='job="vllm-drift"')
    running = drift_server.start(config)
    try:
        running.collector.run_once(now=end)
        text = scrape(running.port)
    finally:
        running.stop()
    from prometheus_client.parser import text_string_to_metric_families

    scores, detected = {}, {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.labels.get("model_name") != "tiny-llama" or s.labels.get("source") != "histogram":
                continue
            key = (s.labels.get("feature"), s.labels.get("method"))
            if s.name == "inferwatch_drift_score":
                scores[key] = s.value
            elif s.name == "inferwatch_drift_detected":
                detected[key] = s.value
            elif s.name == "inferwatch_drift_samples" and s.labels["feature"] == "prompt_tokens":
                assert s.value >= 500, (s.labels["window"], s.value)
    assert set(scores) == set(detected) and scores, text
    return {key: (scores[key], detected[key]) for key in scores}


def buckets(prometheus, histogram: str, begin: float, end: float) -> dict[str, float]:
    """{le: requests} of one phase (what the drift exporter reads), for failure messages."""
    rows = prometheus.query(f'sum by (le) (increase({histogram}_bucket{{job="vllm-drift"}}[{round(end - begin)}s]))',
                            end)
    return {row["metric"]["le"]: round(float(row["value"][1]), 1) for row in rows}


def test_injected_prompt_shift_drifts_and_a_control_does_not(prometheus, vllm_engine, tmp_path: Path) -> None:
    base = vllm_engine.server.base_url
    prometheus.set_job("vllm-drift", [base.removeprefix("http://")])
    prometheus.wait_for_series('vllm:request_prompt_tokens_count{job="vllm-drift"}')
    refs = tmp_path / "refs"
    phases = {}
    for name, seed in (("warm-up", 0), ("reference", 1), ("control", 2), ("shift", 3)):
        write_phase(tmp_path / f"{name}.csv", seed)
    # Every bucket's counter must start well above zero. increase() stops extrapolating a counter at
    # its zero point, so in a ~20 s window a bucket first filled here (earlier tests sent no 2-token
    # requests) read up to ~5 % less than buckets that already had traffic. That made the reference
    # show 2-token requests "in" (2, 5] and the shift phase's generation lengths "drift" (PSI 0.16,
    # KS 0.03). Production windows (an hour) make the effect negligible.
    inject(base, tmp_path / "warm-up.csv")
    phases["reference"] = inject(base, tmp_path / "reference.csv")

    begin, end = phases["reference"]
    cli = [sys.executable, "-m", "inferwatch.cli", "drift", "reference", "--references-dir", str(refs)]
    captured = subprocess.run([*cli, "capture", "week1", "--from", str(begin), "--to", str(end), "--prometheus-url",
                               prometheus.url, "--model", "tiny-llama"], capture_output=True, text=True, timeout=120)
    assert captured.returncode == 0, captured.stderr
    pinned = subprocess.run([*cli, "pin", "week1"], capture_output=True, text=True, timeout=120)
    assert pinned.returncode == 0 and "tiny-llama" in pinned.stdout, pinned.stderr
    stored = json.loads((refs / "week1.json").read_text())["histograms"]["tiny-llama"]["prompt_tokens"]
    assert sum(stored["counts"]) >= 550, stored  # increase() extrapolates a little either way

    phases["control"] = inject(base, tmp_path / "control.csv")
    control = drift_scores(prometheus, refs, *phases["control"])
    phases["shift"] = inject(base, tmp_path / "shift.csv", "--fault", "prompt-shift")
    shifted = drift_scores(prometheus, refs, *phases["shift"])

    for method in ("psi", "jensenshannon", "ks"):
        score, detected = control[("prompt_tokens", method)]
        assert detected == 0, (method, score)
        score, detected = shifted[("prompt_tokens", method)]
        assert detected == 1, (method, score)
    assert shifted[("prompt_tokens", "psi")][0] > 5 * max(control[("prompt_tokens", "psi")][0], 0.02)
    # Outputs are 2 tokens in every phase: generation lengths do not drift.
    generation = {key: value for key, value in shifted.items() if key[0] == "generation_tokens"}
    assert generation and not any(detected for _, detected in generation.values()), (
        generation, buckets(prometheus, "vllm:request_generation_tokens", *phases["reference"]),
        buckets(prometheus, "vllm:request_generation_tokens", *phases["shift"]))
    print("control", control, "\nshift", shifted)
