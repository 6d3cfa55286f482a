"""The fleet simulator, the demand builder and the autoscaling benchmark's quick run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from inferwatch.lab.fleet import calibration
from inferwatch.lab.fleet.capacity import poisson_demand
from inferwatch.lab.fleet.demand import DAY, Envelope, Trace, build, load_trace
from inferwatch.lab.fleet.simulator import simulate

REPO = Path(__file__).resolve().parent.parent
TRACES = Path("/work/shared/data/azure-llm-inference-2023")
CURVE = calibration.Curve(name="test", source="test", step_base_seconds=0.02, step_per_seq_seconds=0.001,
                          prefill_tokens_per_second=10_000.0, prefill_slowdown_per_seq=0.0, max_num_seqs=32,
                          kv_cache_tokens=50_000)


def fixed_trace(prompt: int = 500, output: int = 50, n: int = 200) -> Trace:
    return Trace("fixed", np.full(n, 1.0), np.full(n, prompt, dtype=np.int32), np.full(n, output, dtype=np.int32))


def keep(*_args):
    return None


def test_light_load_ttft_is_the_prefill_time():
    demand = poisson_demand(fixed_trace(), 0.2, 3600, seed=1, max_model_len=None)
    result = simulate(demand, keep, CURVE, 0.0, 0.0, 3600.0, ttft_slo=1.0, initial=2)
    assert result.requests == len(demand.times) > 500
    assert result.attainment == 1.0
    assert result.ttft_quantile(0.5) == pytest.approx(CURVE.prefill_seconds(500, 1), abs=0.02)
    assert result.replica_hours == pytest.approx(2.0)


def test_littles_law_running_matches_rate_times_latency():
    rate, prompt, output = 4.0, 200, 100
    demand = poisson_demand(fixed_trace(prompt, output), rate, 3600, seed=2, max_model_len=None)
    result = simulate(demand, keep, CURVE, 0.0, 0.0, 3600.0, ttft_slo=5.0, initial=1)
    mean_running = np.mean(result.obs.running[40:])  # after the first 10 minutes
    # L = lambda * W, with W between the light-load and the fully loaded latency of the model.
    lo = prompt / CURVE.prefill_tokens_per_second + (output - 1) * CURVE.step_seconds(1)
    hi = prompt / CURVE.prefill_tokens_per_second + (output - 1) * CURVE.step_seconds(CURVE.max_num_seqs)
    assert rate * lo * 0.8 <= mean_running <= rate * hi * 1.2
    completed = sum(result.obs.completions)
    assert completed == result.requests


def test_overload_queues_and_misses_the_slo():
    # 32 slots, 100-token outputs at ~0.05 s/step: about 6 requests/s at most.
    demand = poisson_demand(fixed_trace(200, 100), 12.0, 1800, seed=3, max_model_len=None)
    result = simulate(demand, keep, CURVE, 0.0, 0.0, 1800.0, ttft_slo=1.0, initial=1)
    assert result.attainment < 0.5
    assert max(result.obs.waiting) > 100


def test_startup_delay_is_honoured():
    demand = poisson_demand(fixed_trace(), 2.0, 1800, seed=4, max_model_len=None)

    def add_one_at_300(k, now, obs, fleet):
        return 2 if now == 300.0 else None

    result = simulate(demand, add_one_at_300, CURVE, 180.0, 0.0, 1800.0, ttft_slo=1.0, initial=1)
    ready, total = np.array(result.obs.ready), np.array(result.obs.total)
    k_start, k_ready = 300 // 15, (300 + 180) // 15
    assert total[k_start + 1] == 2 and ready[k_start + 1] == 1
    assert ready[k_ready - 1] == 1 and ready[k_ready] == 2
    # Paid for from the moment it was created: 1800 s of one, 1500 s of the other.
    assert result.replica_seconds == pytest.approx(1800 + 1500)


def test_no_ready_replica_holds_requests_at_the_router():
    demand = poisson_demand(fixed_trace(), 1.0, 600, seed=5, max_model_len=None)

    def start_one(k, now, obs, fleet):
        return 1 if k == 0 else None

    result = simulate(demand, start_one, CURVE, 120.0, 0.0, 600.0, ttft_slo=1.0, initial=0)
    early = int(np.sum(demand.times < 110))
    assert result.requests - result.good >= early > 50  # waited for the pod: SLO missed
    assert result.good > 0


def test_simulation_is_deterministic():
    trace = fixed_trace()
    a = simulate(poisson_demand(trace, 3.0, 900, 7, None), keep, CURVE, 0.0, 0.0, 900.0, 0.1, 1)
    b = simulate(poisson_demand(trace, 3.0, 900, 7, None), keep, CURVE, 0.0, 0.0, 900.0, 0.1, 1)
    assert (a.good, a.requests, a.obs.completions) == (b.good, b.requests, b.obs.completions)


def test_envelope_shape():
    env = Envelope(trough=0.15, weekend=0.5, day_jitter=0.0)
    hours = np.arange(24) * 3600.0
    monday = env(hours)
    assert monday.argmax() == 14 and monday.max() == pytest.approx(1.0)
    assert monday.min() == pytest.approx(0.15, abs=0.01)
    saturday = env(5 * DAY + hours)
    assert saturday.max() == pytest.approx(0.5, abs=0.01)
    assert env(np.array([8 * DAY + 14 * 3600]))[0] == pytest.approx(1.0)  # the next Tuesday
    jittered = Envelope(day_jitter=0.1, seed=3)(np.arange(7) * DAY + 14 * 3600)
    assert len(set(np.round(jittered[:5], 6))) == 5 and np.all(np.abs(jittered[:5] - 1) <= 0.1)


@pytest.mark.skipif(not (TRACES / "conv.csv").exists(), reason="Azure trace not present")
def test_demand_follows_envelope_keeps_lengths_and_is_deterministic():
    trace = load_trace(TRACES / "conv.csv")
    env = Envelope(seed=1)
    demand = build(trace, 2, 20.0, env, seed=1)
    again = build(trace, 2, 20.0, env, seed=1)
    other = build(trace, 2, 20.0, env, seed=2)
    assert np.array_equal(demand.times, again.times)
    assert not np.array_equal(demand.times[:1000], other.times[:1000])
    assert np.all(np.diff(demand.times) >= 0) and demand.times[-1] < 2 * DAY
    hourly = demand.counts(0, 2 * DAY, 3600) / 3600
    expected = demand.rate(np.arange(48) * 3600 + 1800)
    assert np.corrcoef(hourly, expected)[0, 1] > 0.9
    assert hourly.sum() * 3600 == pytest.approx(expected.sum() * 3600, rel=0.15)
    assert set(np.unique(demand.outputs)) <= set(np.unique(trace.outputs))
    clamped = build(trace, 0.1, 5.0, env, seed=1, max_model_len=512)
    assert int((clamped.prompts + clamped.outputs).max()) <= 512


def test_curve_fit_and_file_checks(tmp_path):
    points = [{"concurrency": c, "prompt_tokens": 100, "ttft_p50_seconds": 100 * (1 + 0.1 * c) / 2000,
               "tpot_p50_seconds": 0.01 + 0.002 * c} for c in (1, 2, 4, 8)]
    curve = calibration.fit_curve(points, "cpu", "measured", max_num_seqs=8, kv_cache_tokens=4096)
    assert curve.step_base_seconds == pytest.approx(0.01)
    assert curve.step_per_seq_seconds == pytest.approx(0.002)
    assert curve.prefill_tokens_per_second == pytest.approx(2000)
    assert curve.prefill_slowdown_per_seq == pytest.approx(0.1)
    path = tmp_path / "curve.json"
    calibration.write_curve(path, curve, points, {"engine": "test"})
    assert calibration.load_curve(path) == curve
    calibration.write_curve(path, curve, [], {})
    with pytest.raises(calibration.CalibrationError, match="measured"):
        calibration.load_curve(path)


@pytest.mark.skipif(not (TRACES / "conv.csv").exists(), reason="Azure trace not present")
def test_autoscaling_quick_prints_the_table():
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "autoscaling.py"), "--quick"],
                         capture_output=True, text=True, timeout=600, check=True).stdout
    for name in ("inferwatch scaler", "production-stack", "ENOVA rules", "static-peak"):
        assert out.count(f"| {name}") == 2, name
    assert "| 60 s |" in out and "| 180 s |" in out


def test_committed_cpu_curve_is_the_fit_of_its_own_measured_points():
    """benchmarks/data/vllm-cpu-curve.json (benchmarks/calibrate_fleet.py on the real vLLM CPU server):
    refitting its points gives its curve, so the file was not edited by hand."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "data" / "vllm-cpu-curve.json"
    curve = calibration.load_curve(path)
    data = json.loads(path.read_text())
    refit = calibration.fit_curve(data["points"], curve.name, curve.source, curve.max_num_seqs,
                                  curve.kv_cache_tokens, curve.max_model_len)
    assert refit == curve
    assert {p["concurrency"] for p in data["points"]} >= {1, 8}


