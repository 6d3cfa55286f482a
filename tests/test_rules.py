"""The rendered rules: fresh, lint-clean, built from independent mixin areas, and unit-tested with
`promtool test rules`.

Two simulated weeks (see promtool_cases.py): every alert fires on its fault on the second Monday
and stays silent through a normal week with daily and weekly patterns. Per-model SLOs/SLAs from a
config file: tests/test_rules_models.py.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from promtool_cases import (
    DAY,
    FAULT_AT,
    HOUR,
    MINUTE,
    PromtoolRun,
    after,
    alert_rules,
    area,
    at,
    counter,
    daily,
    noisy,
    promtool_test,
    rule_subset,
    run_promtool,
    values,
)
from promtool_cases import expected_alert as _expected_alert

from inferwatch import assets, cli, rules
from inferwatch.config import InferwatchConfig

REPO = Path(__file__).resolve().parent.parent
RULE_FILES = [REPO / path for path in rules.OUTPUTS.values()]
MIXIN = REPO / "inferwatch" / "mixin"
AREAS = ("serving", "slo", "adaptive", "errors", "engine", "gpu", "probe", "feedback", "drift", "logs",
         "versions")  # inferwatch/mixin/<area>.libsonnet
STEP = 5 * MINUTE
ALERTS = alert_rules((REPO / rules.OUTPUTS["prometheusAlerts"]).read_text())


@functools.cache
def rendered_defaults() -> dict[str, str]:
    return rules.rendered()


def expected_alert(name: str, labels: dict[str, str], value: float | None = None, severity: str | None = None) -> dict:
    return _expected_alert(ALERTS, name, labels, value, severity)


def test_rendered_rules_are_fresh() -> None:
    committed = {path: (REPO / path).read_text() for path in rules.OUTPUTS.values()}
    assert rendered_defaults() == committed, "run `inferwatch rules render` and commit the result"
    assert assets.rule_files() == committed  # what the installed package ships


def test_config_defaults_are_the_mixin_defaults() -> None:
    """A config file that sets nothing renders exactly the shipped rules (inferwatch/config.py and
    config.libsonnet agree on every SLO, SLA and price)."""
    def body(text: str) -> str:
        return text[text.index("groups:"):]

    from_config = rules.rendered(InferwatchConfig(), source="inferwatch.yaml")
    assert {p: body(t) for p, t in from_config.items()} == {p: body(t) for p, t in rendered_defaults().items()}
    assert from_config != rendered_defaults(), "the header says the rules came from a config file"
    assert "--config inferwatch.yaml" in next(iter(from_config.values())).splitlines()[0]


def test_promtool_check_rules_lint_clean() -> None:
    result = subprocess.run(["promtool", "check", "rules", "--lint=all", "--lint-fatal", *map(str, RULE_FILES)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mixin_conventions() -> None:
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            assert len(group["name"]) <= 40 and len(group["rules"]) <= 20, group["name"]
            assert group["name"].startswith("inferwatch.") and area(group["name"]) in AREAS, group["name"]
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


# -- the mixin's structure -------------------------------------------------------------------------

def _evaluate(code: str) -> dict:
    import _jsonnet

    return json.loads(_jsonnet.evaluate_snippet("test", code, import_callback=rules._importer(assets.mixin_dir())))


def test_mixin_areas_read_only_config() -> None:
    """Each area file reads nothing but `$._config` (helpers come from lib.libsonnet by import)."""
    assert sorted(p.stem for p in MIXIN.glob("*.libsonnet")) == sorted([*AREAS, "config", "lib", "mixin"])
    for name in AREAS:
        source = re.sub(r"//.*", "", (MIXIN / f"{name}.libsonnet").read_text())
        foreign = set(re.findall(r"\$\.(\w+)", source)) - {"_config"}
        assert not foreign, f"{name}.libsonnet reads {sorted(foreign)} outside $._config"
        assert not re.search(r"\$\[|\bsuper\.(?!labels|rules|groups)", source), f"{name}.libsonnet reaches outside _config"
        assert "runbook_url" not in source and "c.service" not in source, f"{name}: shared fields are stamped in lib"
    lib = re.sub(r"//.*", "", (MIXIN / "lib.libsonnet").read_text())
    own = set(re.findall(r"^  (\w+)\(.*\)::", lib, re.MULTILINE))
    assert set(re.findall(r"\$\.(\w+)", lib)) <= own, "lib.libsonnet: functions of their arguments only"


def test_each_area_evaluates_alone_and_the_mixin_composes_them() -> None:
    """config + one area renders on its own (no hidden dependency on another area), exposes nothing
    but the mixin objects, and the composed mixin is exactly the areas' groups in order."""
    whole = rules.evaluate()
    groups: dict[str, list] = {"prometheusRules": [], "prometheusAlerts": []}
    for name in AREAS:
        alone = _evaluate(f"""
            local lib = import 'lib.libsonnet';
            local m = (import 'config.libsonnet') + (import '{name}.libsonnet');
            {{
              fields: std.objectFieldsAll(m),
              prometheusRules: std.get(m, 'prometheusRules', {{groups: []}}),
              prometheusAlerts: lib.withSharedFields(std.get(m, 'prometheusAlerts', {{groups: []}}), m._config),
            }}""")
        assert set(alone["fields"]) <= {"_config", "prometheusRules", "prometheusAlerts"}, (name, alone["fields"])
        for key in groups:
            assert all(area(g["name"]) == name for g in alone[key]["groups"]), name
            groups[key] += alone[key]["groups"]
    assert groups == {key: whole[key]["groups"] for key in groups}


