"""The version comparison (mixin area `versions`) under promtool: two days at one-minute steps, every model
changing from v1 to v2 on the second day at 14:00. Inputs are the recorded per-model series the area reads
(serving's p95s, request and finish-reason rates) and the engine exporter's version and up series; each
endpoint is down for the two minutes before the change (a restart with the new model directory)."""

from __future__ import annotations

from pathlib import Path

from promtool_cases import DAY, HOUR, MINUTE, expected_alert, promtool_test, rule_subset, run_promtool, values
from test_rules import ALERTS, RULE_FILES

VERSION_ALERTS = {"LLMNewVersionWorse"}
END = 2 * DAY
F = DAY + 14 * HOUR  # the change: the second day, 14:00
NAME = "LLMNewVersionWorse"

# model -> (requests/s, TTFT p95 before/after, error ratio before/after)
MODELS = {
    "m1": (5.0, (0.5, 0.8), None),  # 1.6x slower: fires
    "m2": (5.0, (0.5, 0.5), None),  # equal: quiet
    "m3": (0.01, (0.5, 1.0), None),  # 2x slower but almost no traffic: quiet (volume guard)
    "m4": (5.0, (0.5, 0.5), (0.01, 0.02)),  # errors doubled on 9000 requests a window: z = 5.5, fires
    "m5": (0.3, (0.5, 0.5), (0.01, 0.02)),  # errors doubled on 540 requests: z = 1.35, quiet (not significant)
}


def at(seconds: float) -> str:
    return f"{int(seconds // MINUTE)}m"


def step(before: float, after: float):
    return lambda t: after if t >= F else before


def sel(metric: str, **labels: str) -> str:
    return metric + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def version_series() -> dict[str, str]:
    out: dict[str, str] = {}
    for i, (model, (rate, ttft, errors)) in enumerate(MODELS.items(), 1):
        out[sel("model_name:llm_requests:rate5m", model_name=model)] = values(lambda t, r=rate: r, MINUTE, END)
        out[sel("model_name:llm_time_to_first_token_seconds:p95_rate5m", model_name=model)] = values(
            step(*ttft), MINUTE, END)
        out[sel("model_name:llm_inter_token_latency_seconds:p95_rate5m", model_name=model)] = values(
            lambda t: 0.03, MINUTE, END)
        if errors:
            out[sel("model_name_finished_reason:llm_requests:rate5m", model_name=model, finished_reason="error")] = \
                values(step(rate * errors[0], rate * errors[1]), MINUTE, END)
        exporter = {"job": "inferwatch-engine", "instance": "engine:9836", "endpoint": f"e{i}", "model_name": model}
        for version, alive in (("v1", lambda t: 1 if t < F else None), ("v2", lambda t: 1 if t >= F else None)):
            out[sel("inferwatch_model_version_info", **exporter, version=version, source="config")] = values(
                alive, MINUTE, END)
        out[sel("inferwatch_model_version_since_timestamp_seconds", **exporter)] = values(step(0, F), MINUTE, END)
        up = {**exporter, "role": "primary", "hostname": "engine", "target": "engine:8000"}
        out[sel("inferwatch_engine_up", **up)] = values(lambda t: 0 if F - 2 * MINUTE <= t < F else 1, MINUTE, END)
    return out


def check(when: float, *alerts: tuple[dict[str, str], float]) -> dict:
    return {"eval_time": at(when), "alertname": NAME,
            "exp_alerts": [expected_alert(ALERTS, NAME, labels, value) for labels, value in alerts]}


def version_checks() -> list[dict]:
    fired = [({"model_name": "m1", "version": "v2", "previous_version": "v1", "metric": "ttft_p95"}, 1.6),
             ({"model_name": "m4", "version": "v2", "previous_version": "v1", "metric": "error_ratio"}, 2.0)]
    return [
        *[check(DAY + h * HOUR) for h in (3, 9, 13)],  # one version all along: nothing to compare
        check(F + 20 * MINUTE),  # v2 not settled yet (window + rate window after the change)
        check(F + 45 * MINUTE),  # pending (`for`)
        check(F + 55 * MINUTE, *fired),
        check(F + 3 * HOUR, *fired),
        check(F + 5 * HOUR),  # past compareWithin: time of day, not the version, would dominate
    ]


def expr_checks() -> list[dict]:
    previous = "model_name_version:inferwatch_model_version:previous"
    z = "model_name_version:llm_request_errors_per_requests:zscore_avg30m"
    ttft = "model_name:llm_time_to_first_token_seconds:previous_p95_rate5m_avg30m"
    return [
        {"expr": previous + '{model_name="m1"}', "eval_time": at(F + 40 * MINUTE),
         # v1 was last settled before its endpoint went down (the restart, F - 2m .. F), not up to the change.
         "exp_samples": [{"labels": previous + '{model_name="m1",version="v1"}', "value": F - 3 * MINUTE}]},
        {"expr": f"round({z}, 0.01)", "eval_time": at(F + 40 * MINUTE),
         "exp_samples": [{"labels": '{model_name="m4",version="v2"}', "value": 5.52},
                         {"labels": '{model_name="m5",version="v2"}', "value": 1.35}]},
        {"expr": ttft, "eval_time": at(F + 40 * MINUTE),
         "exp_samples": [{"labels": ttft + f'{{model_name="{m}"}}', "value": 0.5} for m in MODELS]},
    ]


def test_every_version_alert_has_a_case() -> None:
    assert {c["alertname"] for c in version_checks() if c["exp_alerts"]} == VERSION_ALERTS
    assert {name for name in ALERTS if name == NAME} == VERSION_ALERTS


def test_version_alerts_fire_on_regressions_and_stay_quiet_otherwise(tmp_path: Path) -> None:
    files = rule_subset(RULE_FILES, {"versions"}, tmp_path / "rules")
    test = promtool_test(files, version_series(), "1m", version_checks(), expr_checks())
    run_promtool(tmp_path / "versions.yaml", test)
