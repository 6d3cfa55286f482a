"""The synthetic fleet (inferwatch.lab.traffic): deterministic, self-consistent, and its incidents are
where the labels say, so a backtest scored against those labels measures the rules, not the data.

One 3-day run (Thu-Sat, incidents on Fri and Sat) is shared by the tests; a second run with the
same seed checks determinism.
"""

from __future__ import annotations

import functools
import itertools
import math
import re

import pytest

from inferwatch.backtest.history import History, parse_series_key
from inferwatch.backtest.score import Incident, load_incidents
from inferwatch.lab import traffic
from inferwatch.lab.traffic import ITL_BOUNDS, MODELS, TTFT_BOUNDS, bucket_quantile

DAYS, SEED = 3, 7
COUNTER = re.compile(r"(_total|_bucket|_count|_sum)$")
SERIES_PER_REPLICA = (len(TTFT_BOUNDS) + 3) + (len(ITL_BOUNDS) + 3) + 4 + 6 + 2


@functools.cache
def fleet() -> tuple[History, list[Incident]]:
    return traffic.generate(days=DAYS, seed=SEED)


@functools.cache
def schedule() -> traffic.Plan:
    return traffic.plan(days=DAYS, seed=SEED)


def index(history: History, t: float) -> int:
    return round((t - history.start) / history.step)


def incident(kind: str) -> Incident:
    return next(i for i in fleet()[1] if i.kind == kind)


def select(history: History, name: str, **labels: str) -> dict[str, list[float | None]]:
    """Series of `name` whose labels include `labels`."""
    out = {}
    for key, values in history.series.items():
        metric, have = parse_series_key(key)
        if metric == name and all(have.get(k) == v for k, v in labels.items()):
            out[key] = values
    return out


def increase(history: History, name: str, first: int, last: int, **labels: str) -> float:
    """Summed increase of matching counters between samples `first` and `last` (no reset in between)."""
    total = 0.0
    for values in select(history, name, **labels).values():
        a, b = values[first], values[last]
        if a is not None and b is not None:
            assert b >= a, f"{name} {labels} reset between {first} and {last}"
            total += b - a
    return total


def window_p95(history: History, histogram: str, bounds: tuple[float, ...], model: str, first: int, last: int) -> float:
    """histogram_quantile(0.95, sum by (le) (increase over the samples first..last)) for one model."""
    cumulative = [increase(history, f"{histogram}_bucket", first, last, model_name=model, le=str(b))
                  for b in (*bounds, "+Inf")]
    return bucket_quantile(0.95, bounds, cumulative)


def share(history: History, model: str, reason: str, first: int, last: int) -> float:
    part = increase(history, "vllm:request_success_total", first, last, model_name=model, finished_reason=reason)
    return part / increase(history, "vllm:request_success_total", first, last, model_name=model)


def span(history: History, item: Incident) -> tuple[int, int]:
    """Sample indices just before the incident and at its last minute."""
    return index(history, item.start) - 1, index(history, item.end) - 1


DAY_STEPS = 1440


# -- determinism and shape ------------------------------------------------------------------------

def test_same_seed_same_fleet_other_seed_other_fleet() -> None:
    history, incidents = fleet()
    again, incidents_again = traffic.generate(days=DAYS, seed=SEED, models=MODELS[1:])  # not the big one: time
    assert again.series == {k: v for k, v in history.series.items() if k in again.series}
    assert len(again.series) == SERIES_PER_REPLICA * 3 and incidents_again == incidents
    other = traffic.plan(days=DAYS, seed=SEED + 1)
    assert other.of("failed_scrape") != schedule().of("failed_scrape")


def test_history_grid_and_start_on_a_thursday() -> None:
    history, _ = fleet()
    assert history.step == 60 and history.steps() == DAYS * DAY_STEPS
    assert traffic.datetime.fromtimestamp(history.start, traffic.UTC).strftime("%a %H:%M") == "Thu 00:00"


def test_label_cardinality_is_bounded() -> None:
    history, _ = fleet()
    replicas = sum(m.replicas for m in MODELS)
    assert len(history.series) == replicas * SERIES_PER_REPLICA
    allowed = {"le": {str(b) for b in (*TTFT_BOUNDS, *ITL_BOUNDS)} | {"+Inf"},
               "finished_reason": set(traffic.REASONS), "engine": {"0"}, "job": {"vllm"},
               "model_name": {m.name for m in MODELS},
               "instance": {i for m in MODELS for i in m.instances()}}
    for key in history.series:
        name, labels = parse_series_key(key)
        assert name.startswith("vllm:") or name in ("up", "process_start_time_seconds")
        for label, value in labels.items():
            assert value in allowed[label], key


