"""The local demo stack (lab): the whole suite on loopback, so an operator sees the suite work end to end.

It builds the tiny model, starts a real vLLM (CPU build) with the inferwatch plugin, the engine
exporter, the GPU exporter on simulated GPUs, a real Prometheus scraping all of them and a real
Alertmanager; runs a short injected load; prints what Prometheus sees; then stays up until
Ctrl-C (or `--duration`) and stops everything it started.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from inferwatch.config import EndpointConfig, EngineExporterConfig, InferwatchConfig
from inferwatch.exporters.gpu import server as gpu_server
from inferwatch.kit import extras
from inferwatch.kit.commands import wait_for_signal
from inferwatch.lab.sink import WebhookSink
from inferwatch.lab.stack import Alertmanager, Prometheus, StackError, free_port, http_json

DEMO_SCENARIO = "h100x2"
MODEL = "tiny-llama"
SCRAPE_SECONDS = 2
# Demo-sized drift windows: the last 20 s of token lengths against the 20 s before, from 20 requests
# (production keeps the defaults: an hour against the same hour a week ago, from 1000; docs/drift.md).
DRIFT_WINDOW_SECONDS = 20.0
DRIFT_MIN_SAMPLES = 20
FEEDBACK_EVERY_SECONDS = 3.0
PREVIEW_RANGE_SECONDS = 600
QUALITY_JOBS = ("inferwatch-feedback", "inferwatch-drift", "inferwatch-log")
# The KEDA external scaler, called by a KEDA stand-in every few seconds (KEDA's default pollingInterval is
# 30 s) for one ScaledObject of the demo's model; there is no cluster, so nothing acts on its answers.
SCALER_POLL_SECONDS = 5.0
SCALED_OBJECT = {"model": MODEL, "capacityPerReplica": "2", "startupSeconds": "60", "trendWindowSeconds": "120",
                 "scaleDownStabilisationSeconds": "120", "maxReplicas": "8"}


def run_demo(config: InferwatchConfig, workdir: str | None = None, duration: float = 0, engine: bool = True,
             load_seconds: float = 15, previews: str | None = None) -> int:
    """Start everything, print what Prometheus sees, wait; whatever happens, stop all it started."""
    root = Path(workdir or tempfile.mkdtemp(prefix="inferwatch-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"inferwatch demo: working in {root}", flush=True)
    stack = DemoStack(config, root, engine=engine)
    try:
        try:
            stack.start()
            if engine and load_seconds > 0:
                stack.drive(load_seconds)
            if engine:
                stack.prometheus.wait_for_series('inferwatch_probe_success{job="inferwatch-probe"}', timeout=30)
            print_summary(stack.prometheus)
            _previews(stack, Path(previews) if previews else root / "dashboards")
            print("\nStack is up. Press Ctrl-C to stop." if not duration else f"\nStopping in {duration:.0f} s.",
                  flush=True)
        except (StackError, RuntimeError, OSError) as exc:
            print(f"inferwatch demo: {exc}")
            return 1
        wait_for_signal(lambda: None, timeout=duration or None)
        return 0
    finally:
        stack.stop()
        print("inferwatch demo: stopped everything it started.", flush=True)


@dataclass
class DemoStack:
    """Every inferwatch component on loopback around one real vLLM, with Prometheus and Alertmanager.

    The demo runs it; the dashboard tests run it around the session's vLLM (`vllm_url`) and query
    every panel against its Prometheus. `say` prints progress (the tests pass a no-op).
    """

    config: InferwatchConfig
    root: Path
    engine: bool = True
    vllm_url: str | None = None  # a running vLLM serving MODEL; None: start one
    vllm_log: Path | None = None  # that vLLM's log file (followed by the log exporter); set when we start it
    say: Callable[[str], None] = lambda text: print(text, flush=True)
    jobs: dict[str, str] = field(default_factory=dict)  # Prometheus job -> host:port
    started: list[Any] = field(default_factory=list)
    prometheus: Prometheus | None = None
    feedback_url: str = ""
    started_at: float = 0.0  # unix seconds: where a dashboard's time range can begin

    def start(self) -> DemoStack:
        self.started_at = time.time()
        self._start_components()
        sink = self._keep(WebhookSink().start())
        alertmanager = Alertmanager(self.root / "alertmanager", config=_alertmanager_config(sink.url))
        self._keep(alertmanager.start())
        self.say(f"  Alertmanager    {alertmanager.url}  (shipped routing; notifications printed here)")
        rule_files = _write_rules(self.root / "rules", self.config)
        prometheus = Prometheus(self.root / "prometheus", scrape_interval=f"{SCRAPE_SECONDS}s",
                                evaluation_interval="5s", alertmanager_urls=[alertmanager.url], rule_files=rule_files)
        prometheus.scrape_configs = [{"job_name": job, "static_configs": [{"targets": [target]}]}
                                     for job, target in self.jobs.items()]
        self.prometheus = self._keep(prometheus.start())
        self.say(f"  Prometheus      {prometheus.url}  ({len(rule_files)} rule files)")
        if self.engine:
            self._start_quality_services()  # after Prometheus: their first queries find it up
            if "inferwatch-scaler" in self.jobs:
                self._start_scaler()
        for job in self.jobs:
            prometheus.wait_for_series(f'up{{job="{job}"}} == 1', timeout=60)
        return self

    def stop(self) -> None:
        _stop_all(self.started)

    def _keep(self, thing: Any) -> Any:
        self.started.append(thing)
        return thing

    def _start_components(self) -> None:
        """Start the exporters (and vLLM) and fill `jobs`."""
        config = self.config
        gpu_cfg = dataclasses.replace(config.gpu_exporter, listen_address="127.0.0.1", port=free_port(),
                                      simulate=config.gpu_exporter.simulate or DEMO_SCENARIO)
        gpu = self._keep(gpu_server.start(gpu_cfg))
        self.jobs["inferwatch-gpu"] = f"127.0.0.1:{gpu.port}"
        self.say(f"  GPU exporter    http://{self.jobs['inferwatch-gpu']}/metrics  (simulated: {gpu_cfg.simulate})")
        if not self.engine:
            return

        from inferwatch.exporters.engine import server as engine_server
        from inferwatch.lab.engine import runtime

        base_url = self.vllm_url or self._start_vllm()
        self.jobs["vllm"] = base_url.removeprefix("http://")
        engine_cfg = EngineExporterConfig(listen_address="127.0.0.1", port=free_port(), endpoints=[
            EndpointConfig(name="vllm-0", base_url=base_url, model=MODEL)],
            model_dirs_allowed=[str(runtime.home() / "models")])  # fingerprint the tiny model's directory
        exporter = self._keep(engine_server.start(engine_cfg))
        self.jobs["inferwatch-engine"] = f"127.0.0.1:{exporter.port}"
        self.say(f"  Engine exporter http://{self.jobs['inferwatch-engine']}/metrics")
        probes = self._keep(_start_probe_exporter(base_url))
        self.jobs["inferwatch-probe"] = f"127.0.0.1:{probes.port}"
        self.say(f"  Probe exporter  http://{self.jobs['inferwatch-probe']}/metrics  (module latency every 5 s)")
        for job in QUALITY_JOBS:  # their ports now, so Prometheus scrapes them from its first config
            self.jobs[job] = f"127.0.0.1:{free_port()}"
        if extras.installed("scaler"):
            self.jobs["inferwatch-scaler"] = f"127.0.0.1:{free_port()}"
        else:
            self.say("  (no KEDA scaler: it needs the 'scaler' extra: pip install 'inferwatch[scaler]')")

    def _start_vllm(self) -> str:
        from inferwatch.lab.engine import runtime
        from inferwatch.lab.engine.server import VllmServer

        self.say("  vLLM            preparing the engine venv and tiny model (first run: a few minutes) ...")
        runtime.ensure_venv()
        plugin = self.root / "inferwatch-plugin.yaml"  # the plugin reads its SLO targets from the same settings
        plugin.write_text(yaml.safe_dump({"slo": dataclasses.asdict(self.config.slo),
                                          "vllm_plugin": dataclasses.asdict(self.config.vllm_plugin)}))
        vllm = VllmServer(runtime.ensure_tiny_model(0), self.root / "vllm", MODEL,
                          env={"INFERWATCH_CONFIG": str(plugin)})
        self._keep(vllm.start())
        self.vllm_log = vllm.log_path
        self.say(f"  vLLM            {vllm.base_url}  (model {MODEL}, log {vllm.log_path})")
        return vllm.base_url

    def _start_quality_services(self) -> None:
        """The feedback server (versions looked up in this Prometheus) and the drift exporter on short windows."""
        from inferwatch.config import DriftExporterConfig, FeedbackServerConfig
        from inferwatch.exporters.drift import server as drift_server
        from inferwatch.exporters.feedback import server as feedback_server

        prometheus_url = self.prometheus.url
        port = {job: int(target.rsplit(":", 1)[1]) for job, target in self.jobs.items()}
        self._keep(feedback_server.start(FeedbackServerConfig(
            listen_address="127.0.0.1", port=port["inferwatch-feedback"], prometheus_url=prometheus_url,
            store_dir=str(self.root / "feedback-store"))))
        self.feedback_url = f"http://{self.jobs['inferwatch-feedback']}"
        self.say(f"  Feedback server {self.feedback_url}/v1/feedback  (ratings posted during the load)")
        self._keep(drift_server.start(DriftExporterConfig(
            listen_address="127.0.0.1", port=port["inferwatch-drift"], prometheus_url=prometheus_url,
            selector='job="vllm"', window_seconds=DRIFT_WINDOW_SECONDS, reference_offset_seconds=DRIFT_WINDOW_SECONDS,
            min_samples=DRIFT_MIN_SAMPLES, interval_seconds=5, references_dir=str(self.root / "drift-references"))))
        from inferwatch.config import LogExporterConfig, LogSourceConfig
        from inferwatch.exporters.logs import server as log_server

        sources = [LogSourceConfig(name="vllm-0", file=str(self.vllm_log))] if self.vllm_log else []
        self._keep(log_server.start(LogExporterConfig(
            listen_address="127.0.0.1", port=port["inferwatch-log"], prometheus_url=prometheus_url, sources=sources)))
        self.say(f"  Log exporter    http://{self.jobs['inferwatch-log']}/metrics  (follows vLLM's log: "
                 f"{self.vllm_log or 'not given'})")
        self.say(f"  Drift exporter  http://{self.jobs['inferwatch-drift']}/metrics  (token lengths, this"
                 f" {DRIFT_WINDOW_SECONDS:.0f} s against the {DRIFT_WINDOW_SECONDS:.0f} s before; demo windows)")

    def _start_scaler(self) -> None:
        from inferwatch.config import ScalerConfig
        from inferwatch.lab.keda import KedaStandIn
        from inferwatch.scaler import server as scaler_server

        metrics_port = int(self.jobs["inferwatch-scaler"].rsplit(":", 1)[1])
        scaler = self._keep(scaler_server.start(ScalerConfig(
            listen_address="127.0.0.1", port=free_port(), metrics_port=metrics_port,
            prometheus_url=self.prometheus.url, decision_cache_seconds=0.0)))
        self._keep(KedaStandIn(scaler.address, MODEL, "demo", SCALED_OBJECT, SCALER_POLL_SECONDS).start())
        self.say(f"  KEDA scaler     grpc://{scaler.address}  metrics http://{self.jobs['inferwatch-scaler']}/metrics"
                 f"  (a KEDA stand-in asks every {SCALER_POLL_SECONDS:.0f} s)")

    def drive(self, seconds: float, rate: float = 4.0) -> None:
        """Open-loop load on vLLM for `seconds`, with a batch of ratings every few seconds."""
        stop = threading.Event()
        rater = threading.Thread(target=self._rate_answers, args=(stop,), daemon=True)
        rater.start()
        try:
            _inject(self.jobs["vllm"], seconds, rate, self.say)
        finally:
            stop.set()
            rater.join(timeout=10)
        self.prometheus.wait_for_series('inferwatch_vllm_slo_requests_total{job="vllm"} > 0', timeout=30)

    def _rate_answers(self, stop: threading.Event) -> None:
        """What an application would post: thumbs and 1-5 ratings, mostly good (no version: looked up)."""
        rng = random.Random(0)
        batch = 0
        while not stop.wait(FEEDBACK_EVERY_SECONDS):
            batch += 1
            items = [{"request_id": f"demo-{batch}-{i}", "model": MODEL, "score": "thumbs",
                      "value": rng.random() > 0.2} for i in range(8)]
            items += [{"request_id": f"demo-{batch}-r{i}", "model": MODEL, "score": "rating",
                       "value": rng.choice([2, 3, 4, 4, 5, 5])} for i in range(4)]
            try:
                http_json(f"{self.feedback_url}/v1/feedback", {"feedback": items})
            except OSError as exc:  # the demo goes on; the panel shows the gap
                self.say(f"  (posting feedback failed: {exc})")


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


def _inject(target: str, seconds: float, rate: float, say: Callable[[str], None]) -> None:
    from inferwatch.inject import schedule
    from inferwatch.inject.client import Target
    from inferwatch.inject.runner import format_report, run

    say(f"\nInjecting {seconds:.0f} s of Poisson load ({rate:g} req/s, 64-token prompts, 32-token outputs):")
    arrivals = schedule.poisson(rate=rate, duration=seconds, prompt_tokens=64, output_tokens=32)
    report = asyncio.run(run(arrivals, Target(f"http://{target}", MODEL), progress=False))
    say("  " + format_report(report.summary()).replace("\n", "\n  "))


def _previews(stack: DemoStack, out: Path) -> None:
    """`inferwatch dashboards preview` on the demo's Prometheus: one PNG per dashboard, paths printed."""
    from inferwatch.kit import extras

    if not extras.installed("preview"):
        print("\nDashboard previews need the 'preview' extra: pip install 'inferwatch[preview]'")
        return
    from inferwatch.dashboards.render import preview_all

    end = time.time()
    written, _ = preview_all(stack.prometheus.url, out, end - PREVIEW_RANGE_SECONDS, end, SCRAPE_SECONDS)
    print(f"\nDashboard previews (every panel from this Prometheus, last {PREVIEW_RANGE_SECONDS // 60} min):")
    for path in written:
        print(f"  {path}")


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