def test_windows_and_durations_come_from_config() -> None:
    """No area hard-codes a window or `for:` duration: changing _config changes every one of them."""
    changed = rules.evaluate("""{_config+:: {
      engine+: {downFor: '3m', modelUnavailableFor: '4m', redundancyLowFor: '6m', versionChangeWindow: '23m',
                versionSkewFor: '8m', exporterDownFor: '9m', targetDownFor: '24m', seriesAbsentFor: '25m',
                restartWindow: '26m', seriesAbsentLookback: '7h'},
      kvCache+: {'for': '11m', saturatedFor: '27m'}, preemptionStormFor: '12m',
      capacity+: {'for': '28m', window: '2w'}, errorRatio+: {'for': '29m', baselineWindow: '2d'},
      httpErrorRatio+: {'for': '55m', baselineWindow: '3d'},
      gpu+: {lostFor: '13m', nvmlUnavailableFor: '14m', xidWindow: '1h', rowRemapPendingFor: '16m', thermalFor: '17m',
             powerCapWindow: '18m', powerThrottlingFor: '19m', collectTimeoutWindow: '20m'},
      adaptive+: {seasonalInterval: '2m', seasonalLookback: '7m', seasonalWindow: '4h', seasonalPeriods: ['1d'],
                  'for': '21m'},
      sla+: {'for': '22m'},
      slo+: {windows: ['5m', '30m', '1h', '2h', '6h', '1d', '3d', '28d'], period: '28d'},
      probe+: {failingFor: '30m', failingOnEndpointFor: '31m', scoreDroppedFor: '32m', modelMismatchFor: '33m',
               clientLatencyFor: '34m', healthCheckFor: '35m', clientLatencyWindow: '36m', scoreBaselineWindow: '3d',
               scoreBaselineOffset: '2h'},
      feedback+: {window: '2h', baselineWindow: '14d', 'for': '43m', versionWindow: '2d', versionFor: '44m',
                  rejectedWindow: '45m', rejectedFor: '46m'},
      drift+: {'for': '47m', prometheusDownFor: '48m'},
      logs+: {errorsFor: '49m', sourceDownFor: '51m', baselineWindow: '2d', baselineOffset: '3h', eventWindow: '7m',
              newTemplateWindow: '52m'},
      versions+: {window: '53m', previousLookback: '3d', compareWithin: '5h', 'for': '54m'},
    }}""")
    text = json.dumps(changed)
    alerts = {r["alert"] + "/" + r["labels"]["severity"]: r for g in changed["prometheusAlerts"]["groups"]
              for r in g["rules"]}
    fors = {name.split("/")[0]: r.get("for") for name, r in alerts.items() if "BudgetBurn" not in name}
    assert fors == {
        "LLMEngineDown": "3m", "LLMModelUnavailable": "4m", "LLMModelRedundancyLow": "6m",
        "LLMModelVersionChanged": None, "LLMModelVersionSkew": "8m", "LLMKVCacheSaturationPredicted": "11m",
        "LLMPreemptionStorm": "12m", "InferwatchExporterDown": "9m", "GPULost": "13m", "GPUNvmlUnavailable": "14m",
        "GPUXidCriticalError": None, "GPUEccDoubleBitError": None, "GPURowRemapFailure": None,
        "GPURowRemapPending": "16m", "GPUThermalThrottling": "17m", "GPUPowerThrottling": "19m",
        "GPUExporterCollectTimeouts": None, "LLMTimeToFirstTokenAboveBaseline": "21m",
        "LLMInterTokenLatencyAboveBaseline": "21m", "LLMTimeToFirstTokenSLABreach": "22m",
        "LLMInterTokenLatencySLABreach": "22m", "LLMEngineTargetDown": "24m", "LLMModelSeriesAbsent": "25m",
        "LLMEngineRestarted": None, "LLMKVCacheSaturated": "27m", "LLMCapacityExceeded": "28m",
        "LLMErrorRatioAnomalous": "29m", "LLMProbeFailing": "30m", "LLMProbeFailingOnEndpoint": "31m",
        "LLMProbeScoreDropped": "32m", "LLMProbeModelMismatch": "33m", "LLMProbeClientLatencyHigh": "34m",
        "LLMProbeHealthCheckFailing": "35m", "LLMNegativeFeedbackRising": "43m", "LLMModelVersionRatedWorse": "44m",
        "LLMFeedbackRejected": "46m", "LLMInputDriftDetected": "47m", "LLMDriftPrometheusUnreachable": "48m",
        "LLMEngineLogOutOfMemory": None, "LLMEngineLogEngineDead": None, "LLMEngineLogErrorsAboveBaseline": "49m",
        "LLMEngineLogNewErrorAfterDeploy": None, "LLMEngineLogSourceDown": "51m", "LLMNewVersionWorse": "54m",
        "LLMHTTPErrorRatioAnomalous": "55m",
    }
    for needle in ("[23m]) > 0", "< 3600", "XID {{ $labels.xid }} in the last 1 hour.", "[18m]) > 0.5", "[20m]) > 0",
                   "[4h] offset 1320m", "[7m])", "ratio_rate28d", "SLO period (28 days)", "[26m])) > 0", "[7h]))",
                   "[2w:1h] offset 1d", "[2d:1h] offset 1h", "[28d:1d]", "[36m])", "[3d] offset 2h",
                   "over 3 days ending 2 hours ago", 'polarity=\\"negative\\"}[2h]))', "inferwatch_feedback:increase2h",
                   "increase2h[14d:2h] offset 2h", "increase2h[2d:2h]", "feedback:increase2d", "baseline_ratio14d",
                   "[45m]))", "rejected:rate45m", "* 2700 >= 10", "over the last 2 hours", "in the 14 days before",
                   "over the last 2 days", "(over 45 minutes)", "in each window, for 47 minutes", "[2d] offset 3h",
                   "baseline_rate2d", "over the 2 days ending 3 hours ago", "oom_kv_cache\\\"}[7m]", "[52m]))",
                   "p95_rate5m[53m])", "p95_rate5m_avg53m[3d])", "age_seconds <= 18000", "[58m]) == 1",
                   "over the last 53 minutes"):
        assert needle in text, needle
    for stale in ("[10m]", "offset 10020m", "< 600", "ratio_rate30d", "[2h] offset", "[6h]))", "[1w:1h] offset",
                  "[1d:1h] offset", "[30d:1d]", "[1d] offset 1h", "increase1h", "increase1d", "[7d:", "rate15m",
                  "* 900 >=", "over the last 1 hour", "for 30 minutes"):
        assert stale not in text, stale
    (seasonal,) = [g for g in changed["prometheusRules"]["groups"] if g["name"] == "inferwatch.adaptive.seasonal.rules"]
    assert seasonal["interval"] == "2m"


def test_prometheus_operator_rule() -> None:
    document = yaml.safe_load(rules.prometheus_rule("inferwatch", "monitoring", {"release": "kps"}))
    assert document["kind"] == "PrometheusRule" and document["metadata"]["labels"] == {"release": "kps"}
    assert document["spec"]["groups"] == [g for p in RULE_FILES for g in yaml.safe_load(p.read_text())["groups"]]


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


def load_latency(rate: float) -> float:
    """TTFT that grows with load as a queue's does (seconds; 0.42 s at the usual peak of 10/s)."""
    return 0.25 / (1 - rate / 25)


PEAK = 1.6


def peak_load(t: float) -> float:
    """The usual traffic, and 1.6x the usual peak for 90 minutes from the fault."""
    return PEAK * 10 if FAULT_AT <= t < FAULT_AT + 90 * MINUTE else TRAFFIC(t)


