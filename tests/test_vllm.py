"""Integration tier: the real vLLM CPU server, its /metrics, our plugin and the engine exporter."""

from __future__ import annotations

import asyncio
import json
import subprocess
import textwrap
import urllib.request

import pytest
from helpers import by_label, scrape

from inferwatch.config import EndpointConfig, EngineExporterConfig
from inferwatch.exporters.engine import server as engine_server
from inferwatch.inject import schedule
from inferwatch.inject.client import Target
from inferwatch.inject.runner import run

pytestmark = pytest.mark.slow


def metric_value(text: str, name: str) -> float:
    """Sum of the samples named `name` in an exposition (0 when absent)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.fixture
def engine_exporter(vllm_engine):
    from inferwatch.lab.engine import runtime

    config = EngineExporterConfig(listen_address="127.0.0.1", port=0, probe_timeout_seconds=2.0, endpoints=[
        EndpointConfig(name="vllm-0", base_url=vllm_engine.server.base_url, model="tiny-llama")],
        model_dirs_allowed=[str(runtime.home() / "models")])  # where the tiny models live
    running = engine_server.start(config)
    yield running
    running.stop()


def test_vllm_and_engine_exporter_in_prometheus(prometheus, vllm_engine, engine_exporter) -> None:
    prometheus.set_job("vllm", [vllm_engine.server.base_url.removeprefix("http://")])
    prometheus.set_job("inferwatch-engine", [f"127.0.0.1:{engine_exporter.port}"])
    up = prometheus.wait_for_series('inferwatch_engine_up{job="inferwatch-engine"} == 1')
    assert up[0]["metric"]["endpoint"] == "vllm-0"
    running = prometheus.wait_for_series('vllm:num_requests_running{job="vllm"}')
    assert running[0]["metric"]["model_name"] == "tiny-llama"
    prometheus.wait_for_series('vllm:kv_cache_usage_perc{job="vllm"}')
    version = prometheus.wait_for_series('inferwatch_model_version_info{job="inferwatch-engine"}')[0]["metric"]
    assert version["source"] == "model_dir" and len(version["version"]) == 12
    assert prometheus.query_value('inferwatch_engine_served_model_max_length_tokens{job="inferwatch-engine"}') == 512
    engine = prometheus.query('inferwatch_engine_info{job="inferwatch-engine"}')
    assert engine[0]["metric"]["engine_version"] == "0.32.0"
    healthy = prometheus.query('inferwatch_model_healthy_endpoints{job="inferwatch-engine"}')
    assert by_label(healthy, "model_name") == {"tiny-llama": 1.0}


def test_plugin_goodput_moves_under_injected_load(prometheus, vllm_engine) -> None:
    base = vllm_engine.server.base_url
    prometheus.set_job("vllm", [base.removeprefix("http://")])
    before = scrape(vllm_engine.server.port)
    assert metric_value(before, "inferwatch_vllm_slo_target_seconds") == pytest.approx(0.55), "0.5 + 0.05"
    arrivals = schedule.poisson(rate=10, duration=2, prompt_tokens=32, output_tokens=16, seed=7)
    report = asyncio.run(run(arrivals, Target(base, "tiny-llama"), progress=False))
    assert report.summary()["requests_ok"] == len(arrivals)
    after = scrape(vllm_engine.server.port)
    judged = metric_value(after, "inferwatch_vllm_slo_requests_total") - metric_value(
        before, "inferwatch_vllm_slo_requests_total")
    good = metric_value(after, "inferwatch_vllm_slo_goodput_requests_total") - metric_value(
        before, "inferwatch_vllm_slo_goodput_requests_total")
    tokens = metric_value(after, "inferwatch_vllm_slo_goodput_generation_tokens_total") - metric_value(
        before, "inferwatch_vllm_slo_goodput_generation_tokens_total")
    assert judged == len(arrivals)
    assert 0 < good <= judged
    # The kit's self-metrics, under the same names as every other component.
    assert metric_value(after, "inferwatch_vllm_exporter_scrapes_total") >= 2
    assert metric_value(after, "inferwatch_vllm_exporter_config_last_reload_success") == 1
    assert metric_value(after, "inferwatch_vllm_exporter_errors_total") == 0
    assert tokens == 16 * good, "ignore_eos makes every output exactly 16 tokens"
    total = metric_value(after, "inferwatch_vllm_slo_goodput_requests_total")
    prometheus.wait_for_value('sum(inferwatch_vllm_slo_goodput_requests_total{job="vllm"})', lambda v: v >= total)


PLUGIN_UNIT = textwrap.dedent("""
    import json
    from types import SimpleNamespace
    from vllm.v1.engine import FinishReason
    from vllm.v1.metrics.stats import FinishedRequestStats, IterationStats, SchedulerStats
    from prometheus_client import REGISTRY
    from inferwatch.exporters.vllm_plugin.stat_logger import InferwatchStatLogger

    config = SimpleNamespace(model_config=SimpleNamespace(served_model_name="m"))
    logger = InferwatchStatLogger(config, 0)
    it = IterationStats()
    def done(reason, e2e, decode, tpot, tokens):
        it.finished_requests.append(FinishedRequestStats(finish_reason=reason, e2e_latency=e2e, decode_time=decode,
            mean_time_per_output_token=tpot, num_generation_tokens=tokens))
    done(FinishReason.LENGTH, 1.0, 0.9, 0.01, 10)   # TTFT 0.1, TPOT 0.01: good
    done(FinishReason.STOP, 2.0, 1.0, 0.01, 10)     # TTFT 1.0: misses TTFT
    done(FinishReason.STOP, 1.0, 0.9, 0.2, 10)      # TPOT 0.2: misses TPOT
    done(FinishReason.LENGTH, 0.2, 0.0, 0.0, 1)     # one token: TPOT vacuously met
    done(FinishReason.ABORT, 0.1, 0.0, 0.0, 0)      # aborted: never good
    sched = SchedulerStats(running_lora_adapters={"sql": 2}, waiting_lora_adapters={"sql": 1, "chat": 3})
    logger.record(sched, it)
    logger.record(SchedulerStats(running_lora_adapters={"chat": 1}), None)
    out = {}
    for family in REGISTRY.collect():
        for s in family.samples:
            if s.name.startswith("inferwatch_vllm") and not s.name.endswith("_created"):
                out[s.name + json.dumps(s.labels, sort_keys=True)] = s.value
    print(json.dumps(out))
