"""The scaler's pure decision core: metadata parsing, forecast maths, decide() and the reactive baselines."""

from __future__ import annotations

import math

import pytest

from inferwatch.scaler import baselines, forecast
from inferwatch.scaler.policy import (
    REASONS,
    Decision,
    NoData,
    Policy,
    PolicyError,
    Signals,
    decide,
    parse_duration,
    parse_policy,
    queries,
)

NOW = 1_000_000.0
STEP = 15.0


def series(fn, start: float, end: float, step: float = STEP) -> list[tuple[float, float]]:
    out, t = [], start
    while t <= end + 1e-9:
        out.append((t, fn(t)))
        t += step
    return out


def signals(demand=None, seasonal=None, replicas=4.0, ready=None, **kw) -> Signals:
    if demand is None:
        demand = series(lambda t: 10.0, NOW - 600, NOW)
    return Signals(now=NOW, demand=demand, seasonal=seasonal or {}, capacity_history=kw.pop("capacity_history", None),
                   ttft_burn_rate=kw.pop("burn", None), kv_cache_usage=kw.pop("kv", None),
                   waiting_per_replica=kw.pop("waiting", None), replicas=replicas,
                   replicas_ready=replicas if ready is None else ready)


def policy(**meta: str) -> Policy:
    return parse_policy({"model": "m", "capacityPerReplica": "2", "seasonal": "", **meta})


# -- parsing ---------------------------------------------------------------------------------------------------

def test_parse_defaults_and_keda_keys_ignored():
    p = parse_policy({"model": "llama", "scalerAddress": "s:9090", "enableTLS": "true", "unsafeSsl": "false",
                      "caCert": "x", "tlsClientCert": "y", "tlsClientKey": "z"})
    assert p == Policy(model="llama")


def test_parse_camel_and_snake_and_durations():
    p = parse_policy({"model": "m", "startupSeconds": "3m", "trend_window_seconds": "900",
                      "seasonal": "1d, 2w", "minReplicas": "2", "headroom": "0.3"})
    assert (p.startup_seconds, p.trend_window_seconds, p.seasonal) == (180.0, 900.0, ("1d", "2w"))
    assert p.seasonal_seconds == (86400.0, 2 * 604800.0)
    assert (p.min_replicas, p.headroom) == (2, 0.3)


@pytest.mark.parametrize(("meta", "key"), [
    ({"model": "m", "bogus": "1"}, "bogus"),
    ({"model": "m", "startupSeconds": "soon"}, "startupSeconds"),
    ({"model": "m", "headroom": "nan"}, "headroom"),
    ({"model": "m", "headroom": "-0.1"}, "headroom"),
    ({"model": "m", "minReplicas": "1.5"}, "minReplicas"),
    ({"model": "m", "minReplicas": "5", "maxReplicas": "3"}, "maxReplicas"),
    ({"model": "m", "demand": "gpus"}, "demand"),
    ({"model": "m", "demand": "tokens"}, "capacityPerReplica"),
    ({"model": "m", "seasonal": "1d,yesterday"}, "seasonal"),
    ({"model": "m", "kv_cache_threshold": "1.5"}, "kv_cache_threshold"),
    ({"model": "m", "startupSeconds": "1", "startup_seconds": "2"}, "startup_seconds"),
    ({"model": ""}, "model"),
    ({"capacityPerReplica": "1"}, "model"),
    ({"model": "m", "policy": "missing"}, "policy"),
])
def test_parse_errors_name_the_key(meta, key):
    with pytest.raises(PolicyError) as info:
        parse_policy(meta)
    assert info.value.key == key
    assert str(info.value).startswith(f"{key}: ")


def test_named_policy_with_inline_override():
    named = {"fast": {"startupSeconds": "60s", "headroom": "0.5", "model": "base"}}
    p = parse_policy({"policy": "fast", "model": "m", "headroom": "0.2"}, named)
    assert (p.model, p.startup_seconds, p.headroom) == ("m", 60.0, 0.2)
    with pytest.raises(PolicyError) as info:
        parse_policy({"policy": "fast"}, {"fast": {"model": "m", "oops": "1"}})
    assert info.value.key == "oops" and "fast" in str(info.value)


def test_parse_duration():
    assert [parse_duration(s) for s in ("90", "90s", "1.5m", "2h", "1d", "1w", "500ms")] == \
        [90, 90, 90, 7200, 86400, 604800, 0.5]
    with pytest.raises(ValueError):
        parse_duration("-5s")