def restarted_counter(rate: float, at_time: float) -> str:
    """A counter growing at `rate`/s that starts again from 0 at `at_time` (an engine restart)."""
    return values(lambda t: rate * (t if t < at_time else t - at_time), step=STEP, digits=12)


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
    # One replica each for m1, m2, m5 and m12 (load per replica = request rate). m12 serves a
    # legitimate peak of 1.6x its usual load at the fault, with latency that follows its load
    # curve: a capacity warning, not a latency regression.
    for model in ("m1", "m2", "m5", "m12"):
        s[f'vllm:num_requests_running{{{vl},instance="{model}:8000",model_name="{model}"}}'] = v(lambda t: 4)
    s[f'{rate}{{model_name="m12"}}'] = v(peak_load)
    s[f'{ttft}{{model_name="m12"}}'] = v(noisy(lambda t: load_latency(peak_load(t)), seed=5))
    # m9: a 5% error burst for 15 minutes at the fault (0.05% before); its replica v2 restarts
    # (counters reset). m10: aborts jump from 1.5% to 25% an hour later. m13's replica v1 stops
    # answering scrapes at the fault (v5 carries on); m11's series vanish (gone from discovery).
    def burst(share: float, normal: float, start: float = FAULT_AT):
        return lambda t: share if start <= t < start + 15 * MINUTE else normal

    shares = {"m9": {"error": burst(0.05, 0.0005), "abort": lambda t: 0.015},
              "m10": {"error": lambda t: 0.0005, "abort": burst(0.25, 0.015, FAULT_AT + HOUR)}}
    for model, reasons in shares.items():
        for reason, share in reasons.items():
            s[f'vllm:request_success_total{{{vl},model_name="{model}",finished_reason="{reason}"}}'] = c(
                lambda t, share=share: TRAFFIC(t) * share(t))
        s[f'vllm:request_success_total{{{vl},model_name="{model}",finished_reason="stop"}}'] = c(
            lambda t, reasons=reasons: TRAFFIC(t) * (1 - sum(share(t) for share in reasons.values())))
    # m9's replica v2 rejects 30% of its requests with HTTP 4xx for 15 minutes two hours after the
    # fault (0.5% before): an application sending over-long prompts. vLLM counts them only in
    # http_requests_total, which has no model label.
    http = 'http_requests_total{job="vllm",instance="v2:8000",handler="/v1/completions",method="POST",status="%s"}'
    rejected = burst(0.3, 0.005, FAULT_AT + 2 * HOUR)
    s[http % "4xx"] = c(lambda t: TRAFFIC(t) * rejected(t))
    s[http % "2xx"] = c(lambda t: TRAFFIC(t) * (1 - rejected(t)))
    s[f'vllm:num_requests_running{{{vl},instance="v1:8000",model_name="m13"}}'] = v(fault(3, None))
    s[f'vllm:num_requests_running{{{vl},instance="v5:8000",model_name="m13"}}'] = v(lambda t: 3)
    s[f'vllm:num_requests_running{{{vl},instance="v2:8000",model_name="m9"}}'] = v(lambda t: 3)
    for instance in ("v1", "v2", "v5"):
        s[f'up{{job="vllm",instance="{instance}:8000"}}'] = v(fault(1, 0) if instance == "v1" else (lambda t: 1))
    s[f'vllm:prompt_tokens_total{{{vl},instance="v2:8000",model_name="m9"}}'] = restarted_counter(100, FAULT_AT)
    s[f'vllm:num_requests_running{{{vl},instance="v3:8000",model_name="m11"}}'] = v(fault(2, None))
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
    s.update(probe_series())
    s.update(feedback_series())
    s.update(drift_series())
    return s


# -- quality probes (the probe exporter's series) ---------------------------------------------------

PROBE_REASONS = ("timeout", "assertion_failed", "model_mismatch")
PROBE_CASES = ("c1", "c2")
HEALTH_CHECKS = ("model_listed", "model_context_matches", "tokenizer_roundtrip_success")
CLIENT_TTFT_FAULT = 3.0  # m18's client-side TTFT from the fault: a slow proxy in front of a normal engine


def probe_labels(model: str, instance: str, target: str | None = None) -> dict[str, str]:
    """A probe's series labels: GET /probe (instance = the probed endpoint), or a scheduled target
    on the exporter's own /metrics (instance = the exporter, `target` = the target's name)."""
    return {"job": "inferwatch-probe", "instance": instance, **({"target": target} if target else {}),
            "module": "smoke", "model_name": model}


def probe_endpoint(labels: dict[str, str], score=lambda t: 1.0, reason=lambda t: None, ttft=None,
                   health: dict | None = None) -> dict[str, str]:
    """One probed endpoint: `score(t)` the share of its cases passed (success when 1), `reason(t)` the
    failure reason, `ttft(t, case)` each case's client-side TTFT (None: absent), `health` check -> value(t)."""
    s: dict[str, str] = {}
    base = ",".join(f'{k}="{value}"' for k, value in labels.items())
    s[f"inferwatch_probe_success{{{base}}}"] = v(lambda t: 1 if score(t) == 1 else 0)
    s[f"inferwatch_probe_module_score_ratio{{{base}}}"] = v(score)
    for r in PROBE_REASONS:
        s[f'inferwatch_probe_failed{{{base},reason="{r}"}}'] = v(lambda t, r=r: 1 if reason(t) == r else 0)
    for case in PROBE_CASES:
        s[f'inferwatch_probe_case_time_to_first_token_seconds{{{base},case="{case}"}}'] = v(
            lambda t, case=case: (ttft or (lambda t, case: 0.3))(t, case))
    for check, value in (health or {name: lambda t: 1 for name in HEALTH_CHECKS}).items():
        s[f"inferwatch_probe_{check}{{{base}}}"] = v(value)
    return s


