"""The shipped Alertmanager config: amtool checks, routing cases, grouping and inhibition live."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from inferwatch.lab.stack import Alertmanager, free_port, redirect_receivers, wait_until

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "alerts" / "alertmanager" / "alertmanager.yml"
ALERTS = yaml.safe_load((REPO / "alerts" / "inferwatch.alerts.yaml").read_text())


def rule_labels(name: str, severity: str | None = None) -> dict[str, str]:
    for group in ALERTS["groups"]:
        for rule in group["rules"]:
            if rule["alert"] == name and severity in (None, rule["labels"]["severity"]):
                return {"alertname": name, **rule["labels"]}
    raise KeyError(name)


def test_amtool_check_config() -> None:
    result = subprocess.run(["amtool", "check-config", str(CONFIG)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


ROUTES = [  # (alert, severity, receiver)
    ("LLMTimeToFirstTokenSLABreach", None, "ml-platform-pager"),
    ("LLMTimeToFirstTokenAboveBaseline", None, "ml-platform-tickets"),
    ("LLMAvailabilityBudgetBurn", "critical", "ml-platform-pager"),
    ("LLMAvailabilityBudgetBurn", "warning", "ml-platform-tickets"),
    ("LLMEngineDown", None, "ml-platform-pager"),
    ("LLMEngineTargetDown", None, "ml-platform-pager"),
    ("LLMErrorRatioAnomalous", None, "ml-platform-tickets"),
    ("LLMHTTPErrorRatioAnomalous", None, "ml-platform-tickets"),
    ("LLMCapacityExceeded", None, "ml-platform-tickets"),
    ("LLMEngineRestarted", None, "null"),
    ("LLMModelVersionChanged", None, "null"),
    ("LLMProbeFailing", None, "ml-platform-pager"),
    ("LLMProbeModelMismatch", None, "ml-platform-pager"),
    ("LLMProbeFailingOnEndpoint", None, "ml-platform-tickets"),
    ("LLMProbeScoreDropped", None, "ml-platform-tickets"),
    ("LLMNegativeFeedbackRising", None, "ml-platform-tickets"),
    ("LLMModelVersionRatedWorse", None, "ml-platform-tickets"),
    ("LLMNewVersionWorse", None, "ml-platform-tickets"),
    ("LLMFeedbackRejected", None, "ml-platform-tickets"),
    ("LLMInputDriftDetected", None, "ml-platform-tickets"),
    ("LLMDriftPrometheusUnreachable", None, "ml-platform-tickets"),
    ("LLMEngineLogOutOfMemory", None, "ml-platform-pager"),
    ("LLMEngineLogEngineDead", None, "ml-platform-pager"),
    ("LLMEngineLogErrorsAboveBaseline", None, "ml-platform-tickets"),
    ("LLMEngineLogNewErrorAfterDeploy", None, "ml-platform-tickets"),
    ("LLMEngineLogSourceDown", None, "ml-platform-tickets"),
    ("GPULost", None, "infra-pager"),
    ("GPUThermalThrottling", None, "infra-tickets"),
]


@pytest.mark.parametrize(("alert", "severity", "receiver"), ROUTES)
def test_routes(alert: str, severity: str | None, receiver: str) -> None:
    labels = [f"{k}={v}" for k, v in {**rule_labels(alert, severity), "model_name": "m1"}.items()]
    result = subprocess.run(["amtool", "config", "routes", "test", f"--config.file={CONFIG}",
                             f"--verify.receivers={receiver}", *labels], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def shipped_alertmanager(tmp_path_factory: pytest.TempPathFactory):
    # The shipped routing and inhibition; receivers redirected to a closed loopback port, so
    # nothing leaves the machine (delivery is not under test here).
    config = redirect_receivers(yaml.safe_load(CONFIG.read_text()), f"http://127.0.0.1:{free_port()}")
    server = Alertmanager(tmp_path_factory.mktemp("am-shipped"), config=config).start()
    yield server
    server.stop()


def post(alertmanager: Alertmanager, name: str, severity: str | None = None, **labels: str) -> None:
    alertmanager.post_alerts([{"labels": {**rule_labels(name, severity), **labels}}])


def state(alertmanager: Alertmanager, name: str, **labels: str) -> dict:
    matches = [a for a in alertmanager.alerts() if a["labels"]["alertname"] == name
               and all(a["labels"].get(k) == v for k, v in labels.items())]
    assert len(matches) == 1, matches
    return matches[0]["status"]


def test_engine_down_mutes_that_models_latency_alerts_only(shipped_alertmanager: Alertmanager) -> None:
    am = shipped_alertmanager
    post(am, "LLMEngineDown", model_name="m1", endpoint="e1", hostname="h1", role="primary")
    post(am, "LLMTimeToFirstTokenAboveBaseline", model_name="m1")
    post(am, "LLMTimeToFirstTokenAboveBaseline", model_name="m2")
    wait_until(lambda: state(am, "LLMTimeToFirstTokenAboveBaseline", model_name="m1")["state"] == "suppressed", 15,
               what="inhibition")
    muted = state(am, "LLMTimeToFirstTokenAboveBaseline", model_name="m1")
    assert muted["inhibitedBy"], muted
    assert state(am, "LLMTimeToFirstTokenAboveBaseline", model_name="m2")["state"] == "active"
    assert state(am, "LLMEngineDown", model_name="m1")["state"] == "active"


def test_gpu_lost_mutes_the_engine_on_that_host(shipped_alertmanager: Alertmanager) -> None:
    am = shipped_alertmanager
    gpu = {"hostname": "h7", "gpu": "3", "uuid": "GPU-3"}
    post(am, "GPULost", **gpu)
    post(am, "LLMEngineDown", model_name="m7", endpoint="e7", hostname="h7", role="primary")
    post(am, "LLMEngineDown", model_name="m8", endpoint="e8", hostname="h8", role="primary")
    post(am, "GPUXidCriticalError", **gpu, xid="79")
    wait_until(lambda: state(am, "LLMEngineDown", hostname="h7")["state"] == "suppressed", 15, what="inhibition")
    assert state(am, "LLMEngineDown", hostname="h8")["state"] == "active"
    assert state(am, "GPUXidCriticalError", hostname="h7")["state"] == "suppressed"
    assert state(am, "GPULost", hostname="h7")["state"] == "active"


def test_grouping_per_model(shipped_alertmanager: Alertmanager) -> None:
    am = shipped_alertmanager
    for endpoint in ("e1", "e2"):
        post(am, "LLMModelRedundancyLow", model_name="m9", endpoint=endpoint)
    post(am, "LLMModelRedundancyLow", model_name="m10")

    def groups() -> dict[str, int]:
        return {g["labels"].get("model_name"): len(g["alerts"]) for g in am.groups()
                if g["labels"].get("alertname") == "LLMModelRedundancyLow"}

    wait_until(lambda: groups() == {"m9": 2, "m10": 1}, 15, what="two groups, one per model")
    receivers = {g["receiver"]["name"] for g in am.groups() if g["labels"].get("alertname") == "LLMModelRedundancyLow"}
    assert receivers == {"ml-platform-tickets"}


def test_engine_exporter_and_failed_scrape_page_once(shipped_alertmanager: Alertmanager) -> None:
    """The exporter's LLMEngineDown and Prometheus' LLMEngineTargetDown for the same host:port are
    one outage: only the exporter's stays active. A failed scrape also explains its model's
    vanished series; a different target or model is untouched."""
    am = shipped_alertmanager
    post(am, "LLMEngineDown", model_name="m21", endpoint="http://h21:8000", target="h21:8000", hostname="h21",
         role="primary")
    post(am, "LLMEngineTargetDown", model_name="m21", job="vllm", instance="h21:8000", target="h21:8000")
    post(am, "LLMEngineTargetDown", model_name="m22", job="vllm", instance="h22:8000", target="h22:8000")
    post(am, "LLMModelSeriesAbsent", model_name="m22")
    post(am, "LLMModelSeriesAbsent", model_name="m23")
    wait_until(lambda: state(am, "LLMEngineTargetDown", target="h21:8000")["state"] == "suppressed", 15,
               what="inhibition")
    assert state(am, "LLMEngineTargetDown", target="h22:8000")["state"] == "active"
    assert state(am, "LLMEngineDown", target="h21:8000")["state"] == "active"
    wait_until(lambda: state(am, "LLMModelSeriesAbsent", model_name="m22")["state"] == "suppressed", 15,
               what="inhibition")
    assert state(am, "LLMModelSeriesAbsent", model_name="m23")["state"] == "active"


def suppressed(am: Alertmanager, name: str, **labels: str) -> None:
    wait_until(lambda: state(am, name, **labels)["state"] == "suppressed", 15, what=f"{name} {labels} inhibited")


def test_engine_outage_mutes_that_models_probe_alerts(shipped_alertmanager: Alertmanager) -> None:
    """An engine down, a model without a healthy endpoint or a failed engine scrape explains the
    model's failing probes; other models' probes, and probe alerts without a model, are untouched."""
    am = shipped_alertmanager
    probe = {"job": "inferwatch-probe", "module": "smoke"}
    post(am, "LLMEngineTargetDown", model_name="m31", job="vllm", instance="h31:8000", target="h31:8000")
    post(am, "LLMProbeFailing", model_name="m31")
    post(am, "LLMProbeModelMismatch", model_name="m31", **probe, instance="p31:8000", reason="model_mismatch")
    post(am, "LLMProbeFailing", model_name="m32")
    post(am, "LLMModelUnavailable", model_name="m33")
    post(am, "LLMProbeHealthCheckFailing", model_name="m33", **probe, instance="p33:8000", check="model_listed")
    post(am, "LLMEngineDown", model_name="m34", endpoint="http://h34:8000", target="h34:8000", hostname="h34",
         role="primary")
    post(am, "LLMProbeClientLatencyHigh", model_name="m34")
    # a failed scrape of a target serving no known model, and a probe alert without a model
    post(am, "LLMEngineTargetDown", job="vllm", instance="h35:8000", target="h35:8000")
    post(am, "LLMProbeHealthCheckFailing", **probe, instance="p35:8000", check="model_listed")
    suppressed(am, "LLMProbeFailing", model_name="m31")
    suppressed(am, "LLMProbeModelMismatch", model_name="m31")
    suppressed(am, "LLMProbeHealthCheckFailing", model_name="m33")
    suppressed(am, "LLMProbeClientLatencyHigh", model_name="m34")
    assert state(am, "LLMProbeFailing", model_name="m32")["state"] == "active"
    assert state(am, "LLMProbeHealthCheckFailing", instance="p35:8000")["state"] == "active"
    assert state(am, "LLMEngineTargetDown", model_name="m31")["state"] == "active"


def test_probe_failing_mutes_the_models_redundant_probe_alerts(shipped_alertmanager: Alertmanager) -> None:
    """A model failing every probe explains its failing endpoints, score drop and slow probes; its
    model mismatch and health checks, and another model's probes, stay active."""
    am = shipped_alertmanager
    probe = {"job": "inferwatch-probe", "module": "smoke"}
    post(am, "LLMProbeFailing", model_name="m36")
    post(am, "LLMProbeFailingOnEndpoint", model_name="m36", **probe, instance="p36b:8000")
    post(am, "LLMProbeScoreDropped", model_name="m36", module="smoke")
    post(am, "LLMProbeClientLatencyHigh", model_name="m36")
    post(am, "LLMProbeModelMismatch", model_name="m36", **probe, instance="p36a:8000", reason="model_mismatch")
    post(am, "LLMProbeHealthCheckFailing", model_name="m36", **probe, instance="p36a:8000", check="context_matches")
    post(am, "LLMProbeFailingOnEndpoint", model_name="m37", **probe, instance="p37b:8000")
    for name in ("LLMProbeFailingOnEndpoint", "LLMProbeScoreDropped", "LLMProbeClientLatencyHigh"):
        suppressed(am, name, model_name="m36")
    for name in ("LLMProbeFailing", "LLMProbeModelMismatch", "LLMProbeHealthCheckFailing"):
        assert state(am, name, model_name="m36")["state"] == "active", name
    assert state(am, "LLMProbeFailingOnEndpoint", model_name="m37")["state"] == "active"