def test_queries_escape_the_model_and_follow_the_policy():
    q = queries(parse_policy({"model": 'a"b', "deployment": "vllm", "namespace": "ml"}))
    assert 'model_name="a\\"b"' in q["demand"] and "request_success_total" in q["demand"]
    assert "kube_deployment_status_replicas" in q["replicas"] and 'namespace="ml"' in q["replicas"]
    assert "capacity_history" in q
    tokens = queries(parse_policy({"model": "m", "demand": "tokens", "capacityPerReplica": "5000"}))
    assert "generation_tokens_total" in tokens["demand"] and "capacity_history" not in tokens
    assert queries(parse_policy({"model": "m", "demandQuery": "up"}))["demand"] == "up"


# -- forecast maths --------------------------------------------------------------------------------------------

def test_linear_fit_recovers_a_line():
    slope, level, t_mean = forecast.linear_fit([(t, 3.0 + 0.5 * t) for t in range(0, 100, 10)])
    assert slope == pytest.approx(0.5)
    assert level == pytest.approx(3.0 + 0.5 * t_mean)


def test_trend_forecast_extrapolates_and_floors_at_zero():
    up = series(lambda t: 0.01 * (t - NOW) + 10, NOW - 600, NOW)
    assert forecast.trend_forecast(up, NOW, 180, 600) == pytest.approx(11.8)
    down = series(lambda t: -0.1 * (t - NOW) + 1, NOW - 600, NOW)
    assert forecast.trend_forecast(down, NOW, 180, 600) == 0.0
    assert forecast.trend_forecast(up, NOW + 10_000, 180, 600) is None


def test_seasonal_forecast_scales_yesterday_by_todays_level():
    day = 86400.0
    # Yesterday: 5 req/s, rising to 10 by the forecast time; today runs at twice yesterday's level.
    history = series(lambda t: 5.0 if t <= NOW - day else 10.0, NOW - day - 600, NOW - day + 180)
    current = series(lambda t: 10.0, NOW - 600, NOW)
    assert forecast.seasonal_forecast(history, current, NOW, day, 180, 600, 120, 3.0) == pytest.approx(20.0)
    # The ratio is clipped.
    assert forecast.seasonal_forecast(history, current, NOW, day, 180, 600, 120, 1.5) == pytest.approx(15.0)
    assert forecast.seasonal_forecast([], current, NOW, day, 180, 600, 120, 2.0) is None


def test_clean_drops_nan_and_sorts():
    assert forecast.clean([(2.0, 1.0), (1.0, math.nan), (0.0, 3.0)]) == [(0.0, 3.0), (2.0, 1.0)]


# -- decide ----------------------------------------------------------------------------------------------------

def test_steady_demand_sizes_with_headroom():
    d = decide(policy(headroom="0.25"), signals())
    assert d.desired == pytest.approx(10 * 1.25 / 2)
    assert (d.active, d.reason, d.capacity) == (True, "forecast", 2.0)


def test_ramp_is_met_ahead_of_time():
    ramp = series(lambda t: 10 + 0.02 * (t - NOW), NOW - 600, NOW)
    d = decide(policy(headroom="0"), signals(ramp))
    assert d.forecast == pytest.approx(10 + 0.02 * 180)
    assert d.desired == pytest.approx(d.forecast / 2)
    shorter = decide(policy(headroom="0", startupSeconds="60"), signals(ramp))
    assert shorter.desired < d.desired


def test_seasonal_history_raises_the_forecast_before_the_ramp():
    day = 86400.0
    flat = series(lambda t: 4.0, NOW - 600, NOW)
    yesterday = series(lambda t: 4.0 if t <= NOW - day + 60 else 12.0, NOW - day - 600, NOW - day + 180)
    without = decide(policy(headroom="0", seasonal="1d"), signals(flat))
    with_history = decide(policy(headroom="0", seasonal="1d"), signals(flat, {"1d": yesterday}))
    assert without.desired == pytest.approx(2.0)
    assert with_history.desired == pytest.approx(6.0)


def test_spike_trips_the_slo_guard_from_ready_replicas():
    # Forecast: 10 req/s * 1.1 / 2 = 5.5 replicas. The guard asks max(ready * 1.25, ready + 1).
    assert decide(policy(), signals(replicas=4, burn=20.0)).reason == "forecast"  # 5 < 5.5
    d = decide(policy(), signals(replicas=6, burn=20.0))
    assert d.reason == "slo_guard" and d.desired == pytest.approx(7.5)
    big = decide(policy(), signals(replicas=20, burn=20.0))
    assert big.reason == "slo_guard" and big.desired == pytest.approx(25.0)
    below = decide(policy(), signals(replicas=20, burn=1.0))
    assert below.reason == "forecast"


def test_starting_pods_are_not_asked_for_again():
    # 20 ready and 10 starting: the guard's 25 is below what is already coming, so no extra replicas.
    d = decide(policy(), signals(replicas=30, ready=20, burn=20.0, kv=0.99))
    assert d.desired == pytest.approx(25.0)
    assert d.desired < 30