def probe_series() -> dict[str, str]:
    """m14 is probed and normal: two endpoints that each fail a single probe now and then (a
    timeout), never twice in a row, and client TTFT well under its engine's. At the fault: every
    probe of m15 fails its assertions; one of m16's two endpoints passes only 40% of its cases; m17's
    scheduled target m17-b answers with another model; m18's probes wait 3 s for the first token
    while its engine is as fast as ever; m19's endpoints report a wrong context length, and an
    unlisted model with a broken tokenizer round trip."""
    s: dict[str, str] = {}
    ttft = "model_name:llm_time_to_first_token_seconds:p95_rate5m"
    for model, seed in (("m14", 14), ("m18", 18)):
        s[f'{ttft}{{model_name="{model}"}}'] = v(noisy(TTFT, seed=seed))
    client = {case: noisy(lambda t: 0.5 * TTFT(t) + 0.05, seed=20 + i) for i, case in enumerate(PROBE_CASES)}

    def flaky(period: int, phase: int):
        def fails(t: float) -> bool:
            return int(t // STEP) % period == phase
        return fails

    for instance, fails in (("p14a:8000", flaky(13, 5)), ("p14b:8000", flaky(17, 3))):
        health = {"model_listed": lambda t: 1, "model_context_matches": lambda t: 1}
        if instance == "p14a:8000":  # p14b's engine has no /tokenize: the series is absent
            health["tokenizer_roundtrip_success"] = lambda t: 1
        s.update(probe_endpoint(
            probe_labels("m14", instance), score=lambda t, f=fails: 0.5 if f(t) else 1.0,
            reason=lambda t, f=fails: "timeout" if f(t) else None,
            ttft=lambda t, case, f=fails: None if f(t) and case == "c1" else client[case](t), health=health))
    for instance in ("p15a:8000", "p15b:8000"):
        s.update(probe_endpoint(probe_labels("m15", instance), score=fault(1.0, 0.0),
                                reason=fault(None, "assertion_failed")))
    s.update(probe_endpoint(probe_labels("m16", "p16a:8000")))
    s.update(probe_endpoint(probe_labels("m16", "p16b:8000"), score=fault(1.0, 0.4),
                            reason=fault(None, "assertion_failed")))
    s.update(probe_endpoint(probe_labels("m17", "probe-1:9837", "m17-a")))
    s.update(probe_endpoint(probe_labels("m17", "probe-1:9837", "m17-b"), score=fault(1.0, 0.0),
                            reason=fault(None, "model_mismatch")))
    s.update(probe_endpoint(probe_labels("m18", "p18a:8000"),
                            ttft=lambda t, case: CLIENT_TTFT_FAULT if t >= FAULT_AT else client[case](t)))
    healthy = {name: (lambda t: 1) for name in HEALTH_CHECKS}
    s.update(probe_endpoint(probe_labels("m19", "p19a:8000"),
                            health={**healthy, "model_context_matches": fault(1, 0)}))
    s.update(probe_endpoint(probe_labels("m19", "p19b:8000"),
                            health={**healthy, "model_listed": fault(1, 0), "tokenizer_roundtrip_success": fault(1, 0)}))
    return s


def probe_faults() -> list[tuple[str, str, dict[str, str], float | None]]:
    """Every probe alert 20 minutes into the fault, after the longest `for` (15m): each model's
    failure fires every alert it explains (Alertmanager mutes the redundant ones)."""
    when = at(7, 14, 20)
    m16b, m17b = probe_labels("m16", "p16b:8000"), probe_labels("m17", "probe-1:9837", "m17-b")
    return [
        ("LLMProbeFailing", when, {"model_name": "m15"}, 0),
        ("LLMProbeFailingOnEndpoint", when, m16b, 0),
        ("LLMProbeFailingOnEndpoint", when, m17b, 0),
        # avg over endpoints: m15 0, m16 (1 + 0.4) / 2, m17 (1 + 0) / 2; each baseline 1
        ("LLMProbeScoreDropped", when, {"model_name": "m15", "module": "smoke"}, 0),
        ("LLMProbeScoreDropped", when, {"model_name": "m16", "module": "smoke"}, 0.7),
        ("LLMProbeScoreDropped", when, {"model_name": "m17", "module": "smoke"}, 0.5),
        ("LLMProbeModelMismatch", when, {**m17b, "reason": "model_mismatch"}, 1),
        ("LLMProbeClientLatencyHigh", when, {"model_name": "m18"}, CLIENT_TTFT_FAULT),
        ("LLMProbeHealthCheckFailing", when, {**probe_labels("m19", "p19a:8000"), "check": "context_matches"}, 0),
        ("LLMProbeHealthCheckFailing", when, {**probe_labels("m19", "p19b:8000"), "check": "model_listed"}, 0),
        ("LLMProbeHealthCheckFailing", when, {**probe_labels("m19", "p19b:8000"), "check": "tokenizer_roundtrip"}, 0),
    ]


# -- user feedback and input drift (the feedback service's and the drift exporter's series) ---------

ENGINE = 'job="inferwatch-engine"'
VERSION_FIXED = FAULT_AT + 3 * HOUR  # m20's bad version b is replaced by c (a fix forward)
REJECTED_PER_HOUR = 600  # invalid_value rejections from the fault
TRICKLE_PER_HOUR = 50  # unknown_score rejections all week: over rejectedMinEvents, under rejectedRatio


def events(per_hour, start: float = 0) -> str:
    """A counter of `per_hour(t)` events per hour, created (at 0) at `start`, flat once the rate is 0."""
    totals: dict[float, float | None] = {}
    total = 0.0
    for i in range(8 * DAY // STEP + 1):  # the weeks are 8 days (promtool_cases.DAYS)
        t = i * STEP
        totals[t] = None if t < start else total
        if t >= start:
            total += per_hour(t) * STEP / HOUR
    return values(lambda t: totals[t], step=STEP, digits=12)


def thumbs(model: str, version: str, per_hour, negative, instance: str = "fb-1:9839", start: float = 0,
           job: str = "inferwatch-feedback") -> dict[str, str]:
    """Thumbs up/down on one version: `per_hour(t)` events, `negative(t)` of them down."""
    base = ",".join(f'{k}="{v}"' for k, v in {"job": job, "instance": instance, "model_name": model,
                                              "version": version, "score": "thumbs"}.items())
    return {
        f'inferwatch_feedback_total{{{base},value="true",polarity="positive"}}': events(
            lambda t: per_hour(t) * (1 - negative(t)), start),
        f'inferwatch_feedback_total{{{base},value="false",polarity="negative"}}': events(
            lambda t: per_hour(t) * negative(t), start),
    }


def serving(model: str, version: str, present, endpoint: str | None = None) -> dict[str, str]:
    labels = f'{ENGINE},endpoint="{endpoint or "e-" + model}",model_name="{model}",version="{version}",source="config"'
    return {f"inferwatch_model_version_info{{{labels}}}": v(lambda t: 1 if present(t) else None)}


def between(start: float, end: float = float("inf")):
    return lambda t: start <= t < end


FEEDBACK_PER_HOUR = {"m20": 100, "m21": 6, "m22": 100, "m23": 100, "m24": 130, "m25": 100}  # accepted, all the time


def feedback_series() -> dict[str, str]:
    """Thumbs feedback at a steady volume (per hour: FEEDBACK_PER_HOUR). m20 is 10% negative until
    the fault, when version b (40% negative) replaces a; c (10% again) replaces b 3 hours later;
    its feedback comes through two replicas of the service. m21's version b replaces a at the
    fault and gets 80% negative feedback instead of 10%, on 6 events an hour (noise under both volume
    guards until the day ends). m22 is 35% negative all week
    (a high but normal share, noisy). m23's version b replaces a at the fault, rated exactly as a
    (20%). m24 has one version (25%) and feedback whose version was not resolved (`unknown`, 5%).
    m25 is a canary: b (40%) serves half of its traffic from the fault on one endpoint, a
    (10%) the other half. The service rejects 50 events an hour (unknown_score, 8%) all week, and
    600 an hour (invalid_value) from the fault. A second, quiet service (m29) rejects a third of its
    3 events an hour: a high share of next to nothing."""
    s: dict[str, str] = {}
    always = lambda t: True  # noqa: E731
    for instance in ("fb-1:9839", "fb-2:9839"):  # m20's feedback split over two service replicas
        s.update(thumbs("m20", "a", lambda t: 50 if t < FAULT_AT else 0, lambda t: 0.1, instance))
        s.update(thumbs("m20", "b", lambda t: 50 if t < VERSION_FIXED else 0, lambda t: 0.4, instance, start=FAULT_AT))
        s.update(thumbs("m20", "c", lambda t: 50, lambda t: 0.1, instance, start=VERSION_FIXED))
    s.update(serving("m20", "a", lambda t: t < FAULT_AT))
    s.update(serving("m20", "b", between(FAULT_AT, VERSION_FIXED)))
    s.update(serving("m20", "c", between(VERSION_FIXED)))
    s.update(thumbs("m21", "a", lambda t: 6 if t < FAULT_AT else 0, lambda t: 0.1))
    s.update(thumbs("m21", "b", lambda t: 6, lambda t: 0.8, start=FAULT_AT))
    s.update(serving("m21", "a", lambda t: t < FAULT_AT))
    s.update(serving("m21", "b", between(FAULT_AT)))
    s.update(thumbs("m22", "a", lambda t: 100, noisy(lambda t: 0.35, amplitude=0.15, seed=22)))
    s.update(serving("m22", "a", always))
    s.update(thumbs("m23", "a", lambda t: 100 if t < FAULT_AT else 0, lambda t: 0.2))
    s.update(thumbs("m23", "b", lambda t: 100, lambda t: 0.2, start=FAULT_AT))
    s.update(serving("m23", "a", lambda t: t < FAULT_AT))
    s.update(serving("m23", "b", between(FAULT_AT)))
    s.update(thumbs("m24", "a", lambda t: 100, lambda t: 0.25))
    s.update(thumbs("m24", "unknown", lambda t: 30, lambda t: 0.05))
    s.update(serving("m24", "a", always))
    s.update(thumbs("m25", "a", lambda t: 100 if t < FAULT_AT else 50, lambda t: 0.1))
    s.update(thumbs("m25", "b", lambda t: 50, lambda t: 0.4, start=FAULT_AT))
    s.update(serving("m25", "a", always, endpoint="e-m25-stable"))
    s.update(serving("m25", "a", lambda t: t < FAULT_AT, endpoint="e-m25-canary"))
    s.update(serving("m25", "b", between(FAULT_AT), endpoint="e-m25-canary"))
    rejected = 'inferwatch_feedback_rejected_total{job="inferwatch-feedback",instance="fb-1:9839"'
    s[f'{rejected},reason="unknown_score"}}'] = events(lambda t: TRICKLE_PER_HOUR)
    s[f'{rejected},reason="invalid_value"}}'] = events(lambda t: REJECTED_PER_HOUR, start=FAULT_AT)
    s.update(thumbs("m29", "a", lambda t: 2, lambda t: 0.1, "fb-eu:9839", job="inferwatch-feedback-eu"))
    s['inferwatch_feedback_rejected_total{job="inferwatch-feedback-eu",instance="fb-eu:9839",reason="invalid_value"}'] = events(
        lambda t: 1)
    return s


DRIFT = {"job": "inferwatch-drift", "instance": "drift:9838"}


def drift_feature(model: str, source: str, feature: str, method: str, score, detected, current: int,
                  reference: int) -> dict[str, str]:
    base = ",".join(f'{k}="{v}"' for k, v in {**DRIFT, "model_name": model, "source": source, "feature": feature}.items())
    return {
        f'inferwatch_drift_score{{{base},method="{method}"}}': v(score),
        f'inferwatch_drift_detected{{{base},method="{method}"}}': v(detected),
        f'inferwatch_drift_samples{{{base},window="current"}}': v(lambda t: current),
        f'inferwatch_drift_samples{{{base},window="reference"}}': v(lambda t: reference),
    }


DRIFT_SCORE_FAULT = 0.3
noisy_psi = noisy(lambda t: 0.04, amplitude=0.5, seed=26)  # 0.02-0.06: no drift


def daily_blip(t: float) -> bool:
    """20 minutes of drift every day from 14:50, across the 15:00 quiet check (shorter than `for`)."""
    return 14 * HOUR + 50 * MINUTE <= t % DAY < 15 * HOUR + 10 * MINUTE


def drift_series() -> dict[str, str]:
    """m26's prompt-token distribution drifts at the fault (PSI 0.04 to 0.3), on thousands of
    requests, its generation tokens do not. m27 drifts on too few samples: its sampled embeddings
    (50 in the current window) and prompt lengths (120 in the reference window). m28's prompt tokens
    drift for 20 minutes every day (a blip shorter than `for`). The exporter cannot reach Prometheus
    from the fault, and for one scrape on day 3 at 15:00."""
    s: dict[str, str] = {}
    s.update(drift_feature("m26", "histogram", "prompt_tokens", "psi",
                           lambda t: DRIFT_SCORE_FAULT if t >= FAULT_AT else noisy_psi(t), fault(0, 1), 5000, 20000))
    s.update(drift_feature("m26", "histogram", "generation_tokens", "psi", noisy_psi, lambda t: 0, 5000, 20000))
    s.update(drift_feature("m27", "samples", "embedding", "mmd", fault(0.005, 0.05), fault(0, 1), 50, 1000))
    s.update(drift_feature("m27", "samples", "prompt_chars", "ks", fault(0.05, 0.4), fault(0, 1), 1000, 120))
    s.update(drift_feature("m28", "histogram", "prompt_tokens", "jensenshannon",
                           lambda t: 0.15 if daily_blip(t) else 0.05, lambda t: 1 if daily_blip(t) else 0, 3000, 3000))
    s['inferwatch_drift_prometheus_up{job="inferwatch-drift",instance="drift:9838"}'] = v(
        lambda t: 0 if t >= FAULT_AT or t == 3 * DAY + 15 * HOUR else 1)
    return s


def quality_faults() -> list[tuple[str, str, dict[str, str], float | None]]:
    """The feedback and drift alerts past their `for` (each model's version and feature as above)."""
    return [
        # b's hour: 40% negative, over max(1.5 x 10%, 10% + 10 points) = 20%; m25's canary too.
        ("LLMNegativeFeedbackRising", at(7, 14, 50), {"model_name": "m20", "version": "b"}, 0.4),
        ("LLMNegativeFeedbackRising", at(7, 14, 50), {"model_name": "m25", "version": "b"}, 0.4),
        # b, served since the fault, against a (10%), served no more
        ("LLMModelVersionRatedWorse", at(7, 16, 40), {"model_name": "m20", "version": "b"}, 0.4),
        ("LLMFeedbackRejected", at(7, 14, 40), {"job": "inferwatch-feedback", "reason": "invalid_value"},
         REJECTED_PER_HOUR / (REJECTED_PER_HOUR + TRICKLE_PER_HOUR + sum(FEEDBACK_PER_HOUR.values()))),
        ("LLMInputDriftDetected", at(7, 14, 40), {"model_name": "m26", "source": "histogram",
                                                  "feature": "prompt_tokens", "method": "psi"}, DRIFT_SCORE_FAULT),
        ("LLMDriftPrometheusUnreachable", at(7, 14, 15), DRIFT, 0),
    ]


def quality_checks() -> list[dict]:
    """What must not fire (every alert is also quiet all week): a share still under `for`, a new
    version rated as the old one, one version only, a canary (its old version still served), the
    fixed version after the bad one; drift in its first 30 minutes, on too few samples, a blip."""
    def check(when: str, name: str, *alerts: tuple[dict[str, str], float | None]) -> dict:
        return {"eval_time": when, "alertname": name, "exp_alerts": [expected_alert(name, labels, x) for labels, x in alerts]}

    b20 = ({"model_name": "m20", "version": "b"}, 0.4)
    m26 = ({"model_name": "m26", "source": "histogram", "feature": "prompt_tokens", "method": "psi"}, DRIFT_SCORE_FAULT)
    return [
        check(at(7, 14, 20), "LLMNegativeFeedbackRising"),  # m20's b: over the threshold for under 15 minutes
        check(at(7, 14, 50), "LLMModelVersionRatedWorse"),  # b has no hour of its own yet
        check(at(7, 15, 40), "LLMNegativeFeedbackRising", b20, ({"model_name": "m25", "version": "b"}, 0.4)),
        # c (10%) replaced b: not worse than a and b together; b, served no more, is not compared.
        check(at(7, 19, 40), "LLMModelVersionRatedWorse"),
        check(at(7, 19, 40), "LLMNegativeFeedbackRising", ({"model_name": "m25", "version": "b"}, 0.4)),
        check(at(7, 14, 5), "LLMFeedbackRejected"),  # the invalid_value burst under `for`; the trickle and m29 never
        check(at(7, 14, 20), "LLMInputDriftDetected"),
        check(at(7, 15, 5), "LLMInputDriftDetected", m26),  # m28's daily blip is pending, 15 minutes in
        check(at(7, 14, 5), "LLMDriftPrometheusUnreachable"),
    ]


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
        ("LLMModelVersionSkew", at(7, 14, 40), {"model_name": "m25"}, 2),  # m25's canary (feedback cases)
        ("LLMKVCacheSaturationPredicted", at(7, 14, 40), {"model_name": "m7"}, None),
        ("LLMPreemptionStorm", at(7, 14, 20), {"model_name": "m7"}, 5),
        ("InferwatchExporterDown", at(7, 14, 15), {**eng, "instance": "x:9836"}, 0),
        ("LLMEngineTargetDown", at(7, 14, 5), {"job": "vllm", "instance": "v1:8000", "model_name": "m13",
                                                "target": "v1:8000"}, 0),
        ("LLMEngineRestarted", at(7, 14, 5), {"job": "vllm", "instance": "v2:8000", "model_name": "m9"}, 1),
        ("LLMModelSeriesAbsent", at(7, 14, 15), {"model_name": "m11"}, 1),
        ("LLMErrorRatioAnomalous", at(7, 14, 15), {"model_name": "m9", "finished_reason": "error"}, 0.05),
        ("LLMErrorRatioAnomalous", at(7, 15, 15), {"model_name": "m10", "finished_reason": "abort"}, 0.25),
        ("LLMHTTPErrorRatioAnomalous", at(7, 16, 14), {"model_name": "m9", "status": "4xx"}, 0.3),
        ("LLMKVCacheSaturated", at(7, 14, 40), {"model_name": "m7"}, 0.99),
        ("LLMCapacityExceeded", at(7, 14, 20), {"model_name": "m12"}, PEAK * 10),
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
        *probe_faults(),
        *quality_faults(),
    ]


def silent_checks(names: list[str], until: float) -> list[dict]:
    """Every named alert quiet at night, morning, peak and evening of every day before `until`."""
    times = [d * DAY + h * HOUR for d in range(1, 8) for h in (3, 9, 15, 21) if d * DAY + h * HOUR < until]
    return [{"eval_time": at(0, 0, t / MINUTE), "alertname": name, "exp_alerts": []} for t in times for name in names]


def fleet_checks() -> list[dict]:
    faults = fleet_faults()
    checks = []
    m3 = {  # m3 runs above the SLA from 10:00 on the second Monday, so it is in every later check
        "LLMTimeToFirstTokenAboveBaseline": expected_alert("LLMTimeToFirstTokenAboveBaseline", {"model_name": "m3"}, 2.5),
        "LLMTimeToFirstTokenSLABreach": expected_alert("LLMTimeToFirstTokenSLABreach", {"model_name": "m3"}, 2.5),
        "LLMInterTokenLatencyAboveBaseline": expected_alert("LLMInterTokenLatencyAboveBaseline", {"model_name": "m3"},
                                                            0.5),
        "LLMInterTokenLatencySLABreach": expected_alert("LLMInterTokenLatencySLABreach", {"model_name": "m3"}, 0.5),
    }
    firing: dict[tuple[str, str], list[dict]] = {}  # one check lists every alert of its name at its time
    for name, when, labels, value in faults:
        firing.setdefault((name, when), []).append(expected_alert(name, labels, value))
    for (name, when), alerts in firing.items():
        if name in m3 and all(a["exp_labels"]["model_name"] != "m3" for a in alerts):
            alerts.append(m3[name])
        checks.append({"eval_time": when, "alertname": name, "exp_alerts": alerts})
    # Probes: failing for under `for` is only pending (the fault's first minutes; m14's flaky
    # single probes, on one endpoint at day 3 01:00, on both at day 1 04:35).
    for name in ("LLMProbeFailing", "LLMProbeModelMismatch", "LLMProbeHealthCheckFailing"):
        checks.append({"eval_time": at(7, 14, 0), "alertname": name, "exp_alerts": []})
    checks.append({"eval_time": at(7, 14, 5), "alertname": "LLMProbeFailingOnEndpoint", "exp_alerts": []})
    checks.append({"eval_time": at(3, 1, 0), "alertname": "LLMProbeFailingOnEndpoint", "exp_alerts": []})
    for name in ("LLMProbeFailing", "LLMProbeScoreDropped"):
        checks.append({"eval_time": at(1, 4, 35), "alertname": name, "exp_alerts": []})
    # The band never hides an SLA breach: m3 has no history, so its threshold is the SLA.
    checks.append({"eval_time": at(7, 10, 30), "alertname": "LLMTimeToFirstTokenAboveBaseline",
                   "exp_alerts": [expected_alert("LLMTimeToFirstTokenAboveBaseline", {"model_name": "m3"}, 2.5)]})
    # A +50% regression is caught within 15 minutes; before `for` elapses it is only pending.
    checks.append({"eval_time": at(7, 14, 0), "alertname": "LLMTimeToFirstTokenAboveBaseline",
                   "exp_alerts": [m3["LLMTimeToFirstTokenAboveBaseline"]]})
    # m12's 1.6x peak (latency as its load explains, below the SLA) is no regression, and neither
    # fault-free model nor the errors burst's end leave an alert behind.
    for minutes in (20, 60, 85):
        checks.append({"eval_time": at(7, 14, minutes), "alertname": "LLMTimeToFirstTokenAboveBaseline",
                       "exp_alerts": [expected_alert("LLMTimeToFirstTokenAboveBaseline", {"model_name": "m2"},
                                                     TTFT(FAULT_AT + minutes * MINUTE) * REGRESSION),
                                      m3["LLMTimeToFirstTokenAboveBaseline"]]})
    checks.append({"eval_time": at(7, 14, 40), "alertname": "LLMErrorRatioAnomalous", "exp_alerts": []})
    checks.append({"eval_time": at(7, 16, 40), "alertname": "LLMHTTPErrorRatioAnomalous", "exp_alerts": []})
    # m4 is as slow as m3 but has almost no traffic: the minimum-traffic guard keeps it quiet.
    checks.append({"eval_time": at(7, 13, 0), "alertname": "LLMTimeToFirstTokenSLABreach",
                   "exp_alerts": [expected_alert("LLMTimeToFirstTokenSLABreach", {"model_name": "m3"}, 2.5)]})
    checks += quality_checks()
    fleet_alerts = sorted({f[0] for f in faults})
    checks += silent_checks(fleet_alerts, until=7 * DAY + 10 * HOUR)
    return checks


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
            # (the 3d ratio reads hourly means: it exists from the first full hour, so 2h plus one step)
            {"eval_time": at(0, 2, 10), "alertname": name, "exp_alerts": slow_burn},
        ]
        quiet = silent_checks([name], until=FAULT_AT)
        for check in quiet:  # m1 and m2 stay quiet all week; only the slow burner m8 is reported
            check["exp_alerts"] = slow_burn
        checks += quiet
    return checks


