"""The rendered rules: fresh, lint-clean, and unit-tested with `promtool test rules`.

Two simulated weeks (see promtool_cases.py): every alert fires on its fault on the second Monday
and stays silent through a normal week with daily and weekly patterns.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml
from promtool_cases import (
    DAY,
    FAULT_AT,
    HOUR,
    MINUTE,
    after,
    at,
    counter,
    daily,
    noisy,
    render_template,
    values,
)

from inferwatch import rules

REPO = Path(__file__).resolve().parent.parent
RULE_FILES = [REPO / path for path in rules.OUTPUTS.values()]
STEP = 5 * MINUTE


def load_alerts() -> dict[str, list[dict]]:
    alerts: dict[str, list[dict]] = {}
    for group in yaml.safe_load((REPO / rules.OUTPUTS["prometheusAlerts"]).read_text())["groups"]:
        for rule in group["rules"]:
            alerts.setdefault(rule["alert"], []).append(rule)
    return alerts


ALERTS = load_alerts()


def test_rendered_rules_are_fresh() -> None:
    assert rules.render(REPO, check=True) == [], "run `inferwatch rules render` and commit the result"


def test_promtool_check_rules_lint_clean() -> None:
    result = subprocess.run(["promtool", "check", "rules", "--lint=all", "--lint-fatal", *map(str, RULE_FILES)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mixin_conventions() -> None:
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            assert len(group["name"]) <= 40 and len(group["rules"]) <= 20, group["name"]
            for rule in group["rules"]:
                if "record" in rule:
                    assert re.fullmatch(r"[a-z_]*:[a-z0-9_]+:[a-z0-9_]+", rule["record"]), rule["record"]
    for name, variants in ALERTS.items():
        assert re.fullmatch(r"([A-Z]+[a-z0-9]+)+", name) and len(name) <= 40, name
        for rule in variants:
            labels, notes = rule["labels"], rule["annotations"]
            assert labels["severity"] in {"critical", "warning", "info"}, name
            assert labels["team"] and labels["service"], name
            assert re.fullmatch(r"[A-Z].+\.", notes["summary"]) and "{{" not in notes["summary"], name
            assert "{{" in notes["description"], f"{name}: description must be templated"
            runbook = notes["runbook_url"].rsplit("/", 1)[1]
            assert runbook == f"{name.lower()}.md"
            assert (REPO / "docs" / "runbooks" / runbook).is_file(), f"missing runbook for {name}"


def test_prometheus_operator_rule() -> None:
    document = yaml.safe_load(rules.prometheus_rule("inferwatch", "monitoring", {"release": "kps"}))
    assert document["kind"] == "PrometheusRule" and document["metadata"]["labels"] == {"release": "kps"}
    assert len(document["spec"]["groups"]) == sum(
        len(yaml.safe_load(p.read_text())["groups"]) for p in RULE_FILES)


# -- the simulated fleet ---------------------------------------------------------------------------

def v(fn) -> str:
    return values(fn, step=STEP)


def c(rate) -> str:
    return counter(rate, step=STEP, end=8 * DAY)


TTFT = lambda t: daily(t, 0.35, 0.70, 0.55)  # noqa: E731 - seconds; weekend peaks lower
ITL = lambda t: daily(t, 0.020, 0.040, 0.032)  # noqa: E731
TRAFFIC = lambda t: daily(t, 2, 10, 6)  # noqa: E731 - requests/s
REGRESSION = 1.5
M3_START = 7 * DAY + 10 * HOUR


def fault(before, during):
    return after(FAULT_AT, before, during)


def regressed(pattern, seed: int):
    """The normal noisy pattern, then exactly +50% (noise-free, so $value is predictable) from the fault."""
    normal = noisy(pattern, seed=seed)
    return lambda t: pattern(t) * REGRESSION if t >= FAULT_AT else normal(t)


def fleet_series() -> dict[str, str]:
    s: dict[str, str] = {}
    ttft, itl = "model_name:llm_time_to_first_token_seconds:p95_rate5m", "model_name:llm_inter_token_latency_seconds:p95_rate5m"
    rate = "model_name:llm_requests:rate5m"
    # m1 normal; m2 regresses +50% at the peak of the second Monday; m3 runs above the SLA from
    # day 7 10:00 with no history; m4 is slow but has almost no traffic (guard).
    s[f'{ttft}{{model_name="m1"}}'] = v(noisy(TTFT, seed=1))
    s[f'{ttft}{{model_name="m2"}}'] = v(regressed(TTFT, seed=2))
    s[f'{ttft}{{model_name="m3"}}'] = v(lambda t: 2.5 if t >= M3_START else None)
    s[f'{ttft}{{model_name="m4"}}'] = v(lambda t: 3.0 if t >= M3_START else None)
    s[f'{itl}{{model_name="m1"}}'] = v(noisy(ITL, seed=3))
    s[f'{itl}{{model_name="m3"}}'] = v(lambda t: 0.5 if t >= M3_START else None)
    s[f'{itl}{{model_name="m2"}}'] = v(regressed(ITL, seed=4))
    for model in ("m1", "m2"):
        s[f'{rate}{{model_name="{model}"}}'] = v(TRAFFIC)
    s[f'{rate}{{model_name="m3"}}'] = v(lambda t: 5 if t >= M3_START else None)
    s[f'{rate}{{model_name="m4"}}'] = v(lambda t: 0.02 if t >= M3_START else None)

    eng = 'job="inferwatch-engine"'
    s[f'inferwatch_engine_up{{{eng},endpoint="e1",model_name="m1",role="primary",hostname="h1"}}'] = v(lambda t: 1)
    s[f'inferwatch_engine_up{{{eng},endpoint="e2",model_name="m1",role="primary",hostname="h2"}}'] = v(fault(1, 0))
    s[f'inferwatch_model_healthy_endpoints{{{eng},model_name="m1",role="primary"}}'] = v(fault(2, 1))
    s[f'inferwatch_model_configured_endpoints{{{eng},model_name="m1",role="primary"}}'] = v(lambda t: 2)
    s[f'inferwatch_model_healthy_endpoints{{{eng},model_name="m5",role="primary"}}'] = v(fault(1, 0))
    s[f'inferwatch_model_configured_endpoints{{{eng},model_name="m5",role="primary"}}'] = v(lambda t: 1)
    s[f'inferwatch_model_version_changes_total{{{eng},endpoint="e1",model_name="m1"}}'] = v(fault(0, 1))
    s[f'inferwatch_model_version_info{{{eng},endpoint="e1",model_name="m1",version="a",source="model_dir"}}'] = v(lambda t: 1)
    s[f'inferwatch_model_version_info{{{eng},endpoint="e3",model_name="m6",version="a",source="model_dir"}}'] = v(lambda t: 1)
    s[f'inferwatch_model_version_info{{{eng},endpoint="e4",model_name="m6",version="a",source="model_dir"}}'] = v(fault(1, None))
    s[f'inferwatch_model_version_info{{{eng},endpoint="e4",model_name="m6",version="b",source="model_dir"}}'] = v(fault(None, 1))
    s[f'up{{{eng},instance="x:9836"}}'] = v(fault(1, 0))
    s['up{job="inferwatch-gpu",instance="h1:9835"}'] = v(lambda t: 1)

    vl = 'job="vllm",engine="0"'
    s[f'vllm:kv_cache_usage_perc{{{vl},model_name="m1"}}'] = v(lambda t: daily(t, 0.2, 0.5, 0.4))
    s[f'vllm:num_requests_waiting{{{vl},model_name="m1"}}'] = v(lambda t: round(daily(t, 0, 5, 3)))
    s[f'vllm:kv_cache_usage_perc{{{vl},model_name="m7"}}'] = v(
        lambda t: 0.5 if t < FAULT_AT else min(0.99, 0.5 + 0.45 * (t - FAULT_AT) / (30 * MINUTE)))
    s[f'vllm:num_requests_waiting{{{vl},model_name="m7"}}'] = v(
        lambda t: 0 if t < FAULT_AT else min(200, (t - FAULT_AT) / 30))
    s[f'vllm:num_preemptions_total{{{vl},model_name="m1"}}'] = c(lambda t: 0.01 * TRAFFIC(t) / 10)
    s[f'vllm:num_preemptions_total{{{vl},model_name="m7"}}'] = c(lambda t: 5 if t >= FAULT_AT else 0)

    def gpu(index: int, host: str) -> str:
        return (f'job="inferwatch-gpu",instance="{host}:9835",gpu="{index}",uuid="GPU-{index}",'
                f'pci_bus_id="0000:{index}",model="NVIDIA H100",hostname="{host}"')

    s[f"inferwatch_gpu_up{{{gpu(0, 'h1')}}}"] = v(lambda t: 1)
    s[f"inferwatch_gpu_up{{{gpu(1, 'h2')}}}"] = v(fault(1, 0))
    s['inferwatch_gpu_exporter_nvml_up{job="inferwatch-gpu",instance="h3:9835",error=""}'] = v(fault(1, None))
    s['inferwatch_gpu_exporter_nvml_up{job="inferwatch-gpu",instance="h3:9835",error="LibraryNotFound"}'] = v(fault(None, 0))
    s[f"inferwatch_gpu_xid_last_timestamp_seconds{{{gpu(0, 'h1')},xid=\"13\"}}"] = v(lambda t: 3 * DAY if t >= 3 * DAY else None)
    s[f"inferwatch_gpu_xid_last_timestamp_seconds{{{gpu(3, 'h1')},xid=\"79\"}}"] = v(fault(None, FAULT_AT))
    for index in (0, 4):
        s[f"inferwatch_gpu_ecc_errors_total{{{gpu(index, 'h1')},error_type=\"double_bit\",scope=\"volatile\"}}"] = v(
            fault(0, 1) if index == 4 else (lambda t: 0))
        s[f"inferwatch_gpu_ecc_errors_total{{{gpu(index, 'h1')},error_type=\"single_bit\",scope=\"volatile\"}}"] = v(
            lambda t: int(t // DAY))
    s[f"inferwatch_gpu_row_remap_failure{{{gpu(5, 'h1')}}}"] = v(fault(0, 1))
    s[f"inferwatch_gpu_row_remap_pending{{{gpu(5, 'h1')}}}"] = v(fault(0, 1))
    s[f"inferwatch_gpu_row_remap_failure{{{gpu(0, 'h1')}}}"] = v(lambda t: 0)
    for reason in ("hw_thermal_slowdown", "sw_power_cap", "hw_power_brake_slowdown"):
        s[f"inferwatch_gpu_clock_event_active{{{gpu(0, 'h1')},reason=\"{reason}\"}}"] = v(lambda t: 0)
    s[f"inferwatch_gpu_clock_event_active{{{gpu(6, 'h1')},reason=\"hw_thermal_slowdown\"}}"] = v(fault(0, 1))
    s[f"inferwatch_gpu_clock_event_active{{{gpu(7, 'h1')},reason=\"sw_power_cap\"}}"] = v(fault(0, 1))
    s['inferwatch_gpu_exporter_collect_timeouts_total{job="inferwatch-gpu",instance="h2:9835"}'] = c(
        lambda t: 1 / 60 if t >= FAULT_AT else 0)
    return s


def gpu_labels(index: int, host: str) -> dict[str, str]:
    return {"job": "inferwatch-gpu", "instance": f"{host}:9835", "gpu": str(index), "uuid": f"GPU-{index}",
            "pci_bus_id": f"0000:{index}", "model": "NVIDIA H100", "hostname": host}


def fleet_faults() -> list[tuple[str, str, dict[str, str], float]]:
    """(alert, eval time, series labels of the firing alert, $value)."""
    eng = {"job": "inferwatch-engine"}
    fault_plus = lambda minutes: FAULT_AT + minutes * MINUTE  # noqa: E731
    t15 = fault_plus(15)
    return [
        ("LLMTimeToFirstTokenAboveBaseline", at(7, 14, 15), {"model_name": "m2"}, TTFT(t15) * REGRESSION),
        ("LLMInterTokenLatencyAboveBaseline", at(7, 14, 15), {"model_name": "m2"}, ITL(t15) * REGRESSION),
        ("LLMTimeToFirstTokenSLABreach", at(7, 10, 30), {"model_name": "m3"}, 2.5),
        ("LLMInterTokenLatencySLABreach", at(7, 10, 30), {"model_name": "m3"}, 0.5),
        ("LLMEngineDown", at(7, 14, 15), {**eng, "endpoint": "e2", "model_name": "m1", "role": "primary",
                                          "hostname": "h2"}, 0),
        ("LLMModelUnavailable", at(7, 14, 15), {"model_name": "m5"}, 0),
        ("LLMModelRedundancyLow", at(7, 14, 15), {"model_name": "m1"}, 1),
        ("LLMModelVersionChanged", at(7, 14, 5), {**eng, "endpoint": "e1", "model_name": "m1"}, 1),
        ("LLMModelVersionSkew", at(7, 14, 40), {"model_name": "m6"}, 2),
        ("LLMKVCacheSaturationPredicted", at(7, 14, 40), {"model_name": "m7"}, None),
        ("LLMPreemptionStorm", at(7, 14, 20), {"model_name": "m7"}, 5),
        ("InferwatchExporterDown", at(7, 14, 15), {**eng, "instance": "x:9836"}, 0),
        ("GPULost", at(7, 14, 5), gpu_labels(1, "h2"), 0),
        ("GPUNvmlUnavailable", at(7, 14, 10), {"job": "inferwatch-gpu", "instance": "h3:9835",
                                                "error": "LibraryNotFound"}, 0),
        ("GPUXidCriticalError", at(7, 14, 5), {**gpu_labels(3, "h1"), "xid": "79"}, 300),
        ("GPUEccDoubleBitError", at(7, 14, 5), {**gpu_labels(4, "h1"), "error_type": "double_bit",
                                                 "scope": "volatile"}, 1),
        ("GPURowRemapFailure", at(7, 14, 5), gpu_labels(5, "h1"), 1),
        ("GPURowRemapPending", at(7, 14, 20), gpu_labels(5, "h1"), 1),
        ("GPUThermalThrottling", at(7, 14, 15), gpu_labels(6, "h1"), 1),
        ("GPUPowerThrottling", at(7, 14, 30), {**gpu_labels(7, "h1"), "reason": "sw_power_cap"}, 1),
        ("GPUExporterCollectTimeouts", at(7, 14, 15), {"job": "inferwatch-gpu", "instance": "h2:9835"}, None),
    ]


def expected_alert(name: str, labels: dict[str, str], value: float | None = None, severity: str | None = None) -> dict:
    """The full alert promtool must see: series labels + rule labels, annotations rendered."""
    (rule,) = [r for r in ALERTS[name] if severity in (None, r["labels"]["severity"])]
    all_labels = {**labels, **rule["labels"]}
    notes = dict(rule["annotations"])
    if "$value" in notes["description"]:
        assert value is not None, f"{name}: its description shows $value, give the expected value"
    notes["description"] = render_template(notes["description"], all_labels, value)
    return {"exp_labels": all_labels, "exp_annotations": notes}


def silent_checks(names: list[str], until: float) -> list[dict]:
    """Every named alert quiet at night, morning, peak and evening of every day before `until`."""
    times = [d * DAY + h * HOUR for d in range(1, 8) for h in (3, 9, 15, 21) if d * DAY + h * HOUR < until]
    return [{"eval_time": at(0, 0, t / MINUTE), "alertname": name, "exp_alerts": []} for t in times for name in names]


def run_promtool(tmp_path: Path, series: dict[str, str], checks: list[dict], name: str) -> None:
    test = {
        "rule_files": [str(p) for p in RULE_FILES],
        "evaluation_interval": "5m",
        "tests": [{"interval": "5m", "input_series": [{"series": k, "values": val} for k, val in series.items()],
                   "alert_rule_test": checks}],
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(test, width=10**9, sort_keys=False))
    result = subprocess.run(["promtool", "test", "rules", str(path)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_fleet_week(tmp_path: Path) -> None:
    faults = fleet_faults()
    checks = []
    m3 = {  # m3 runs above the SLA from 10:00 on the second Monday, so it is in every later check
        "LLMTimeToFirstTokenAboveBaseline": expected_alert("LLMTimeToFirstTokenAboveBaseline", {"model_name": "m3"}, 2.5),
        "LLMTimeToFirstTokenSLABreach": expected_alert("LLMTimeToFirstTokenSLABreach", {"model_name": "m3"}, 2.5),
        "LLMInterTokenLatencyAboveBaseline": expected_alert("LLMInterTokenLatencyAboveBaseline", {"model_name": "m3"},
                                                            0.5),
        "LLMInterTokenLatencySLABreach": expected_alert("LLMInterTokenLatencySLABreach", {"model_name": "m3"}, 0.5),
    }
    for name, when, labels, value in faults:
        alerts = [expected_alert(name, labels, value)]
        if name in m3 and labels["model_name"] != "m3":
            alerts.append(m3[name])
        checks.append({"eval_time": when, "alertname": name, "exp_alerts": alerts})
    # The band never hides an SLA breach: m3 has no history, so its threshold is the SLA.
    checks.append({"eval_time": at(7, 10, 30), "alertname": "LLMTimeToFirstTokenAboveBaseline",
                   "exp_alerts": [expected_alert("LLMTimeToFirstTokenAboveBaseline", {"model_name": "m3"}, 2.5)]})
    # A +50% regression is caught within 15 minutes; before `for` elapses it is only pending.
    checks.append({"eval_time": at(7, 14, 0), "alertname": "LLMTimeToFirstTokenAboveBaseline",
                   "exp_alerts": [m3["LLMTimeToFirstTokenAboveBaseline"]]})
    # m4 is as slow as m3 but has almost no traffic: the minimum-traffic guard keeps it quiet.
    checks.append({"eval_time": at(7, 13, 0), "alertname": "LLMTimeToFirstTokenSLABreach",
                   "exp_alerts": [expected_alert("LLMTimeToFirstTokenSLABreach", {"model_name": "m3"}, 2.5)]})
    fleet_alerts = sorted({f[0] for f in faults})
    checks += silent_checks(fleet_alerts, until=7 * DAY + 10 * HOUR)
    run_promtool(tmp_path, fleet_series(), checks, "fleet-week")


# -- SLO burn rates, from raw vLLM counters and histograms ---------------------------------------

def slo_series() -> dict[str, str]:
    s: dict[str, str] = {}
    vl = 'job="vllm",engine="0"'
    # m1: 0.1% errors all week (inside a 99% objective); m2: 20% errors from the fault (fast burn);
    # m8: 2.5% errors all along (slow burn: ticket, not page).
    error_share = {"m1": lambda t: 0.001, "m2": lambda t: 0.2 if t >= FAULT_AT else 0.001, "m8": lambda t: 0.025}
    for model, share in error_share.items():
        s[f'vllm:request_success_total{{{vl},model_name="{model}",finished_reason="stop"}}'] = c(
            lambda t, share=share: TRAFFIC(t) * (1 - share(t)))
        s[f'vllm:request_success_total{{{vl},model_name="{model}",finished_reason="error"}}'] = c(
            lambda t, share=share: TRAFFIC(t) * share(t))
    # TTFT and ITL histograms: m1 99.5% fast; m2 degrades to 90% slow at the fault (fast burn);
    # m8 is 12% slow all along (over the 5% budget, under the x3 tier: slow burn).
    slow_share = {"m1": lambda t: 0.005, "m2": lambda t: 0.9 if t >= FAULT_AT else 0.005, "m8": lambda t: 0.12}
    for model, share in slow_share.items():
        for hist, le, per_request in (("time_to_first_token_seconds", "1.0", 1), ("inter_token_latency_seconds", "0.1", 30)):
            events = lambda t, p=per_request: TRAFFIC(t) * p  # noqa: E731
            s[f'vllm:{hist}_count{{{vl},model_name="{model}"}}'] = c(events)
            s[f'vllm:{hist}_bucket{{{vl},model_name="{model}",le="{le}"}}'] = c(
                lambda t, e=events, f=share: e(t) * (1 - f(t)))
    return s


SLO_ALERTS = {"LLMAvailabilityBudgetBurn": "availability", "LLMTTFTBudgetBurn": "ttft", "LLMITLBudgetBurn": "itl"}


def slo_checks() -> list[dict]:
    def burning(name: str, model: str, severity: str) -> dict:
        return expected_alert(name, {"model_name": model, "slo": SLO_ALERTS[name]}, severity=severity)

    checks = []
    for name in SLO_ALERTS:
        slow_burn = [burning(name, "m8", "warning")]
        checks += [
            # m2 fails hard at 14:00 (20% errors, 90% slow): the 1h/5m x14.4 tier pages within the hour.
            {"eval_time": at(7, 15, 15), "alertname": name, "exp_alerts": [burning(name, "m2", "critical"), *slow_burn]},
            # m8 is over budget but under the x3 tier: a ticket once the 3d/6h x1 tier has held `for: 1h`.
            {"eval_time": at(0, 0, 30), "alertname": name, "exp_alerts": []},
            {"eval_time": at(0, 2, 0), "alertname": name, "exp_alerts": slow_burn},
        ]
        quiet = silent_checks([name], until=FAULT_AT)
        for check in quiet:  # m1 and m2 stay quiet all week; only the slow burner m8 is reported
            check["exp_alerts"] = slow_burn
        checks += quiet
    return checks


def test_slo_week(tmp_path: Path) -> None:
    run_promtool(tmp_path, slo_series(), slo_checks(), "slo-week")


def test_every_alert_has_a_fault_case_and_a_quiet_week() -> None:
    covered = {f[0] for f in fleet_faults()} | set(SLO_ALERTS)
    assert covered == set(ALERTS), f"alerts without promtool cases: {sorted(set(ALERTS) - covered)}"
    severities = {(c["alertname"], a["exp_labels"]["severity"]) for c in slo_checks() for a in c["exp_alerts"]}
    assert {(n, s) for n in SLO_ALERTS for s in ("critical", "warning")} <= severities


# -- recording rules from raw engine series (one hour, exact values) --------------------------------

def test_recording_rules_from_raw_engine_series(tmp_path: Path) -> None:
    """p95 from vLLM buckets, SGLang and TGI mapped into the same series, ratios, cost."""
    vl, sg = 'job="vllm",engine="0",model_name="m1"', 'job="sglang",model_name="s1"'
    series = {
        # 10 requests/minute: 5 under 0.1 s, 4 more under 0.5 s, 1 more under 1 s.
        **{f'vllm:time_to_first_token_seconds_bucket{{{vl},le="{le}"}}': f"0+{n}x60"
           for le, n in (("0.1", 5), ("0.5", 9), ("1.0", 10), ("+Inf", 10))},
        **{f'sglang:time_to_first_token_seconds_bucket{{{sg},le="{le}"}}': f"0+{n}x60"
           for le, n in (("0.2", 10), ("+Inf", 10))},
        f'vllm:time_to_first_token_seconds_count{{{vl}}}': "0+10x60",
        f'vllm:request_success_total{{{vl},finished_reason="stop"}}': "0+9x60",
        f'vllm:request_success_total{{{vl},finished_reason="error"}}': "0+1x60",
        f'vllm:prompt_tokens_total{{{vl}}}': "0+600x60",
        f'vllm:generation_tokens_total{{{vl}}}': "0+1200x60",
        f'vllm:prefix_cache_queries_total{{{vl}}}': "0+600x60",
        f'vllm:prefix_cache_hits_total{{{vl}}}': "0+150x60",
        f'vllm:num_requests_waiting{{{vl}}}': "3x60",
        'tgi_queue_size{job="tgi-llama"}': "7x60",
        'llamacpp:requests_deferred{job="llama-cpp-phi"}': "4x60",
        'llamacpp:tokens_predicted_total{job="llama-cpp-phi"}': "0+300x60",
        f'sglang:num_queue_reqs{{{sg}}}': "2x60",
        'inferwatch_gpu_up{job="inferwatch-gpu",gpu="0"}': "1x60",
        'inferwatch_gpu_up{job="inferwatch-gpu",gpu="1"}': "1x60",
    }
    expr_tests = [
        # rank 9.5 of 10 falls in (0.5, 1.0]: 0.5 + 0.5 * (9.5 - 9) / 1 = 0.75
        ("model_name:llm_time_to_first_token_seconds:p95_rate5m", {"m1": 0.75, "s1": 0.19}),
        ("model_name:llm_requests:rate5m", {"m1": round(10 / 60, 6)}),
        ("model_name:llm_request_errors_per_requests:ratio_rate5m", {"m1": 0.1}),
        ("model_name:llm_prefix_cache_hits_per_queries:ratio_rate5m", {"m1": 0.25}),
        ("model_name:llm_requests_waiting:sum", {"m1": 3, "s1": 2, "tgi-llama": 7, "llama-cpp-phi": 4}),
        ("model_name:llm_generation_tokens:rate5m", {"m1": 20.0, "llama-cpp-phi": 5.0}),
        # (10 prompt + 20 + 5 generated tokens/s) on 2 GPUs at $2.5/GPU-hour: 2*2.5/3600 $/s over 35 tokens/s.
        (":llm_cost_usd_per_million_tokens:ratio_rate5m", {"": round(2 * 2.5 / 3600 / (35 / 1e6), 6)}),
        (":llm_generation_tokens_per_gpu_second:ratio_rate5m", {"": 12.5}),  # (20 + 5) tokens/s on 2 GPUs
        ("model_name:llm_slo_ttft_errors_per_events:ratio_rate5m", {"m1": 0.0}),  # all under le="1.0"
    ]

    def sample(labels: dict[str, str], value: float) -> dict:
        label_text = ",".join(f'model_name="{v}"' for v in labels.values() if v)
        return {"labels": f"{{{label_text}}}", "value": value}

    test = {
        "rule_files": [str(p) for p in RULE_FILES],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [{"series": k, "values": val} for k, val in series.items()],
            "promql_expr_test": [
                {"expr": f"round({name}, 0.000001)", "eval_time": "30m",
                 "exp_samples": [sample({"model_name": m}, value) for m, value in expected.items()]}
                for name, expected in expr_tests
            ],
        }],
    }
    path = tmp_path / "raw.yaml"
    path.write_text(yaml.safe_dump(test, width=10**9, sort_keys=False))
    result = subprocess.run(["promtool", "test", "rules", str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_rules_cli(tmp_path: Path) -> None:
    import sys

    exe = str(Path(sys.executable).parent / "inferwatch")
    fresh = subprocess.run([exe, "rules", "render", "--check", "--root", str(REPO)], capture_output=True, text=True)
    assert (fresh.returncode, fresh.stdout.strip()) == (0, "up to date")
    stale = subprocess.run([exe, "rules", "render", "--check", "--root", str(tmp_path)], capture_output=True, text=True)
    assert stale.returncode == 1 and "stale (run `inferwatch rules render`)" in stale.stderr
    written = subprocess.run([exe, "rules", "render", "--root", str(tmp_path)], capture_output=True, text=True)
    assert written.returncode == 0
    for relative in rules.OUTPUTS.values():
        assert (tmp_path / relative).read_text() == (REPO / relative).read_text()
    operator = subprocess.run([exe, "rules", "operator", "--namespace", "obs", "--label", "release=kps"],
                              capture_output=True, text=True)
    document = yaml.safe_load(operator.stdout)
    assert (document["metadata"]["namespace"], document["metadata"]["labels"]) == ("obs", {"release": "kps"})
