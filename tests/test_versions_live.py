"""LLMNewVersionWorse on real versions: one real vLLM restarted with another model directory under the same
open-loop load, the engine exporter fingerprinting each directory (version = content hash), Prometheus
evaluating the mixin every second. v1 is the tiny model; v2 a deliberately slower one (tiny_model's
`large`: more and wider layers), which must fire; v3 the same architecture as v2 with other weights
(an equal pair), which must stay quiet while the comparison is in place.

The shipped windows make a version settle for 35 minutes (window 30m + rate window 5m) before it is
compared, so the mixin is rendered here with the time constants compressed (rate window 30s, window 2m,
`for` 1m, the shipped for/window ratio: settled after 150 s; with a 1-minute window an equal pair
landed up to x1.32 apart on the loaded 2-core CI machine and went pending). Every expression, factor,
floor and guard is the shipped one; test_rules_versions.py covers the shipped windows in promtool.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from inferwatch import rules
from inferwatch.config import EndpointConfig, EngineExporterConfig
from inferwatch.exporters.engine import server as engine_server
from inferwatch.lab.drills.load import Load
from inferwatch.lab.engine.server import VllmServer
from inferwatch.lab.process import StackError
from inferwatch.lab.stack import Prometheus, wait_until

pytestmark = pytest.mark.slow

MODEL = "versioned"
RATE = 3.0  # requests/s, Poisson, one load across every version
COMPRESSED = ("{_config+:: {rateWindow: '30s', slo+: {windows: ['30s'] + super.windows},"
              " versions+: {window: '2m', 'for': '1m'}}}")
SETTLE = 150  # window + rate window
FOR = 60
ALERT = "LLMNewVersionWorse"
TTFT = "model_name_version:llm_time_to_first_token_seconds:p95_rate30s_avg2m"
TTFT_PREV = "model_name:llm_time_to_first_token_seconds:previous_p95_rate30s_avg2m"
ITL = "model_name_version:llm_inter_token_latency_seconds:p95_rate30s_avg2m"
ITL_PREV = "model_name:llm_inter_token_latency_seconds:previous_p95_rate30s_avg2m"


def compressed_rule_files(folder: Path) -> list[Path]:
    mixin = rules.evaluate(COMPRESSED)
    rules.write({path: rules.to_yaml(mixin[key]) for key, path in rules.OUTPUTS.items()}, folder)
    return [folder / path for path in rules.OUTPUTS.values()]


class Versions:
    """One model, one endpoint, restarted with a new model directory per version, under steady load."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.server: VllmServer | None = None
        self.load: Load | None = None
        self.starts = 0

    def serve(self, model_dir: Path) -> None:
        """Replace the server in place (same port); the load keeps running across the restart, as
        traffic would: stopping it first would drain the old version's last window."""
        port = self.server.port if self.server else 0
        if self.server:
            self.server.stop()
        self.starts += 1
        workdir = self.root / f"start-{self.starts}"
        workdir.mkdir(parents=True)
        self.server = VllmServer(model_dir, workdir, MODEL, port, niceness=10).start()
        if not self.load:
            self.load = Load(self.server.base_url, MODEL, RATE, prompt_tokens=32, output_tokens=32, seed=7).start()

    def stop(self) -> None:
        if self.load:
            self.load.stop()
            self.load = None
        if self.server:
            self.server.stop()


@pytest.fixture
def stack(engine_runtime, tmp_path: Path):
    runtime = engine_runtime
    models = [runtime.ensure_tiny_model(0), runtime.ensure_tiny_model(0, "large"),
              runtime.ensure_tiny_model(1, "large")]
    versions = Versions(tmp_path / "vllm")
    started: list = []
    try:
        versions.serve(models[0])
        exporter = engine_server.start(EngineExporterConfig(
            listen_address="127.0.0.1", port=0, model_dirs_allowed=[str(runtime.home() / "models")],
            endpoints=[EndpointConfig("vllm", versions.server.base_url, MODEL, role="primary")]))
        started.append(exporter)
        prometheus = Prometheus(tmp_path / "prometheus", rule_files=[str(p) for p in
                                                                     compressed_rule_files(tmp_path / "rules")])
        prometheus.scrape_configs = [
            {"job_name": "vllm", "static_configs": [{"targets": [versions.server.base_url.removeprefix("http://")]}]},
            {"job_name": "inferwatch-engine", "static_configs": [{"targets": [f"127.0.0.1:{exporter.port}"]}]},
        ]
        started.append(prometheus.start())
        yield versions, models, prometheus
    finally:
        versions.stop()
        for thing in reversed(started):
            thing.stop()