def test_every_alert_has_a_fault_case_and_a_quiet_week() -> None:
    from test_rules_logs import LOG_ALERTS  # the log area has its own two days at one-minute steps
    from test_rules_versions import VERSION_ALERTS  # so has the versions area

    covered = {f[0] for f in fleet_faults()} | set(SLO_ALERTS) | LOG_ALERTS | VERSION_ALERTS
    assert covered == set(ALERTS), f"alerts without promtool cases: {sorted(set(ALERTS) - covered)}"
    severities = {(c["alertname"], a["exp_labels"]["severity"]) for c in slo_checks() for a in c["exp_alerts"]}
    assert {(n, s) for n in SLO_ALERTS for s in ("critical", "warning")} <= severities
    # the week tests load only their areas' groups: together those hold every alert
    weekly = {r["alert"] for p in RULE_FILES for g in yaml.safe_load(p.read_text())["groups"]
              if area(g["name"]) in set().union(*WEEK_AREAS.values()) for r in g["rules"] if "alert" in r}
    assert weekly | LOG_ALERTS | VERSION_ALERTS == set(ALERTS)


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

    test = promtool_test([str(p) for p in RULE_FILES], series, "1m", expr_checks=[
        {"expr": f"round({name}, 0.000001)", "eval_time": "30m",
         "exp_samples": [sample({"model_name": m}, value) for m, value in expected.items()]}
        for name, expected in expr_tests
    ])
    run_promtool(tmp_path / "raw.yaml", test, timeout=120)


