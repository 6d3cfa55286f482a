"""Failover end to end: the real vLLM primary of a two-endpoint model goes down, the shipped rules fire
LLMEngineDown, the shipped Alertmanager routing delivers it to `inferwatch remediate`, and the http
failover action switches a (loopback) router to the backup; the engine comes back, the alert resolves,
and the undo action switches the router back to the primary.

Prometheus evaluates the shipped rules unchanged (LLMEngineDown has `for: 2m`), every 1 s; Alertmanager
has the shipped tree with its group timers shortened and every receiver pointed at the remediator.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from inferwatch import assets
from inferwatch.config import (
    EndpointConfig,
    EngineExporterConfig,
    RemediationActionConfig,
    RemediationConfig,
)
from inferwatch.exporters.engine import server as engine_server
from inferwatch.lab.drills.stack import ControlPlane, quick_timers
from inferwatch.lab.stack import Alertmanager, Prometheus, wait_until
from inferwatch.remediate import server as remediate_server

pytestmark = pytest.mark.slow

MODEL = "tiny-llama"


def action(name: str, target: str, url: str, **extra: object) -> RemediationActionConfig:
    return RemediationActionConfig(name=name, kind="http", alerts=["LLMEngineDown"],
                                   matchers={"role": "primary", "model_name": MODEL}, url=f"{url}/route",
                                   headers={"Content-Type": "application/json"},
                                   body=f'{{"model": "{{labels.model_name}}", "target": "{target}"}}',
                                   cooldown_seconds=0, **extra)  # type: ignore[arg-type]


def alertmanager_config(remediator: str, token_file: Path) -> dict:
    """The shipped routing tree, timers shortened, every real receiver -> the remediation receiver."""
    config = yaml.safe_load(assets.alertmanager_config())
    config["route"] = quick_timers(config["route"])
    hook = {"url": f"{remediator}/v1/alerts", "send_resolved": True,
            "http_config": {"authorization": {"credentials_file": str(token_file)}}}
    config["receivers"] = [r if set(r) == {"name"} else {"name": r["name"], "webhook_configs": [hook]}
                           for r in config["receivers"]]
    return config


@pytest.fixture
def stack(vllm_engine, fake_engines, tmp_path: Path):
    started: list = []
    try:
        router = ControlPlane(models=(MODEL,))
        started.append(router)
        token = tmp_path / "token"
        token.write_text("failover-secret\n")
        remediator = remediate_server.start(RemediationConfig(
            listen_address="127.0.0.1", port=0, bearer_token_file=str(token), execute=True,
            audit_log=str(tmp_path / "audit.jsonl"),
            actions=[action("failover", "backup", router.url, undo="failback"),
                     action("failback", "primary", router.url, when="resolved")]))
        started.append(remediator)
        backup = fake_engines(model=MODEL)
        engines = engine_server.start(EngineExporterConfig(listen_address="127.0.0.1", port=0, endpoints=[
            EndpointConfig("vllm-primary", vllm_engine.server.base_url, MODEL, role="primary"),
            EndpointConfig("fake-backup", backup.url, MODEL, role="backup")]))
        started.append(engines)
        base = remediator.url.removesuffix("/metrics")
        am = Alertmanager(tmp_path / "am", config=alertmanager_config(base, token)).start()
        started.append(am)
        rules = assets.write_rule_files(tmp_path)
        prometheus = Prometheus(tmp_path / "prom", scrape_interval="1s", evaluation_interval="1s",
                                alertmanager_urls=[am.url], rule_files=[str(p) for p in rules])
        prometheus.scrape_configs = [{"job_name": "inferwatch-engine",
                                      "static_configs": [{"targets": [f"127.0.0.1:{engines.port}"]}]}]
        started.append(prometheus.start())
        prometheus.wait_for_series('inferwatch_engine_up{endpoint="vllm-primary"} == 1', timeout=30)
        yield vllm_engine, router, prometheus, tmp_path / "audit.jsonl"
    finally:
        for thing in reversed(started):
            thing.stop()
        if not vllm_engine.server.alive():
            vllm_engine.start()


def firing_since(prometheus: Prometheus) -> float | None:
    for alert in prometheus.alerts():
        if alert["labels"]["alertname"] == "LLMEngineDown" and alert["state"] == "firing":
            return _seconds(alert["activeAt"])
    return None


def _seconds(stamp: str) -> float:
    import datetime

    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")[:26] + "+00:00").timestamp()


def test_primary_down_fails_over_to_the_backup_and_back(stack) -> None:
    engine, router, prometheus, audit = stack
    engine.stop()  # the primary is gone; the fake backup still answers
    down_at = time.time()
    wait_until(lambda: firing_since(prometheus) is not None, 240, what="LLMEngineDown firing")
    fired_at = time.time()  # within one 1 s evaluation of `for: 2m` elapsing
    wait_until(lambda: router.target[MODEL] == "backup", 30, what="traffic on the backup")
    switched_at = router.events[-1][0]
    assert switched_at - fired_at < 1 + 5, "one evaluation plus Alertmanager's group_wait and delivery"
    assert prometheus.query_value('inferwatch_model_healthy_endpoints{model_name="tiny-llama", role="backup"}') == 1

    engine.start()  # the primary is back: the alert resolves and the undo switches traffic back
    wait_until(lambda: router.target[MODEL] == "primary", 120, what="traffic back on the primary")
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [r["action"] for r in records if r.get("result") == "succeeded"] == ["failover", "failback"]
    print(f"\nfailover: down -> firing {fired_at - down_at:.0f} s (for: 2m), firing -> backup "
          f"{switched_at - fired_at:.1f} s; primary back -> failback {router.events[-1][0] - switched_at:.0f} s")
