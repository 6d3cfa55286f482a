"""The engine-log alerts (mixin area `logs`) under promtool: two days of log-exporter series at one-minute
steps, faults on the second day at 14:00, quiet checks for what must not fire."""

from __future__ import annotations

from pathlib import Path

from promtool_cases import DAY, HOUR, MINUTE, counter, expected_alert, promtool_test, rule_subset, run_promtool, values
from test_rules import ALERTS, RULE_FILES

LOG_ALERTS = {name for name in ALERTS if name.startswith("LLMEngineLog")}
END = 2 * DAY
F = DAY + 14 * HOUR  # the fault: the second day, 14:00
JOB = {"job": "inferwatch-log", "instance": "log:9840"}


def series(metric: str, labels: dict[str, str]) -> str:
    return metric + "{" + ",".join(f'{k}="{v}"' for k, v in {**JOB, **labels}.items()) + "}"


def at(seconds: float) -> str:
    return f"{int(seconds // MINUTE)}m"


def log_series() -> dict[str, str]:
    """a: an OOM burst (one line a minute for 10 minutes) and a template new in the deployed version;
    b: engine-dead lines; c: rejected requests at 0.02/s, then 1/s; d: 0.2/s all along (its own normal);
    e: its log stops being followed at the fault; f: a three-minute gap in following (under `for`)."""
    burst = lambda t: 1 / MINUTE if F <= t < F + 10 * MINUTE else 0.0  # noqa: E731
    events = "inferwatch_engine_log_events_total"
    return {
        series(events, {"source": "a", "class": "oom_gpu", "severity": "critical"}): counter(burst, MINUTE, END),
        series(events, {"source": "b", "class": "engine_dead", "severity": "critical"}): counter(burst, MINUTE, END),
        series(events, {"source": "c", "class": "request_rejected", "severity": "error"}): counter(
            lambda t: 1.0 if t >= F else 0.02, MINUTE, END),
        series(events, {"source": "d", "class": "timeout", "severity": "error"}): counter(lambda t: 0.2, MINUTE, END),
        series(events, {"source": "d", "class": "preemption", "severity": "warning"}): counter(
            lambda t: 5.0 if t >= F else 0.0, MINUTE, END),  # warnings are not error lines
        series("inferwatch_engine_log_new_version_templates_total", {"source": "a"}): values(
            lambda t: 1 if t > F else 0, MINUTE, END),
        series("inferwatch_log_exporter_source_up", {"source": "e"}): values(lambda t: 0 if t >= F else 1, MINUTE, END),
        series("inferwatch_log_exporter_source_up", {"source": "f"}): values(
            lambda t: 0 if DAY + 3 * HOUR <= t < DAY + 3 * HOUR + 3 * MINUTE else 1, MINUTE, END),
    }


def check(when: float, name: str, *alerts: tuple[dict[str, str], float | None]) -> dict:
    return {"eval_time": at(when), "alertname": name,
            "exp_alerts": [expected_alert(ALERTS, name, labels, value) for labels, value in alerts]}


def log_checks() -> list[dict]:
    a = {"job": "inferwatch-log", "source": "a", "endpoint": "a"}
    quiet = [check(DAY + h * HOUR, name) for h in (3, 9, 13) for name in sorted(LOG_ALERTS)]
    return [
        *quiet,  # the whole second day before the fault: d's steady errors, c's trickle, f's short gap
        check(DAY + 3 * HOUR + 2 * MINUTE, "LLMEngineLogSourceDown"),  # f: pending, not firing
        check(F + 10 * MINUTE, "LLMEngineLogOutOfMemory", ({**a, "class": "oom_gpu"}, 5)),
        check(F + 10 * MINUTE, "LLMEngineLogEngineDead",
              ({"job": "inferwatch-log", "source": "b", "endpoint": "b", "class": "engine_dead"}, 5)),
        check(F + 30 * MINUTE, "LLMEngineLogOutOfMemory"),  # the burst is over
        check(F + 8 * MINUTE, "LLMEngineLogErrorsAboveBaseline"),  # c above its baseline, under `for`
        check(F + 20 * MINUTE, "LLMEngineLogErrorsAboveBaseline",
              ({"source": "c", "class": "request_rejected", "endpoint": "c"}, 1.0)),
        check(F + 10 * MINUTE, "LLMEngineLogNewErrorAfterDeploy", (a, 1)),
        check(F + 40 * MINUTE, "LLMEngineLogNewErrorAfterDeploy"),
        check(F + 3 * MINUTE, "LLMEngineLogSourceDown"),
        check(F + 6 * MINUTE, "LLMEngineLogSourceDown",
              ({**JOB, "source": "e", "endpoint": "e"}, None)),
    ]


def test_every_log_alert_has_a_case() -> None:
    fired = {c["alertname"] for c in log_checks() if c["exp_alerts"]}
    assert fired == LOG_ALERTS == {"LLMEngineLogOutOfMemory", "LLMEngineLogEngineDead",
                                   "LLMEngineLogErrorsAboveBaseline", "LLMEngineLogNewErrorAfterDeploy",
                                   "LLMEngineLogSourceDown"}


def test_log_alerts_fire_on_faults_and_stay_quiet_otherwise(tmp_path: Path) -> None:
    files = rule_subset(RULE_FILES, {"logs"}, tmp_path / "rules")
    run_promtool(tmp_path / "logs.yaml", promtool_test(files, log_series(), "1m", log_checks()))
