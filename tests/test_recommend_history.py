"""`inferwatch recommend history`: the capacity per replica read off Prometheus history, where the load
drove the latency. Pure cases (bins, the lower bound, incidents at low load, nothing holding), then the
command against a real Prometheus holding two days of the shipped rules' series, backfilled with
`promtool tsdb create-blocks-from openmetrics`: it must give what the pure code gives on the same steps,
and that must be near the load where the generated latency crosses the SLO."""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Iterator

import pytest
from helpers import backfilled_prometheus

from inferwatch.cli import main
from inferwatch.lab.process import free_port
from inferwatch.lab.stack import Prometheus
from inferwatch.recommend.advice import Slo
from inferwatch.recommend.history import SERIES, Step, binned, capacity_from_history

SLO = Slo(ttft_seconds=1.0, tpot_seconds=0.1)
STEP = 300
END = (int(time.time()) // 3600 - 1) * 3600
START = END - 2 * 86400
KNEE = 8.0  # requests/s per replica where the generated TTFT starts to climb steeply


def ttft(load: float) -> float:
    """Load-driven: slowly rising, then queueing past the knee (crosses the 1 s SLO at ~8.57)."""
    return 0.2 + 0.05 * load + 1.0 * max(0.0, load - KNEE)


def generated(seed: int = 3, busiest: float = 12.0, burst: bool = True) -> list[tuple[int, Step]]:
    """Two days at 5-minute steps: a diurnal load up to `busiest` per replica, noisy; a few incidents
    at low load (slow steps that say nothing about capacity), an error burst at mid load, idle nights."""
    rng = random.Random(seed)
    out = []
    for t in range(START, END + 1, STEP):
        phase = ((t - START) % 86400) / 86400  # from the start, so the data does not depend on the hour it runs
        load = max(0.0, busiest * (0.5 - 0.5 * math.cos(2 * math.pi * phase)) + rng.gauss(0, 0.3))
        if load < 0.3:
            load = 0.0  # idle at night
        slow = 3.0 if rng.random() < 0.02 else 0.0
        errors = 0.2 if burst and 5.0 < load < 5.5 and rng.random() < 0.5 else 0.0
        out.append((t, Step(load, ttft(load) * rng.uniform(0.95, 1.05) + slow, 0.02 + 0.002 * load, errors)))
    return out


def test_capacity_is_the_highest_bin_that_holds_below_the_knee() -> None:
    steps = [s for _, s in generated()]
    result = capacity_from_history(steps, SLO)
    assert not result.lower_bound, "history went past the knee: a real limit, not a bound"
    assert 7.0 <= result.requests_per_second <= 8.6, result.bins
    failing = [b for b in result.bins if not b.holds]
    busier = [b for b in failing if b.low > result.requests_per_second]
    assert busier and min(b.low for b in busier) < KNEE + 1, "the limit is where latency climbs"
    (burst,) = [b for b in result.bins if b.low <= 5.25 <= b.high]
    assert burst.met < burst.steps and result.requests_per_second > burst.high, "the error burst does not cap it"
    assert result.replicas(40.0) == math.ceil(40.0 / result.requests_per_second)
    assert any("idle" in n for n in result.notes)


def test_a_history_that_never_reached_the_limit_gives_a_lower_bound() -> None:
    steps = [s for _, s in generated(busiest=5.0, burst=False)]
    result = capacity_from_history(steps, SLO)
    assert result.lower_bound and 4.0 <= result.requests_per_second <= 6.0
    assert any("lower bound" in n for n in result.notes)


def test_nothing_holds_and_too_little_history_say_so() -> None:
    slow = [Step(load, 2.0) for load in (1.0, 2.0, 3.0) for _ in range(10)]
    result = capacity_from_history(slow, SLO)
    assert (result.requests_per_second, result.replicas(10.0)) == (0.0, None)
    assert "no load bin" in result.notes[0]
    short = capacity_from_history([Step(1.0, 0.1), Step(2.0, 0.1)], SLO)
    assert short.requests_per_second == 0.0 and "too little history" in short.notes[0]


def test_one_slow_step_in_a_bin_is_an_incident_not_a_limit() -> None:
    steps = [Step(2.0, 0.3)] * 40 + [Step(2.0, 5.0)] + [Step(4.0, 0.4)] * 40 + [Step(4.0, 0.4, 0.2)]
    (low, high) = binned(steps, SLO, 2)
    assert (low.steps, low.met, low.holds) == (41, 40, True)
    assert (high.steps, high.met, high.holds) == (41, 40, True)
    assert capacity_from_history(steps, SLO, bins=2).requests_per_second == 4.0


# -- against a real Prometheus ------------------------------------------------------------------------------


def openmetrics(history: list[tuple[int, Step]]) -> str:
    lines = []
    for name, value in (("load", lambda s: s.load), ("ttft", lambda s: s.ttft_p95_seconds),
                        ("itl", lambda s: s.itl_p95_seconds), ("errors", lambda s: s.error_ratio)):
        lines += [f'{SERIES[name]}{{model_name="llama"}} {value(s)!r} {t}' for t, s in history]
    return "\n".join([*lines, "# EOF"]) + "\n"


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    server = backfilled_prometheus(tmp_path_factory.mktemp("recommend-prometheus"), openmetrics(generated()), "24h")
    yield server
    server.stop()


def run_history(url: str, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    code = main(["recommend", "history", "--prometheus-url", url, "--since", "3d", "--ttft-slo", "1",
                 "--tpot-slo", "0.1", *extra])
    out, err = capsys.readouterr()
    return code, out, err


def test_history_command_reads_the_shipped_series(backfilled: Prometheus, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_history(backfilled.url, capsys, "--model", "llama", "--target-rps", "40", "--json")
    assert code == 0
    answer = json.loads(out)
    expected = capacity_from_history([s for _, s in generated()], SLO)
    assert answer["requests_per_second_within_slo"] == pytest.approx(expected.requests_per_second, rel=0.02)
    assert answer["lower_bound"] is False and answer["replicas"] == expected.replicas(40.0)
    assert 7.0 <= answer["requests_per_second_within_slo"] <= 8.6
    code, table, _ = run_history(backfilled.url, capsys, "--model", "llama", "--target-rps", "40")
    assert code == 0 and "capacity: " in table and f"{expected.replicas(40.0)} replica(s)" in table


def test_history_command_errors(backfilled: Prometheus, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_history(backfilled.url, capsys, "--model", "unknown")
    assert code != 0 and "no model_name:llm_requests_per_replica:rate5m" in err and "'unknown'" in err
    code, _, err = run_history(f"http://127.0.0.1:{free_port()}", capsys, "--model", "llama")
    assert code != 0 and "prometheus:" in err
    code, _, err = run_history(backfilled.url, capsys, "--model", "llama", "--step", "soon")
    assert code != 0 and "--step" in err
