"""The local demo stack (lab): the whole suite on loopback, so an operator sees the suite work end to end.

It builds the tiny model, starts a real vLLM (CPU build) with the inferwatch plugin, the engine
exporter, the GPU exporter on simulated GPUs, a real Prometheus scraping all of them and a real
Alertmanager; runs a short injected load; prints what Prometheus sees; then stays up until
Ctrl-C (or `--duration`) and stops everything it started.
"""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import yaml

from inferwatch.config import EndpointConfig, EngineExporterConfig, InferwatchConfig
from inferwatch.exporters.gpu import server as gpu_server
from inferwatch.kit.commands import wait_for_signal
from inferwatch.lab.sink import WebhookSink
from inferwatch.lab.stack import Alertmanager, Prometheus, StackError, free_port

DEMO_SCENARIO = "h100x2"
MODEL = "tiny-llama"


def run_demo(config: InferwatchConfig, workdir: str | None = None, duration: float = 0, engine: bool = True,
             load_seconds: float = 15) -> int:
    """Start everything, print what Prometheus sees, wait; whatever happens, stop all it started."""
    root = Path(workdir or tempfile.mkdtemp(prefix="inferwatch-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"inferwatch demo: working in {root}", flush=True)
    started: list[Any] = []
    try:
        return _run(config, root, duration, engine, load_seconds, started)
    finally:
        _stop_all(started)
        print("inferwatch demo: stopped everything it started.", flush=True)


def _run(config: InferwatchConfig, root: Path, duration: float, engine: bool, load_seconds: float,
         started: list[Any]) -> int:
    try:
        jobs = _start_components(config, root, engine, started)
        sink = WebhookSink().start()
        started.append(sink)
        alertmanager = Alertmanager(root / "alertmanager", config=_alertmanager_config(sink.url)).start()
        started.append(alertmanager)
        print(f"  Alertmanager    {alertmanager.url}  (shipped routing; notifications printed here)")
        rule_files = _write_rules(root / "rules", config)
        prometheus = Prometheus(root / "prometheus", scrape_interval="2s", evaluation_interval="5s",
                                alertmanager_urls=[alertmanager.url], rule_files=rule_files)
        prometheus.scrape_configs = [{"job_name": job, "static_configs": [{"targets": [target]}]}
                                     for job, target in jobs.items()]
        prometheus.start()
        started.append(prometheus)
        print(f"  Prometheus      {prometheus.url}  ({len(rule_files)} rule files)", flush=True)
        for job in jobs:
            prometheus.wait_for_series(f'up{{job="{job}"}} == 1', timeout=60)
        if engine and load_seconds > 0:
            _inject(jobs["vllm"], load_seconds)
            prometheus.wait_for_series('inferwatch_vllm_slo_requests_total{job="vllm"} > 0', timeout=30)
        if engine:
            prometheus.wait_for_series('inferwatch_probe_success{job="inferwatch-probe"}', timeout=30)
        print_summary(prometheus)
        print("\nStack is up. Press Ctrl-C to stop." if not duration else f"\nStopping in {duration:.0f} s.",
              flush=True)
    except (StackError, RuntimeError, OSError) as exc:
        print(f"inferwatch demo: {exc}")
        return 1
    wait_for_signal(lambda: None, timeout=duration or None)
    return 0


def _start_components(config: InferwatchConfig, root: Path, engine: bool, started: list[Any]) -> dict[str, str]:
    """Start the exporters (and vLLM); return Prometheus job name -> host:port."""
    jobs: dict[str, str] = {}
    gpu_cfg = dataclasses.replace(config.gpu_exporter, listen_address="127.0.0.1", port=free_port(),
                                  simulate=config.gpu_exporter.simulate or DEMO_SCENARIO)
    gpu = gpu_server.start(gpu_cfg)
    started.append(gpu)
    jobs["inferwatch-gpu"] = f"127.0.0.1:{gpu.port}"
    print(f"  GPU exporter    http://{jobs['inferwatch-gpu']}/metrics  (simulated: {gpu_cfg.simulate})", flush=True)
    if not engine:
        return jobs

    from inferwatch.exporters.engine import server as engine_server
    from inferwatch.lab.engine import runtime
    from inferwatch.lab.engine.server import VllmServer

    print("  vLLM            preparing the engine venv and tiny model (first run: a few minutes) ...", flush=True)
    runtime.ensure_venv()
    plugin = root / "inferwatch-plugin.yaml"  # the plugin reads its SLO targets from the same settings
    plugin.write_text(yaml.safe_dump({"slo": dataclasses.asdict(config.slo),
                                      "vllm_plugin": dataclasses.asdict(config.vllm_plugin)}))
    vllm = VllmServer(runtime.ensure_tiny_model(0), root / "vllm", MODEL, env={"INFERWATCH_CONFIG": str(plugin)})
    vllm.start()
    started.append(vllm)
    jobs["vllm"] = f"127.0.0.1:{vllm.port}"
    print(f"  vLLM            {vllm.base_url}  (model {MODEL}, log {vllm.log_path})")
    engine_cfg = EngineExporterConfig(listen_address="127.0.0.1", port=free_port(), endpoints=[
        EndpointConfig(name="vllm-0", base_url=vllm.base_url, model=MODEL)],
        model_dirs_allowed=[str(runtime.home() / "models")])  # fingerprint the tiny model's directory
    exporter = engine_server.start(engine_cfg)
    started.append(exporter)
    jobs["inferwatch-engine"] = f"127.0.0.1:{exporter.port}"
    print(f"  Engine exporter http://{jobs['inferwatch-engine']}/metrics", flush=True)
    probes = _start_probe_exporter(vllm.base_url)
    started.append(probes)
    jobs["inferwatch-probe"] = f"127.0.0.1:{probes.port}"
    print(f"  Probe exporter  http://{jobs['inferwatch-probe']}/metrics  (module latency every 5 s)", flush=True)
    return jobs


# The random-weight model answers nothing meaningful, so the demo probes latency only: a fixed-length
# generation whose client-side TTFT/TPOT and model id are checked (see examples/probe-modules.yaml).
DEMO_PROBES = f"""
modules:
  latency:
    kind: completion
    model: {MODEL}
    timeout_seconds: 10
    params: {{max_tokens: 16, temperature: 0, seed: 0, ignore_eos: true}}
    cases:
      - name: sixteen_tokens
        prompt: "Count slowly:"
        assert: [{{type: length, min_tokens: 16, max_tokens: 16}}]
"""


def _start_probe_exporter(base_url: str) -> Any:
    from inferwatch.config import ProbeExporterConfig, ProbeTargetConfig, parse_config
    from inferwatch.exporters.probe import server as probe_server
    from inferwatch.exporters.probe.modules import Modules

    modules = parse_config(DEMO_PROBES, "<the demo's probe modules>", cls=Modules)
    config = ProbeExporterConfig(listen_address="127.0.0.1", port=free_port(), targets=[
        ProbeTargetConfig(name="vllm-0", url=base_url, module="latency", interval_seconds=5)])
    return probe_server.start(config, modules, embedder=None)


def _inject(target: str, seconds: float) -> None:
    from inferwatch.inject import schedule
    from inferwatch.inject.client import Target
    from inferwatch.inject.runner import format_report, run

    print(f"\nInjecting {seconds:.0f} s of Poisson load (4 req/s, 64-token prompts, 32-token outputs):", flush=True)
    arrivals = schedule.poisson(rate=4, duration=seconds, prompt_tokens=64, output_tokens=32)
    report = asyncio.run(run(arrivals, Target(f"http://{target}", MODEL), progress=False))
    print("  " + format_report(report.summary()).replace("\n", "\n  "))


def _write_rules(folder: Path, config: InferwatchConfig) -> list[str]:
    """The recording and alerting rules, rendered from the mixin this package ships with the config's SLOs."""
    from inferwatch import rules

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for relative, text in rules.rendered(config, source="the demo's config").items():
        path = folder / Path(relative).name
        path.write_text(text)
        paths.append(str(path))
    return paths


def _alertmanager_config(webhook_url: str) -> dict:
    """The shipped routing tree with every receiver redirected to the demo's loopback sink."""
    from inferwatch import assets
    from inferwatch.lab.stack import redirect_receivers

    config = yaml.safe_load(assets.alertmanager_config())
    config["route"] = {**config["route"], "group_wait": "5s", "group_interval": "30s"}
    return redirect_receivers(config, webhook_url)


def print_summary(prometheus: Prometheus) -> None:
    print("\nWhat Prometheus sees:")
    for target in sorted(prometheus.targets(), key=lambda t: t["labels"]["job"]):
        print(f"  target {target['labels']['job']:18} {target['scrapeUrl']:42} {target['health']}")
    rows = [
        ("GPUs up", "sum(inferwatch_gpu_up)", "{:.0f}"),
        ("mean GPU utilisation", "avg(inferwatch_gpu_utilization_ratio)", "{:.2f}"),
        ("GPU power draw (W)", "sum(inferwatch_gpu_power_usage_watts)", "{:.0f}"),
        ("engine endpoints up", "sum(inferwatch_engine_up)", "{:.0f}"),
        ("model version", 'count by (version) (inferwatch_model_version_info)', "label:version"),
        ("requests/s (1m)", 'sum(rate(vllm:request_success_total[1m]))', "{:.2f}"),
        ("TTFT p50 (ms, 1m)",
         "1000 * histogram_quantile(0.5, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket[1m])))",
         "{:.1f}"),
        ("KV cache usage", "max(vllm:kv_cache_usage_perc)", "{:.3f}"),
        ("probe success", 'min(inferwatch_probe_success{job="inferwatch-probe"})', "{:.0f}"),
        ("probe TTFT (ms, client)", '1000 * max(inferwatch_probe_case_time_to_first_token_seconds)', "{:.1f}"),
        ("SLO goodput ratio", "sum(inferwatch_vllm_slo_goodput_requests_total) / "
                              "sum(inferwatch_vllm_slo_requests_total)", "{:.2f}"),
    ]
    rows.append(("recorded series (rules)", 'count({__name__=~"(model_name|instance_model_name|):llm_.*"})', "{:.0f}"))
    for label, expr, fmt in rows:
        result = prometheus.query(expr)
        if not result:
            shown = "-"
        elif fmt.startswith("label:"):
            shown = result[0]["metric"].get(fmt.split(":", 1)[1], "-")
        else:
            shown = fmt.format(float(result[0]["value"][1]))
        print(f"  {label:24} {shown}")
    firing = sorted({a["labels"]["alertname"] for a in prometheus.alerts() if a["state"] == "firing"})
    print(f"  {'alerts firing':24} {', '.join(firing) or 'none'}")


def _stop_all(started: list[Any]) -> None:
    for thing in reversed(started):
        try:
            thing.stop()
        except Exception as exc:  # keep stopping the rest
            print(f"  (stopping {type(thing).__name__} failed: {exc})")
    started.clear()