""")


def test_plugin_judges_each_request_inside_vllm(engine_runtime, tmp_path) -> None:
    """The plugin against vLLM 0.32.0's real stats classes, in the engine's own venv."""
    config = tmp_path / "c.yaml"
    config.write_text("slo:\n  defaults: {ttft_seconds: 0.5, itl_seconds: 0.05}\n")
    result = subprocess.run([str(engine_runtime.venv_python()), "-c", PLUGIN_UNIT], capture_output=True, text=True,
                            env={"INFERWATCH_CONFIG": str(config), "PATH": "/usr/bin:/bin"}, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    values = json.loads(result.stdout.strip().splitlines()[-1])

    def get(name: str, **labels: str) -> float:
        return values[name + json.dumps({"engine": "0", "model_name": "m", **labels}, sort_keys=True)]

    assert get("inferwatch_vllm_slo_requests_total") == 5
    assert get("inferwatch_vllm_slo_ttft_met_requests_total") == 3
    assert get("inferwatch_vllm_slo_tpot_met_requests_total") == 3
    assert get("inferwatch_vllm_slo_goodput_requests_total") == 2
    assert get("inferwatch_vllm_slo_goodput_generation_tokens_total") == 11
    assert get("inferwatch_vllm_lora_requests_running", lora_name="chat") == 1
    assert not any("sql" in key for key in values), "an unloaded adapter stops being exported"


def test_engine_outage_then_new_version(prometheus, vllm_engine, engine_exporter) -> None:
    """Kill the engine: health is 0 on the very next scrape, the exporter stays up. Then deploy seed 1."""
    job = "inferwatch-engine-outage"
    prometheus.set_job(job, [f"127.0.0.1:{engine_exporter.port}"])
    prometheus.wait_for_series(f'inferwatch_engine_up{{job="{job}"}} == 1')
    old_version = prometheus.query(f'inferwatch_model_version_info{{job="{job}"}}')[0]["metric"]["version"]

    vllm_engine.stop()
    target = vllm_engine.server.base_url.removeprefix("http://")
    down = ('inferwatch_engine_up{endpoint="vllm-0",hostname="127.0.0.1",model_name="tiny-llama",role="primary",'
            f'target="{target}"}} 0.0')
    assert down in scrape(engine_exporter.port), "the first scrape after the kill reports the engine down"
    prometheus.wait_for_series(f'inferwatch_engine_up{{job="{job}"}} == 0', timeout=15)
    assert prometheus.query_value(f'up{{job="{job}"}}') == 1, "the exporter itself stays up"
    assert prometheus.query_value(f'inferwatch_model_healthy_endpoints{{job="{job}"}}') == 0

    vllm_engine.start(seed=1)  # same port, a different model: a deploy
    prometheus.wait_for_series(f'inferwatch_engine_up{{job="{job}"}} == 1', timeout=30)
    changes = prometheus.wait_for_value(f'inferwatch_model_version_changes_total{{job="{job}"}}', lambda v: v >= 1)
    assert changes == 1
    new_version = prometheus.query(f'inferwatch_model_version_info{{job="{job}"}}')[0]["metric"]["version"]
    assert new_version != old_version
    with urllib.request.urlopen(vllm_engine.server.base_url + "/v1/models", timeout=5) as response:
        assert json.load(response)["data"][0]["root"].endswith("tiny-llama-seed1")


def test_engine_cli_outage_drill_leaves_no_orphans(engine_runtime, tmp_path) -> None:
    """`inferwatch engine up`, an endpoint-outage drill through `inferwatch inject`, `engine down`."""
    import os
    import sys
    from pathlib import Path

    from inferwatch.lab.stack import free_port

    exe = str(Path(sys.executable).parent / "inferwatch")
    name, port = f"test-{os.getpid()}", free_port()
    up = subprocess.run([exe, "engine", "up", "--name", name, "--port", str(port)], capture_output=True, text=True,
                        timeout=300)
    assert up.returncode == 0, up.stderr[-3000:]
    try:
        report = tmp_path / "report.json"
        drill = subprocess.run([exe, "inject", "--url", f"http://127.0.0.1:{port}", "--rate", "3", "--duration", "45",
                                "--output-tokens", "8", "--fault", "endpoint-outage", "--engine-name", name,
                                "--json", str(report), "--no-progress", "--timeout", "10"],
                               capture_output=True, text=True, timeout=300)
        assert drill.returncode == 0, drill.stderr[-3000:]
        summary = json.loads(report.read_text())
        assert summary["errors"].get("connection", 0) > 0, summary  # requests during the outage fail
        assert summary["requests_ok"] > 0
        status = subprocess.run([exe, "engine", "status", "--name", name], capture_output=True, text=True)
        assert status.returncode == 0, "the drill restarted the engine"
        pid = json.loads(status.stdout)["pid"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
            assert response.status == 200
    finally:
        down = subprocess.run([exe, "engine", "down", "--name", name], capture_output=True, text=True, timeout=60)
    assert down.stdout.strip() == "stopped"
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # no process of the engine's group is left
    assert subprocess.run([exe, "engine", "status", "--name", name], capture_output=True).returncode == 1


def test_rendered_rules_on_real_vllm_metrics(prometheus, vllm_engine, engine_exporter) -> None:
    """The shipped rules, loaded into the real Prometheus, record from a real vLLM's series."""
    from pathlib import Path

    from inferwatch import rules

    repo = Path(__file__).resolve().parent.parent
    prometheus.set_job("vllm", [vllm_engine.server.base_url.removeprefix("http://")])
    prometheus.set_job("inferwatch-engine", [f"127.0.0.1:{engine_exporter.port}"])
    prometheus.rule_files = [str(repo / path) for path in rules.OUTPUTS.values()]
    prometheus.reload()
    arrivals = schedule.poisson(rate=8, duration=4, prompt_tokens=48, output_tokens=16, seed=11)
    asyncio.run(run(arrivals, Target(vllm_engine.server.base_url, "tiny-llama"), progress=False))
    sel = '{model_name="tiny-llama"}'
    for name in ("model_name:llm_time_to_first_token_seconds:p95_rate5m",
                 "model_name:llm_inter_token_latency_seconds:p95_rate5m",
                 "model_name:llm_e2e_request_latency_seconds:p99_rate5m",
                 "model_name:llm_requests:rate5m",
                 "model_name:llm_generation_tokens:rate5m",
                 "model_name:llm_kv_cache_usage:max",
                 "model_name:llm_slo_ttft_errors_per_events:ratio_rate5m",
                 "model_name:llm_slo_itl_errors_per_events:ratio_rate5m",
                 "model_name:llm_slo_availability_errors_per_events:ratio_rate5m",
                 "model_name:llm_time_to_first_token_seconds_p95:threshold"):
        prometheus.wait_for_series(name + sel, timeout=60)
    # The SLO thresholds match bucket bounds vLLM really exposes (le="1.0", le="0.1"): with the
    # tiny model every request is fast, so the bad-event ratios are exactly 0.
    assert prometheus.query_value("model_name:llm_slo_ttft_errors_per_events:ratio_rate5m" + sel) == 0
    assert prometheus.query_value("model_name:llm_slo_itl_errors_per_events:ratio_rate5m" + sel) == 0
    ttft = prometheus.query_value("model_name:llm_time_to_first_token_seconds:p95_rate5m" + sel)
    assert 0 < ttft < 1.0
    # No history yet: the adaptive threshold is the SLA (2 s by default).
    assert prometheus.query_value("model_name:llm_time_to_first_token_seconds_p95:threshold" + sel) == 2.0
    firing = {a["labels"]["alertname"] for a in prometheus.alerts() if a["state"] == "firing"}
    assert not firing & {"LLMEngineDown", "LLMModelUnavailable", "LLMTimeToFirstTokenSLABreach"}, firing
    prometheus.rule_files = []
    prometheus.reload()