@pytest.mark.parametrize("kw", [{"kv": 0.95}, {"waiting": 8.0}])
def test_pressure_guard(kw):
    d = decide(policy(), signals(replicas=10, **kw))
    assert d.reason == "pressure_guard" and d.desired == pytest.approx(12.5)


def test_scale_down_is_held_by_the_stabilisation_window_statelessly():
    fell = series(lambda t: 20.0 if t < NOW - 300 else 4.0, NOW - 600, NOW)
    held = decide(policy(headroom="0"), signals(fell))
    assert held.desired == pytest.approx(10.0)
    short = decide(policy(headroom="0", scaleDownStabilisationSeconds="120", trendWindowSeconds="120"),
                   signals(fell))
    assert short.desired == pytest.approx(2.0)


def test_idle_goes_to_zero_and_wakes_ahead_of_forecast():
    day = 86400.0
    idle = series(lambda t: 0.0, NOW - 600, NOW)
    d = decide(policy(seasonal="1d"), signals(idle, replicas=1))
    assert (d.active, d.desired, d.reason) == (False, 0.0, "idle")
    yesterday = series(lambda t: 0.0 if t < NOW - day + 120 else 3.0, NOW - day - 600, NOW - day + 180)
    wake = decide(policy(seasonal="1d"), signals([], {"1d": yesterday}, replicas=0))
    assert wake.active and wake.desired > 0
    kept = decide(policy(minReplicas="2"), signals(idle))
    assert (kept.active, kept.desired, kept.reason) == (True, 2.0, "min")


def test_max_replicas_caps():
    d = decide(policy(maxReplicas="3"), signals())
    assert (d.desired, d.reason) == (3.0, "max")


def test_no_data_raises_never_zero():
    with pytest.raises(NoData):
        decide(policy(), signals([]))
    with pytest.raises(NoData):
        decide(policy(), signals([(NOW, math.nan)]))
    with pytest.raises(NoData):  # no static and no learned capacity
        decide(parse_policy({"model": "m"}), signals())
    learned = decide(parse_policy({"model": "m", "seasonal": ""}), signals(capacity_history=5.0))
    assert learned.capacity == 5.0


def test_reasons_are_a_closed_set():
    cases = [signals(), signals(burn=99.0, replicas=10), signals(kv=0.99, replicas=10),
             signals(series(lambda t: 0.0, NOW - 600, NOW))]
    for s in cases:
        d = decide(policy(), s)
        assert isinstance(d, Decision) and d.reason in REASONS


# -- baselines -------------------------------------------------------------------------------------------------

def test_hpa_average_value_tolerance():
    assert baselines.hpa_recommend(21.0, 1.0, 20) == 20  # within 10 %
    assert baselines.hpa_recommend(23.0, 1.0, 20) == 23
    assert baselines.hpa_recommend(7.3, 1.0, 4) == 8
    assert baselines.hpa_recommend(0.0, 5.0, 3) == 0


def test_hpa_window_stabilises_down_and_limits_up():
    hpa = baselines.HpaWindow(1, 100, scale_down_seconds=300)
    assert hpa.apply(0, 10, 2) == 6  # max(2 * 2, 2 + 4)
    assert hpa.apply(15, 3, 10) == 10  # 10 recommended within the window
    assert hpa.apply(400, 3, 10) == 3


def test_enova_rules():
    up = baselines.enova_decide(4, 50, [60, 70, 80], [300, 320, 330], [150, 160, 165], [40, 40, 40],
                                [0.9, 0.9, 0.9], 48)
    assert up == 8
    assert baselines.enova_decide(4, 50, [60, 10, 80], [1] * 3, [1] * 3, [40] * 3, [0.9] * 3, 48) == 4
    down = baselines.enova_decide(5, 50, [0] * 3, [1] * 3, [1] * 3, [2, 3, 4], [0.05] * 3, 48)
    assert down == 3
    assert baselines.enova_decide(1, 50, [0] * 3, [1] * 3, [1] * 3, [0] * 3, [0.0] * 3, 48) == 1
    queued = ([12, 15, 11], [300, 320, 330], [150, 160, 165], [40] * 3, [0.9] * 3, 48)
    assert baselines.enova_decide(4, 50, *queued) == 4, "below ENOVA's 50 pending"
    assert baselines.enova_decide(4, 50, *queued, pending_threshold=10) == 8, "a tuned threshold"


def test_static_peak():
    assert baselines.static_peak(20.1, 2.0) == 11
    assert baselines.static_peak(0.0, 2.0) == 1
