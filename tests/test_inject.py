"""The load injector: schedules, faults, and an open-loop run against a local OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
from pathlib import Path

import pytest

from inferwatch.inject import faults, schedule
from inferwatch.inject.client import Target
from inferwatch.inject.runner import run
from inferwatch.lab.fake_openai import DEFAULT_MODEL
from inferwatch.lab.stack import free_port, wait_until

TRACE = Path(__file__).parent / "data" / "azure-conv-300.csv"


def test_poisson_rate_and_determinism() -> None:
    arrivals = schedule.poisson(rate=50, duration=60, prompt_tokens=10, output_tokens=5, seed=1)
    assert 2700 < len(arrivals) < 3300, "about rate x duration"
    assert arrivals == schedule.poisson(50, 60, 10, 5, seed=1)
    assert all(a.at < b.at for a, b in itertools.pairwise(arrivals))


def test_trace_is_read_with_offsets_and_lengths() -> None:
    arrivals = schedule.read_trace(TRACE)
    assert len(arrivals) == 300
    assert arrivals[0].at == 0.0 and (arrivals[0].prompt_tokens, arrivals[0].output_tokens) == (374, 44)
    assert arrivals[-1].at == pytest.approx(84.0291, abs=1e-3)  # 18:17:10.7097 - 18:15:46.6806


def test_trace_scaling() -> None:
    arrivals = schedule.read_trace(TRACE)
    fast = schedule.scale(arrivals, time_scale=10)
    assert fast[-1].at == pytest.approx(arrivals[-1].at / 10)
    tripled = schedule.scale(arrivals, rate_scale=3)
    assert len(tripled) == 900
    halved = schedule.scale(arrivals, rate_scale=0.5, seed=3)
    assert 110 < len(halved) < 190
    assert [a.prompt_tokens for a in schedule.scale(arrivals, 2)] == [a.prompt_tokens for a in arrivals]


def test_bad_trace_rows_name_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "t.csv"
    bad.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.1,10,5\n2023-11-16 x,1,1\n")
    with pytest.raises(schedule.TraceError, match=r"t.csv:3: bad row"):
        schedule.read_trace(bad)
    (tmp_path / "u.csv").write_text("time,prompt\n")
    with pytest.raises(schedule.TraceError, match="missing column"):
        schedule.read_trace(tmp_path / "u.csv")


def test_fit_clamps_to_the_context() -> None:
    fitted = schedule.fit([schedule.Arrival(0, 5000, 900)], max_model_len=512, max_output=64)
    assert (fitted[0].prompt_tokens, fitted[0].output_tokens) == (448, 64)


def test_faults_change_only_the_middle_third() -> None:
    base = schedule.poisson(30, 30, 10, 5, seed=2)
    window = faults.window_of(base)
    # Every check below is relative to this window, so pin it first: the middle third of a 30 s run.
    assert 9.5 < window.start <= 10 and 19 < window.end <= 20, window
    assert sum(1 for a in base if a.at in window) > 200, "about 30/s for 10 s"
    surge = faults.apply("traffic-surge", base, factor=4)
    inside = sum(1 for a in surge if a.at in window)
    assert inside == pytest.approx(4 * sum(1 for a in base if a.at in window), rel=0.01)
    longer = faults.apply("latency-regression", base, factor=4)
    assert all((b.prompt_tokens == 40) == (b.at in window) for b in longer)
    burst = faults.apply("error-burst", base, seed=1)
    assert not any(a.invalid for a in burst if a.at not in window)
    assert 0.3 < sum(a.invalid for a in burst if a.at in window) / sum(1 for a in base if a.at in window) < 0.7
    shifted = faults.apply("prompt-shift", base)
    assert all((a.token_offset == 200) == (a.at >= window.start) for a in shifted)
    with pytest.raises(ValueError, match="unknown fault"):
        faults.apply("meteor", base)


@pytest.fixture(scope="module")
def fake_engine():
    """The fake OpenAI server in its own process, as the benchmark runs it (the client gets its own CPU)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "inferwatch.lab.fake_openai", "--port", str(port),
                             "--token-delay", "0.002"])
    url = f"http://127.0.0.1:{port}"
    import urllib.request

    try:
        wait_until(lambda: urllib.request.urlopen(url + "/health", timeout=2).status == 200, 20, what="fake engine")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def test_open_loop_run_reports_latency_and_errors(fake_engine: str) -> None:
    arrivals = faults.apply("error-burst", schedule.poisson(40, 3, 20, 8, seed=4), seed=4)
    target = Target(fake_engine, DEFAULT_MODEL)
    report = asyncio.run(run(arrivals, target, concurrency=64, progress=False))
    summary = report.summary()
    invalid = sum(a.invalid for a in arrivals)
    assert invalid > 0
    assert summary["errors"] == {"http_4xx": invalid}
    assert summary["requests_ok"] == len(arrivals) - invalid
    assert summary["ttft_seconds"]["p50"] > 0 and summary["e2e_seconds"]["p50"] >= summary["ttft_seconds"]["p50"]
    # 8 tokens 2 ms apart: client-side TPOT is about 2 ms.
    assert 0.0015 < summary["tpot_seconds"]["p50"] < 0.02
    assert summary["throughput_output_tokens_per_second"] > 0


def test_concurrency_cap_drops_instead_of_slowing_down(fake_engine: str) -> None:
    arrivals = [schedule.Arrival(0.001 * i, 5, 200) for i in range(50)]  # 200 tokens x 2 ms = 0.4 s each
    report = asyncio.run(run(arrivals, Target(fake_engine, DEFAULT_MODEL), concurrency=10, progress=False))
    assert report.dropped == 40
    assert report.summary()["errors"] == {"client_overload": 40}


def test_cli_end_to_end(fake_engine: str, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    result = subprocess.run([str(Path(sys.executable).parent / "inferwatch"), "inject", "--url", fake_engine,
                             "--trace", str(TRACE), "--time-scale", "40", "--limit", "100", "--max-output-tokens",
                             "16", "--json", str(out), "--no-progress"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "requests: 100 ok of 100 planned" in result.stdout
    assert "TTFT" in result.stdout and "schedule lag" in result.stdout
    import json

    assert json.loads(out.read_text())["requests_ok"] == 100