def test_daily_and_weekly_cycle_and_quiet_nights() -> None:
    small = MODELS[2]
    thursday, saturday = traffic.START, traffic.START + 2 * traffic.DAY
    night = [traffic.usual_rate(small, thursday + h * 3600) for h in range(0, 6)]
    assert min(night) >= 0.05 and max(night) <= 0.2  # the small model's nights: Poisson noise dominates
    peak = max(traffic.usual_rate(small, thursday + m * 60) for m in range(DAY_STEPS))
    weekend_peak = max(traffic.usual_rate(small, saturday + m * 60) for m in range(DAY_STEPS))
    assert peak == pytest.approx(small.peak_rate, rel=1e-3) and weekend_peak < 0.7 * peak


# -- counters, restarts, gaps ---------------------------------------------------------------------

def restart_steps(history: History) -> dict[str, set[int]]:
    """instance -> first sample index after each planned restart (where counters may drop)."""
    out: dict[str, set[int]] = {}
    for event in schedule().events:
        if event.kind in ("engine_restart", "restart"):
            model = next(m for m in MODELS if m.name == event.model)
            out.setdefault(model.instances()[event.replica], set()).add(index(history, event.window.end))
    return out


def test_counters_are_monotonic_except_at_restarts() -> None:
    history, _ = fleet()
    restarts = restart_steps(history)
    assert restarts, "the plan has a labelled restart"
    dropped: set[tuple[str, int]] = set()
    for key, values in history.series.items():
        name, labels = parse_series_key(key)
        if not COUNTER.search(name):
            continue
        previous = None
        for i, value in enumerate(values):
            if value is None:
                continue
            if previous is not None and value < previous:
                assert i in restarts.get(labels["instance"], set()), f"{key} drops at sample {i}"
                dropped.add((labels["instance"], i))
            previous = value
    assert dropped == {(inst, i) for inst, steps in restarts.items() for i in steps}  # every restart resets


def test_restart_changes_process_start_and_resets_counters() -> None:
    history, _ = fleet()
    item = incident("engine_restart")
    instance = f"{item.model}-2:8000"
    first, last = index(history, item.start), index(history, item.end)
    up = select(history, "up", instance=instance)
    start_time = next(iter(select(history, "process_start_time_seconds", instance=instance).values()))
    assert all(v == 0.0 for v in next(iter(up.values()))[first:last])
    assert all(v is None for v in start_time[first:last])
    assert start_time[first - 1] < history.start < start_time[last] <= history.start + last * 60
    count = next(iter(select(history, "vllm:time_to_first_token_seconds_count", instance=instance).values()))
    assert count[last] < 2000 < count[first - 1]  # from 0: one minute of traffic after the restart


def test_prometheus_gap_has_no_samples_at_all() -> None:
    history, _ = fleet()
    gaps = schedule().of("prometheus_gap")
    assert gaps and all(3 * 60 <= g.window.end - g.window.start <= 8 * 60 for g in gaps)
    for gap in gaps:
        first, last = index(history, gap.window.start), index(history, gap.window.end)
        assert all(values[i] is None for values in history.series.values() for i in range(first, last))
        assert all(values[first - 1] is not None for key, values in select(history, "up").items())


def test_single_failed_scrapes_miss_one_replica_for_one_minute() -> None:
    history, _ = fleet()
    failed = schedule().of("failed_scrape")
    assert len(failed) >= 1
    for event in failed:
        model = next(m for m in MODELS if m.name == event.model)
        instance, i = model.instances()[event.replica], index(history, event.window.start)
        for key, values in history.series.items():
            mine = f'instance="{instance}"' in key
            if key.startswith("up{") and mine:
                assert values[i] == 0.0 and values[i - 1] == values[i + 1] == 1.0
            elif mine:
                assert values[i] is None and values[i + 1] is not None
            else:
                assert values[i] is not None


# -- the queue ------------------------------------------------------------------------------------

def test_ttft_p95_rises_faster_than_linearly_with_load() -> None:
    """The M/M/1 wait: from rho 0.5 to 0.8 the p95 rises several times more than from 0.2 to 0.5."""
    for model in MODELS[:2]:
        p95 = {rho: bucket_quantile(0.95, TTFT_BOUNDS, traffic.steady_state(model, rho, 30)) for rho in (0.2, 0.5, 0.8)}
        assert p95[0.8] - p95[0.5] > 2 * (p95[0.5] - p95[0.2]) > 0, (model.name, p95)


def test_normal_peak_and_traffic_peak_stay_under_the_sla() -> None:
    history, _ = fleet()
    item = incident("traffic_peak")
    first, last = span(history, item)
    during = window_p95(history, "vllm:time_to_first_token_seconds", TTFT_BOUNDS, item.model, first + 10, last - 5)
    usual = window_p95(history, "vllm:time_to_first_token_seconds", TTFT_BOUNDS, item.model,
                       first - DAY_STEPS, last - DAY_STEPS)
    assert usual < during < traffic.TTFT_SLA  # the queue makes it slower, not an SLA breach
    requests = increase(history, "vllm:request_success_total", first + 10, last - 5, model_name=item.model)
    rate = requests / ((last - 5 - first - 10) * 60)
    assert rate == pytest.approx(traffic.TRAFFIC_PEAK_FACTOR * MODELS[0].peak_rate, rel=0.05)