def test_feedback_and_drift_recording_rules_from_raw_series(tmp_path: Path) -> None:
    """Exact values: feedback summed over the service's replicas, neutral feedback in the denominator,
    a version without negative feedback at 0 (not missing), the baseline and threshold from hourly
    sums, the versions a served one replaced (`unknown` left out), the mean rating, rejected shares
    (a service that accepted nothing rejects 100%), the smaller drift window."""
    fb = 'job="inferwatch-feedback",model_name="r1"'
    per_minute = {  # feedback events per minute
        f'inferwatch_feedback_total{{{fb},instance="fb-1",version="a",score="thumbs",value="true",polarity="positive"}}': 6,
        f'inferwatch_feedback_total{{{fb},instance="fb-2",version="a",score="thumbs",value="false",polarity="negative"}}': 2,
        f'inferwatch_feedback_total{{{fb},instance="fb-2",version="a",score="rating",value="numeric",polarity="neutral"}}': 2,
        f'inferwatch_feedback_total{{{fb},instance="fb-1",version="b",score="thumbs",value="true",polarity="positive"}}': 1,
        f'inferwatch_feedback_total{{{fb},instance="fb-1",version="unknown",score="thumbs",value="false",polarity="negative"}}': 1,
        f'inferwatch_feedback_score_sum{{{fb},instance="fb-2",version="a",score="rating"}}': 8,  # two ratings of 4
        f'inferwatch_feedback_score_count{{{fb},instance="fb-2",version="a",score="rating"}}': 2,
        'inferwatch_feedback_rejected_total{job="inferwatch-feedback",instance="fb-1",reason="invalid_value"}': 10,
        'inferwatch_feedback_rejected_total{job="inferwatch-feedback-eu",instance="fb-3",reason="unknown_score"}': 1,
    }
    series = {name: f"0+{n}x150" for name, n in per_minute.items()}
    series['inferwatch_model_version_info{job="inferwatch-engine",endpoint="e1",model_name="r1",version="b",source="config"}'] = "1x150"
    drift = 'job="inferwatch-drift",model_name="r1",source="samples",feature="embedding"'
    series[f'inferwatch_drift_samples{{{drift},window="current"}}'] = "300x150"
    series[f'inferwatch_drift_samples{{{drift},window="reference"}}'] = "1000x150"
    a, b, unknown = ({"model_name": "r1", "version": version} for version in ("a", "b", "unknown"))
    r1 = {"model_name": "r1"}
    expr_tests = [  # at 130m: the last full hour is 60m-120m, the baseline's (offset 1h) 0m-60m
        ("model_name_version:inferwatch_feedback:increase1h", [(a, 600), (b, 60), (unknown, 60)]),
        ("model_name_version:inferwatch_feedback_negative:increase1h", [(a, 120), (b, 0), (unknown, 60)]),
        ("model_name_version:inferwatch_feedback_negative_per_feedback:ratio_rate1h", [(a, 0.2), (b, 0), (unknown, 1)]),
        ("model_name:inferwatch_feedback_negative_per_feedback:baseline_ratio7d", [(r1, 180 / 720)]),
        ("model_name:inferwatch_feedback_negative_per_feedback:threshold_ratio", [(r1, 1.5 * 180 / 720)]),
        ("model_name_version:inferwatch_feedback:increase1d", [(a, 1200), (b, 120), (unknown, 120)]),
        ("model_name_version:inferwatch_feedback_negative_per_feedback:ratio_rate1d", [(a, 0.2), (b, 0), (unknown, 1)]),
        # b is served: a alone is what it replaced
        ("model_name:inferwatch_feedback_previous_versions_negative_per_feedback:ratio_rate1d", [(r1, 0.2)]),
        ("model_name_version_score:inferwatch_feedback_score:mean1h", [({**a, "score": "rating"}, 4)]),
        ("job_reason:inferwatch_feedback_rejected_per_received:ratio_rate15m",
         [({"job": "inferwatch-feedback", "reason": "invalid_value"}, 10 / 22),
          ({"job": "inferwatch-feedback-eu", "reason": "unknown_score"}, 1)]),
        ("model_name_source_feature:inferwatch_drift_samples:min",
         [({"model_name": "r1", "source": "samples", "feature": "embedding"}, 300)]),
    ]

    def sample(labels: dict[str, str], value: float) -> dict:
        return {"labels": "{" + ",".join(f'{k}="{x}"' for k, x in labels.items()) + "}", "value": round(value, 6)}

    files = rule_subset(RULE_FILES, {"feedback", "drift"}, tmp_path / "rules", lambda group, rule: "record" in rule)
    test = promtool_test(files, series, "1m", expr_checks=[
        {"expr": f"round({name}, 0.000001)", "eval_time": "130m", "exp_samples": [sample(*e) for e in expected]}
        for name, expected in expr_tests
    ])
    run_promtool(tmp_path / "quality.yaml", test, timeout=120)