def test_superposed_users_keep_a_bursts_duration_and_warp_compresses_it():
    """A 10 s burst at 10x the base rate, the load scaled 8x: time warp squeezes the burst into 1.25 s (faster
    clients), superposition keeps it 10 s long and adds independent copies (more clients). Same mean rate."""
    gaps = np.concatenate([np.full(300, 2.0), np.full(50, 0.2), np.full(300, 2.0)])
    trace = Trace("burst", gaps, np.full(650, 100, dtype=np.int32), np.full(650, 10, dtype=np.int32))
    flat = Envelope(trough=1.0, day_jitter=0.0)
    hours = 6 * 3600.0
    busiest, totals = {}, {}
    for arrivals in ("warp", "superpose"):
        demand = build(trace, 0.25, 8 * trace.mean_rate, flat, seed=4, arrivals=arrivals)
        assert np.all(np.diff(demand.times) >= 0) and demand.times[-1] < hours
        busiest[arrivals] = int(demand.counts(0.0, hours, 1.0).max())
        totals[arrivals] = len(demand.times)
    expected = 8 * trace.mean_rate * hours
    assert totals["warp"] == pytest.approx(expected, rel=0.05)
    assert totals["superpose"] == pytest.approx(expected, rel=0.05)
    assert busiest["warp"] >= 35, busiest  # 50 requests in 1.25 s
    assert busiest["superpose"] <= 25, busiest  # 5 per second per copy, plus the other copies' base rate
    with pytest.raises(ValueError, match="arrivals"):
        build(trace, 0.25, 1.0, flat, arrivals="faster")