# -- incidents line up with the series ------------------------------------------------------------

def test_incidents_are_on_the_last_two_days_and_apart_per_model() -> None:
    history, incidents = fleet()
    assert {i.kind for i in incidents} >= {"traffic_peak", "error_burst", "target_down", "ttft_regression",
                                           "itl_regression", "kv_saturation", "engine_restart", "sla_breach",
                                           "abort_burst", "series_absent"}
    for item in incidents:
        assert history.start + (DAYS - 2) * traffic.DAY <= item.start < item.end <= history.end()
        same = sorted((i for i in incidents if i.model == item.model), key=lambda i: i.start)
        for a, b in itertools.pairwise(same):
            assert b.start - a.end >= 2 * 3600, (a.kind, b.kind)


def test_error_and_abort_bursts() -> None:
    history, _ = fleet()
    for kind, reason, expected in (("error_burst", "error", 0.05), ("abort_burst", "abort", 0.25)):
        item = incident(kind)
        first, last = span(history, item)
        assert share(history, item.model, reason, first, last) == pytest.approx(expected, rel=0.2)
        normal = share(history, item.model, reason, first - DAY_STEPS, last - DAY_STEPS)
        assert normal < (0.002 if reason == "error" else 0.05)


def test_target_down_hides_one_replica() -> None:
    history, _ = fleet()
    item = incident("target_down")
    first, last = index(history, item.start), index(history, item.end)
    for key, values in history.series.items():
        if f'instance="{item.model}-1:8000"' not in key:
            continue
        if key.startswith("up{"):
            assert set(values[first:last]) == {0.0} and values[first - 1] == values[last] == 1.0
        else:
            assert set(values[first:last]) == {None} and values[last] is not None


def test_latency_regressions_and_sla_breach() -> None:
    history, _ = fleet()
    cases = (("ttft_regression", "vllm:time_to_first_token_seconds", TTFT_BOUNDS, 1.25),
             ("itl_regression", "vllm:inter_token_latency_seconds", ITL_BOUNDS, 1.3))
    for kind, histogram, bounds, rise in cases:
        item = incident(kind)
        first, last = span(history, item)
        during = window_p95(history, histogram, bounds, item.model, first, last)
        usual = window_p95(history, histogram, bounds, item.model, first - DAY_STEPS, last - DAY_STEPS)
        assert during > rise * usual, kind
    item = incident("sla_breach")
    first, last = span(history, item)
    assert window_p95(history, "vllm:time_to_first_token_seconds", TTFT_BOUNDS, item.model, first, last) > 2.0


def test_kv_saturation_fills_the_cache_and_preempts() -> None:
    history, _ = fleet()
    item = incident("kv_saturation")
    first, last = span(history, item)
    for values in select(history, "vllm:kv_cache_usage_perc", model_name=item.model).values():
        assert min(values[first + 4:last]) >= 0.95 and max(values[first - 120:first]) < 0.9
    assert increase(history, "vllm:num_preemptions_total", first, last, model_name=item.model) > 1000
    waiting = next(iter(select(history, "vllm:num_requests_waiting", model_name=item.model).values()))
    assert waiting[last] > 20


def test_series_absent_removes_the_model_to_the_end() -> None:
    history, _ = fleet()
    item = incident("series_absent")
    first = index(history, item.start)
    assert history.end() - item.start >= 30 * 60
    instances = {i for m in MODELS if m.name == item.model for i in m.instances()}
    for key, values in history.series.items():
        if any(f'instance="{i}"' in key for i in instances):
            assert set(values[first:]) == {None} and values[first - 1] is not None, key


# -- files ----------------------------------------------------------------------------------------

def test_write_round_trips_through_the_backtest_readers(tmp_path, monkeypatch) -> None:
    history, incidents = fleet()
    small = History(history.start, history.step, select(history, "up"))  # gzip of the whole fleet is slow
    monkeypatch.setattr(traffic, "generate", lambda days, seed: (small, incidents))
    history_path, incidents_path = traffic.write(tmp_path, days=DAYS, seed=SEED)
    assert History.load(history_path).series == small.series
    loaded = load_incidents(incidents_path)
    assert [(i.model, i.kind, i.expect, i.forbid) for i in loaded] == [
        (i.model, i.kind, i.expect, i.forbid) for i in fleet()[1]]
    assert all(math.isclose(a.start, b.start) and math.isclose(a.end, b.end) for a, b in zip(loaded, fleet()[1],
                                                                                              strict=True))


def test_too_short_a_run_is_refused() -> None:
    with pytest.raises(ValueError, match="days"):
        traffic.plan(days=1)