# -- the CLI ----------------------------------------------------------------------------------------

def test_series_absent_ignores_a_prometheus_gap(tmp_path: Path) -> None:
    """A model whose series vanish while Prometheus still scrapes is absent; every series
    (`up` included) missing at once is Prometheus not scraping, and no model is called absent."""
    files = rule_subset(RULE_FILES, {"engine"}, tmp_path / "rules",
                        lambda group, rule: rule.get("alert") == "LLMModelSeriesAbsent")
    running = "model_name:llm_requests_running:sum"
    gap = range(60, 76)  # minutes 60-75: nothing at all, as while Prometheus restarts

    def minutes(present) -> str:
        return values(lambda t: None if int(t // MINUTE) in gap or not present(t) else 1, end=120 * MINUTE)

    series = {
        f'{running}{{model_name="gone"}}': minutes(lambda t: t < 30 * MINUTE),  # leaves at minute 30
        f'{running}{{model_name="kept"}}': minutes(lambda t: True),
        'up{job="vllm",instance="kept:8000"}': minutes(lambda t: True),
    }
    gone = [expected_alert("LLMModelSeriesAbsent", {"model_name": "gone"})]
    checks = [
        {"eval_time": "40m", "alertname": "LLMModelSeriesAbsent", "exp_alerts": gone},
        {"eval_time": "74m", "alertname": "LLMModelSeriesAbsent", "exp_alerts": []},  # 14 minutes into the gap
        {"eval_time": "100m", "alertname": "LLMModelSeriesAbsent", "exp_alerts": gone},
    ]
    run_promtool(tmp_path / "gap.yaml", promtool_test(files, series, "1m", checks), timeout=120)


def test_rules_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["rules", "render", "--check", "--out", str(REPO)]) == 0
    assert capsys.readouterr().out.strip() == "up to date"
    assert cli.main(["rules", "render", "--check", "--out", str(tmp_path)]) == 1
    stale = capsys.readouterr().err
    assert "stale (run `inferwatch rules render`" in stale and "recording_rules/inferwatch.rules.yaml" in stale
    assert not (tmp_path / "recording_rules").exists()  # --check writes nothing
    assert cli.main(["rules", "render", "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {tmp_path}/recording_rules/inferwatch.rules.yaml, ")
    for relative in rules.OUTPUTS.values():
        assert (tmp_path / relative).read_text() == (REPO / relative).read_text()
    assert cli.main(["rules", "operator", "--namespace", "obs", "--label", "release=kps"]) == 0
    document = yaml.safe_load(capsys.readouterr().out)
    assert (document["metadata"]["namespace"], document["metadata"]["labels"]) == ("obs", {"release": "kps"})


def test_rules_cli_without_jsonnet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A bare install (no 'rules' extra) still writes the shipped defaults; a config file needs jsonnet."""
    from inferwatch.kit import extras

    monkeypatch.setattr(extras, "installed", lambda extra: extra != "rules")
    monkeypatch.delenv("INFERWATCH_CONFIG", raising=False)
    assert cli.main(["rules", "render", "--out", str(tmp_path)]) == 0
    assert {p: (tmp_path / p).read_text() for p in rules.OUTPUTS.values()} == assets.rule_files()
    capsys.readouterr()
    assert cli.main(["rules", "operator"]) == 0 and "PrometheusRule" in capsys.readouterr().out
    config = tmp_path / "inferwatch.yaml"
    config.write_text("cost: {gpu_hour_price_usd: 3}\n")
    assert cli.main(["rules", "render", "-c", str(config), "--out", str(tmp_path)]) == 2
    assert "needs the 'rules' extra: pip install 'inferwatch[rules]'" in capsys.readouterr().err


# -- the weeks run in the background from the module's first test (promtool is single-threaded), ---
# each on the rules it exercises: the fleet week on every area but the SLOs, the SLO week as one
# promtool per SLO. Their tests come last, so the tests above run meanwhile.

WEEK_AREAS = {"fleet": {"serving", "adaptive", "errors", "engine", "gpu", "probe", "feedback", "drift"},
              "slo": {"slo"}}
# The fleet week gives the latency levels directly: the serving area's histogram groups have no input.
HISTOGRAM_GROUPS = {f"inferwatch.serving.{h}.rules" for h in ("ttft", "itl", "e2e", "queue", "instance")}


def _one_slo(slo: str):
    return lambda group, rule: group == f"inferwatch.slo.{slo}.rules" or rule.get("labels", {}).get("slo") == slo


@pytest.fixture(scope="module", autouse=True)
def weeks(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, PromtoolRun]]:
    if not {item.originalname for item in request.session.items} & {"test_fleet_week", "test_slo_week"}:
        yield {}  # e.g. `-k cli`: no week selected, start nothing
        return
    tmp = tmp_path_factory.mktemp("weeks")
    runs = {"fleet": PromtoolRun(tmp / "fleet-week.yaml", promtool_test(
        rule_subset(RULE_FILES, WEEK_AREAS["fleet"], tmp / "fleet", keep=lambda group, rule: group not in HISTOGRAM_GROUPS),
        fleet_series(), "5m", fleet_checks()))}
    series, checks = slo_series(), slo_checks()
    for slo in sorted(set(SLO_ALERTS.values())):
        files = rule_subset(RULE_FILES, WEEK_AREAS["slo"], tmp / slo, keep=_one_slo(slo))
        mine = [check for check in checks if SLO_ALERTS[check["alertname"]] == slo]
        runs[f"slo-{slo}"] = PromtoolRun(tmp / f"slo-{slo}-week.yaml", promtool_test(files, series, "5m", mine))
    yield runs
    for run in runs.values():
        run.stop()


def test_fleet_week(weeks: dict[str, PromtoolRun]) -> None:
    weeks["fleet"].assert_passed()


@pytest.mark.parametrize("slo", ["availability", "ttft", "itl"])
def test_slo_week(weeks: dict[str, PromtoolRun], slo: str) -> None:
    weeks[f"slo-{slo}"].assert_passed()


def test_engine_down_holds_across_failed_exporter_scrapes(tmp_path: Path) -> None:
    """A failed scrape marks every series of the exporter stale; one failed scrape a minute (30 s
    interval) must not restart LLMEngineDown's or LLMModelUnavailable's `for`, as it did in the fire
    drill on a busy machine. Once the exporter is gone for good, the held report expires (2m)."""
    labels = {"job": "inferwatch-engine", "endpoint": "e1", "model_name": "m1", "role": "primary", "hostname": "h1"}
    down = "inferwatch_engine_up{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
    healthy = 'inferwatch_model_healthy_endpoints{job="inferwatch-engine",model_name="m1",role="primary"}'
    # 30 s steps: 10 minutes up; 10 minutes down with every other scrape failed; then no exporter.
    flaky = lambda up, down_: " ".join([up] * 20 + [down_, "stale"] * 10 + ["stale"])  # noqa: E731
    series = {down: flaky("1", "0"), healthy: flaky("1", "0")}
    unavailable = {"model_name": "m1"}
    checks = [
        {"eval_time": "9m", "alertname": "LLMEngineDown", "exp_alerts": []},
        {"eval_time": "13m", "alertname": "LLMEngineDown", "exp_alerts": [_expected_alert(ALERTS, "LLMEngineDown", labels, 0)]},
        {"eval_time": "19m30s", "alertname": "LLMEngineDown", "exp_alerts": [_expected_alert(ALERTS, "LLMEngineDown", labels, 0)]},
        {"eval_time": "13m", "alertname": "LLMModelUnavailable",
         "exp_alerts": [_expected_alert(ALERTS, "LLMModelUnavailable", unavailable, 0)]},
        {"eval_time": "23m", "alertname": "LLMEngineDown", "exp_alerts": []},
    ]
    files = rule_subset(RULE_FILES, {"engine"}, tmp_path / "rules")
    run_promtool(tmp_path / "gaps.yaml", promtool_test(files, series, "30s", checks))