def served_version(prometheus: Prometheus) -> str | None:
    found = prometheus.query(f'inferwatch_model_version_info{{model_name="{MODEL}"}}')
    return found[0]["metric"]["version"] if len(found) == 1 else None


def wait_settled(prometheus: Prometheus, version: str) -> float:
    """Wait for `version` to be the settled one; return when it settled."""
    expr = f'model_name_version:inferwatch_model_version:settled{{model_name="{MODEL}",version="{version}"}}'
    try:
        prometheus.wait_for_series(expr, timeout=SETTLE + 60)
    except StackError as exc:  # say which of settled's conditions failed
        inputs = {name: prometheus.query(query) for name, query in {
            "versions": f'inferwatch_model_version_info{{model_name="{MODEL}"}}',
            "age_seconds": f'model_name:inferwatch_model_version:age_seconds{{model_name="{MODEL}"}}',
            "max_count": f'max_over_time(model_name:inferwatch_model_versions:count{{model_name="{MODEL}"}}'
                         f'[{SETTLE}s])',
            "min_engine_up": f'min_over_time(inferwatch_engine_up{{model_name="{MODEL}"}}[{SETTLE}s])',
            "changes": f'inferwatch_model_version_changes_total{{model_name="{MODEL}"}}',
        }.items()}
        raise StackError(f"{exc}; inputs: {inputs}") from exc
    return time.time()


def change_to(versions: Versions, prometheus: Prometheus, model_dir: Path, old: str) -> str:
    versions.serve(model_dir)
    return wait_until(lambda: (v := served_version(prometheus)) and v != old and v, 60,
                      what="the engine exporter reporting the new model directory's version")


def value(prometheus: Prometheus, expr: str) -> float:
    found = prometheus.query_value(f'{expr}{{model_name="{MODEL}"}}')
    assert found is not None, f"{expr} not recorded"
    return found


def ratios(prometheus: Prometheus) -> dict[str, float]:
    """New / previous version's p95s, as the alert compares them."""
    return {"ttft": value(prometheus, TTFT) / value(prometheus, TTFT_PREV),
            "itl": value(prometheus, ITL) / value(prometheus, ITL_PREV)}


def test_slower_version_fires_and_an_equal_pair_stays_quiet(stack) -> None:
    versions, (_tiny, large, large_again), prometheus = stack
    v1 = wait_until(lambda: served_version(prometheus), 60, what="the first version")
    wait_settled(prometheus, v1)
    time.sleep(30)  # v1's last window: well inside its own traffic

    v2 = change_to(versions, prometheus, large, v1)
    wait_settled(prometheus, v2)
    alert = wait_until(lambda: next((a for a in prometheus.alerts() if a["labels"].get("alertname") == ALERT
                                     and a["labels"].get("version") == v2 and a["state"] == "firing"), None),
                       FOR + 90, what=f"{ALERT} firing for the slower version")
    assert alert["labels"]["previous_version"] == v1
    assert alert["labels"]["metric"] in {"ttft_p95", "itl_p95"}
    slower = ratios(prometheus)
    assert max(slower.values()) > 1.25, slower
    print(f"\n{v1} -> {v2}: {alert['labels']['metric']} fired, {slower}")

    v3 = change_to(versions, prometheus, large_again, v2)
    settled = wait_settled(prometheus, v3)
    time.sleep(2 * FOR)  # a sustained breach would be firing by now
    previous = prometheus.query(f'model_name_version:inferwatch_model_version:previous{{model_name="{MODEL}"}}')
    assert [p["metric"]["version"] for p in previous] == [v2], "the comparison is in place: v3 against v2"
    equal = ratios(prometheus)
    fired = prometheus.query_range(f'ALERTS{{alertname="{ALERT}",model_name="{MODEL}",version="{v3}"}}',
                                   settled - SETTLE, time.time(), 1)
    assert fired == [], f"{ALERT} for an equal pair ({equal}): {fired}"
    print(f"{v2} -> {v3}: quiet, {equal}")