def test_version_rated_worse_mutes_that_versions_rising_feedback(shipped_alertmanager: Alertmanager) -> None:
    """A new version rated worse than the one it replaced explains its rising negative feedback; the
    same model's other version (a canary) and another model keep theirs."""
    am = shipped_alertmanager
    post(am, "LLMModelVersionRatedWorse", model_name="m41", version="b")
    post(am, "LLMNegativeFeedbackRising", model_name="m41", version="b")
    post(am, "LLMNegativeFeedbackRising", model_name="m41", version="c")
    post(am, "LLMNegativeFeedbackRising", model_name="m42", version="b")
    suppressed(am, "LLMNegativeFeedbackRising", model_name="m41", version="b")
    assert state(am, "LLMNegativeFeedbackRising", model_name="m41", version="c")["state"] == "active"
    assert state(am, "LLMNegativeFeedbackRising", model_name="m42")["state"] == "active"
    assert state(am, "LLMModelVersionRatedWorse", model_name="m41")["state"] == "active"


def test_engine_down_mutes_its_log_alerts(shipped_alertmanager: Alertmanager) -> None:
    """The log alerts carry the source as `endpoint`: an engine down mutes its own, not another's."""
    am = shipped_alertmanager
    post(am, "LLMEngineDown", model_name="m41", endpoint="e41", hostname="h41", role="primary")
    post(am, "LLMEngineLogEngineDead", job="inferwatch-log", source="e41", endpoint="e41", **{"class": "engine_dead"})
    post(am, "LLMEngineLogEngineDead", job="inferwatch-log", source="e42", endpoint="e42", **{"class": "engine_dead"})
    post(am, "LLMEngineLogSourceDown", job="inferwatch-log", source="e41", endpoint="e41")
    suppressed(am, "LLMEngineLogEngineDead", endpoint="e41")
    suppressed(am, "LLMEngineLogSourceDown", endpoint="e41")
    assert state(am, "LLMEngineLogEngineDead", endpoint="e42")["state"] == "active"
