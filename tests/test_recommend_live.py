"""`inferwatch recommend` on the real vLLM CPU server: sweep it under max_num_seqs=1 and =8 (one restart),
advise, then check the advice's claim with open-loop Poisson traffic (the injector) at a rate between
the two capacities it reports: max_num_seqs=1 must miss the SLO there and max_num_seqs=8 must meet it.

Why the check rate is CHECK_RATIO x the seqs=1 capacity: one sequence at a time is a single server, so its
capacity within the SLO is its serial throughput (any level of 2 or more keeps it busy), and open-loop
arrivals above that rate queue without bound whatever the SLO. max_num_seqs=8 must have been measured with
room above that rate (MIN_ADVANTAGE), or the check would sit at its saturation and prove nothing.

The sweep runs through the CLI (`inferwatch recommend sweep`, `advise --json`), as an operator runs it.
"""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import pytest

from inferwatch.cli import main
from inferwatch.inject import schedule
from inferwatch.inject.client import Target
from inferwatch.inject.runner import percentile, run
from inferwatch.lab.engine.server import VllmServer

pytestmark = pytest.mark.slow

MODEL = "recommended"
PROMPT, OUTPUT = 64, 32
# seconds, p95: interactive chat. 1 s, not 0.5 s: room for the odd slow prefill on a shared 2-core machine
# (a calibration sweep run beside other work saw p95 TTFT up to 1.04 s at concurrency 4, p50 38 ms)
TTFT_SLO, TPOT_SLO = 1.0, 0.1
CHECK_SECONDS = 30.0  # max_num_seqs=8 gets a second window if it misses in the first (see the test)
CHECK_RATIO = 1.2  # of the seqs=1 capacity: its queue grows by a fifth of its throughput every second
MIN_ADVANTAGE = 1.5  # seqs=8 capacity over seqs=1's, so the check rate is at most 80 % of seqs=8's
WARMUP_SECONDS = 10.0


def serve(model: Path, root: Path, seqs: int) -> VllmServer:
    (root / f"seqs{seqs}").mkdir()
    return VllmServer(model, root / f"seqs{seqs}", MODEL, max_num_seqs=seqs, niceness=10).start()


def sweep(server: VllmServer, seqs: int, out: Path) -> None:
    assert main(["recommend", "sweep", "--url", server.base_url, "--model", MODEL, "--levels", "1,2,4,8",
                 "--seconds", "15", "--warmup", "3", "--prompt-tokens", str(PROMPT), "--output-tokens", str(OUTPUT),
                 "--setting", f"max_num_seqs={seqs}", "--out", str(out)]) == 0


def advise(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    capsys.readouterr()
    assert main(["recommend", "advise", *args, "--ttft-slo", str(TTFT_SLO), "--tpot-slo", str(TPOT_SLO),
                 "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def p95_ttft_at(server: VllmServer, rate: float) -> tuple[float, dict]:
    """Open-loop Poisson at `rate` for CHECK_SECONDS, after WARMUP_SECONDS of the same traffic unmeasured
    (the advice is about steady state; the first bursts above the sweep's concurrency met one-off stalls
    of ~0.8 s): the p95 TTFT every request saw, a failed request counting as one that missed (infinite
    TTFT); errors are in the summary for the failure message."""
    target = Target(server.base_url, MODEL, timeout=300)
    asyncio.run(run(schedule.poisson(rate, WARMUP_SECONDS, PROMPT, OUTPUT, seed=4), target, concurrency=1000,
                    progress=False))
    arrivals = schedule.poisson(rate, CHECK_SECONDS, PROMPT, OUTPUT, seed=3)
    report = asyncio.run(run(arrivals, target, concurrency=1000, progress=False))
    ttfts = [r.ttft if r.ok and r.ttft is not None else math.inf for r in report.results]
    assert len(ttfts) == len(arrivals), report.summary()
    return float(percentile(ttfts, 95)), report.summary()


def test_max_num_seqs_advice_holds_on_the_real_server(engine_runtime, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    model = engine_runtime.ensure_tiny_model(0)
    one, eight = tmp_path / "seqs1.json", tmp_path / "seqs8.json"
    server = serve(model, tmp_path, 1)
    try:
        sweep(server, 1, one)
        c1 = advise(capsys, str(one))["configurations"][0]["requests_per_second_within_slo"]
        assert c1 > 0, "max_num_seqs=1 met the SLO at no level: nothing to compare"
        rate = CHECK_RATIO * c1  # above what the advice says one sequence at a time serves within the SLO
        slow_p95, slow = p95_ttft_at(server, rate)
    finally:
        server.stop()
    server = serve(model, tmp_path, 8)
    try:
        sweep(server, 8, eight)
        advice = advise(capsys, str(one), str(eight), "--target-rps", str(rate))
        fast_p95, fast = p95_ttft_at(server, rate)
        if fast_p95 > TTFT_SLO:  # once more: a window the machine stalled in (client lag too) is not the setting
            first_try = f"first window p95 {fast_p95:.3f} s, schedule lag {fast['schedule_lag_seconds']}"
            print(f"\nmax_num_seqs=8 missed in its first check window ({first_try}); measuring a second")
            fast_p95, fast = p95_ttft_at(server, rate)
            fast["first_window"] = first_try
    finally:
        server.stop()
    by_seqs = {c["settings"]["max_num_seqs"]: c for c in advice["configurations"]}
    c8 = by_seqs["8"]["requests_per_second_within_slo"]
    measured = (f"capacity within the SLO: seqs=1 {c1:.2f}, seqs=8 {c8:.2f} req/s; open loop at {rate:.2f} req/s: "
                f"p95 TTFT seqs=1 {slow_p95:.3f} s, seqs=8 {fast_p95:.3f} s")
    print("\n" + measured)
    assert c8 >= MIN_ADVANTAGE * c1, f"the two settings differ too little to check the advice: {measured}"
    # the advice: raise max_num_seqs from 1 to 8, which serves the check's rate on one replica
    assert advice["recommended"] == {"max_num_seqs": "8"}, measured
    assert [(c["setting"], c["from"], c["to"]) for c in advice["changes"]] == [("max_num_seqs", "1", "8")], measured
    assert c8 > rate and by_seqs["8"]["replicas"] == 1 and by_seqs["1"]["replicas"] == 2, measured
    # ... and the real server bears it out, with traffic the sweep did not send
    assert slow_p95 > TTFT_SLO, f"max_num_seqs=1 met the SLO above its advised capacity: {measured} {slow}"
    assert fast_p95 <= TTFT_SLO, f"max_num_seqs=8 missed the SLO below its advised capacity: {measured} {fast}"
