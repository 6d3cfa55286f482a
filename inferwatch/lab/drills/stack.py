"""The drill stack: every part a fault travels through, real and on loopback.

Two real vLLM servers (drill-a with a fake backup endpoint, drill-b), the engine exporter, the GPU
exporter on a simulated NVML whose faults the drills flip, Prometheus with the shipped rules (1 s
scrapes and evaluations), Alertmanager with the shipped routing tree (group timers shortened,
every receiver pointed at a recording sink *and* the remediation receiver), `inferwatch remediate`
executing http actions against a loopback control plane (a router and a deployer).
"""

from __future__ import annotations

import concurrent.futures
import http.server
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from inferwatch import assets
from inferwatch.config import (
    EndpointConfig,
    EngineExporterConfig,
    GpuExporterConfig,
    RemediationActionConfig,
    RemediationConfig,
)
from inferwatch.lab.drills.catalog import GPU_HOST, MODEL_A, MODEL_B
from inferwatch.lab.sink import WebhookSink
from inferwatch.lab.stack import Alertmanager, Prometheus

TOKEN = "drill-remediation-token"
# One core per vLLM worker. vLLM's auto binding pins every CPU worker's OpenMP threads to core 0
# (core 1 is "reserved"): with both servers there, a SIGKILLed one restarted next to the busy other
# never reached /health within 200 s; on cores of their own the restart is up in about 60 s.
WORKER_CORES = {MODEL_A: "0", MODEL_B: "1"}
# ... and below the watchers: with both cores busy serving, the engine exporter's scrapes took up to
# 3.5 s (timeouts, gaps in inferwatch_engine_up that reset LLMEngineDown's `for`).
ENGINE_NICENESS = 10


class ControlPlane(http.server.ThreadingHTTPServer):
    """What the remediation actions talk to: a router (POST /route {model, target}) and a deployer
    (POST /rollback {model}, which calls the drill's rollback hook)."""

    def __init__(self, models: tuple[str, ...] = (MODEL_A,)) -> None:
        self.target: dict[str, str] = dict.fromkeys(models, "primary")
        self.rollbacks: dict[str, Callable[[], None]] = {}
        self.events: list[tuple[float, str, str]] = []  # (time, path, model)
        plane = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                model = str(body.get("model", ""))
                plane.events.append((time.time(), self.path, model))
                if self.path == "/route":
                    plane.target[model] = str(body.get("target"))
                elif self.path == "/rollback" and model in plane.rollbacks:
                    threading.Thread(target=plane.rollbacks[model], daemon=True).start()
                self.send_response(204)
                self.end_headers()

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


def remediation_actions(control_url: str, primary_health_url: str) -> list[RemediationActionConfig]:
    """Failover/failback for drill-a's primary (back only to a primary whose /health answers) and a
    rollback for drill-b's latency SLA breach."""
    json_header = {"Content-Type": "application/json"}

    def http(name: str, alerts: list[str], path: str, body: str, **extra: Any) -> RemediationActionConfig:
        return RemediationActionConfig(name=name, kind="http", alerts=alerts, url=f"{control_url}{path}",
                                       headers=json_header, body=body, cooldown_seconds=0, **extra)

    route = '{{"model": "{{labels.model_name}}", "target": "{target}"}}'
    primary = {"role": "primary", "model_name": MODEL_A}
    return [
        http("failover", ["LLMEngineDown"], "/route", route.format(target="backup"), matchers=primary,
             undo="failback"),
        http("failback", ["LLMEngineDown"], "/route", route.format(target="primary"), matchers=primary,
             when="resolved", precondition_url=primary_health_url),
        http("rollback", ["LLMTimeToFirstTokenSLABreach"], "/rollback", '{"model": "{labels.model_name}"}',
             matchers={"model_name": MODEL_B}),
    ]


def alertmanager_config(sink_url: str, remediator_url: str, token_file: Path) -> dict[str, Any]:
    """The shipped tree (timers shortened); each real receiver posts to the sink (under its own
    name, so the drill sees who got what) and to the remediation receiver."""
    config = yaml.safe_load(assets.alertmanager_config())
    config["route"] = quick_timers(config["route"])
    remediator = {"url": f"{remediator_url}/v1/alerts", "send_resolved": True,
                  "http_config": {"authorization": {"credentials_file": str(token_file)}}}
    config["receivers"] = [
        r if set(r) == {"name"} else {"name": r["name"], "webhook_configs": [
            {"url": f"{sink_url}/{r['name']}", "send_resolved": True}, remediator]}
        for r in config["receivers"]]
    return config


def quick_timers(route: dict[str, Any]) -> dict[str, Any]:
    """Every route of the tree with 1 s group_wait and 2 s group_interval; nothing else changes."""
    timers = {"group_wait": "1s", "group_interval": "2s"} if ("group_wait" in route or "receiver" in route) else {}
    children = {"routes": [quick_timers(r) for r in route["routes"]]} if "routes" in route else {}
    return {**route, **timers, **children}


@dataclass
class DrillStack:
    root: Path
    say: Callable[[str], None] = lambda text: print(text, flush=True)
    engines: dict[str, Any] = field(default_factory=dict)  # model -> VllmServer
    started: list[Any] = field(default_factory=list)
    control: ControlPlane | None = None
    sink: WebhookSink | None = None
    prometheus: Prometheus | None = None
    nvml: Any = None  # the simulated NVML behind the GPU exporter
    audit_path: Path | None = None
    _starts: dict[str, int] = field(default_factory=dict)
    _since: float = field(default_factory=time.time)

    def start(self) -> DrillStack:
        from inferwatch.exporters.engine import server as engine_server
        from inferwatch.exporters.gpu import server as gpu_server
        from inferwatch.exporters.gpu.simnvml import SimulatedNvml
        from inferwatch.lab.engine import runtime
        from inferwatch.lab.fake_openai import Behaviour, FakeOpenAI
        from inferwatch.remediate import server as remediate_server

        self.root.mkdir(parents=True, exist_ok=True)
        runtime.ensure_venv()
        runtime.ensure_tiny_model(0, "large")  # the latency drill's bad deploy: built now, not mid-drill
        self.say("  starting two vLLM servers (CPU) ...")
        with concurrent.futures.ThreadPoolExecutor(2) as pool:  # each takes 25-60 s: start them together
            for future in [pool.submit(self.start_engine, model) for model in (MODEL_A, MODEL_B)]:
                future.result()
        backup = self._keep(FakeOpenAI(Behaviour(model=MODEL_A)).start())
        self.control = self._keep(ControlPlane())
        self.sink = self._keep(WebhookSink(echo=False).start())
        token_file = self.root / "remediation-token"
        token_file.write_text(TOKEN + "\n")
        self.audit_path = self.root / "remediation-audit.jsonl"
        remediator = self._keep(remediate_server.start(RemediationConfig(
            listen_address="127.0.0.1", port=0, bearer_token_file=str(token_file), execute=True,
            audit_log=str(self.audit_path),
            actions=remediation_actions(self.control.url, f"{self.engines[MODEL_A].base_url}/health"))))
        a, b = self.engines[MODEL_A], self.engines[MODEL_B]
        engines = self._keep(engine_server.start(EngineExporterConfig(listen_address="127.0.0.1", port=0, endpoints=[
            EndpointConfig("vllm-a", a.base_url, MODEL_A, role="primary"),
            EndpointConfig("backup-a", backup.url, MODEL_A, role="backup"),
            EndpointConfig("vllm-b", b.base_url, MODEL_B, role="primary")])))
        self.nvml = SimulatedNvml.from_scenario("h100x2")
        gpus = self._keep(gpu_server.start(GpuExporterConfig(
            listen_address="127.0.0.1", port=0, hostname=GPU_HOST, docker_socket="",
            proc_root=str(self._empty_dir("proc"))), nvml=self.nvml))
        am = self._keep(Alertmanager(self.root / "alertmanager", config=alertmanager_config(
            self.sink.url, remediator.url.removesuffix("/metrics"), token_file)).start())
        (self.root / "rules").mkdir(exist_ok=True)
        rules = assets.write_rule_files(self.root / "rules")
        # Prometheus sends alerts valid for 4x the resend delay: at 1 s, a send held up 4 s on the busy
        # machine let Alertmanager resolve a still-firing LLMEngineDown (a failback to a dead primary).
        prometheus = Prometheus(self.root / "prometheus", scrape_interval="1s", evaluation_interval="1s",
                                alertmanager_urls=[am.url], rule_files=[str(p) for p in rules],
                                alert_resend_delay="5s")
        prometheus.scrape_configs = [
            {"job_name": "vllm", "static_configs": [{"targets": [e.base_url.removeprefix("http://")
                                                                 for e in self.engines.values()]}]},
            {"job_name": "inferwatch-engine", "static_configs": [{"targets": [f"127.0.0.1:{engines.port}"]}]},
            {"job_name": "inferwatch-gpu", "static_configs": [{"targets": [f"127.0.0.1:{gpus.port}"]}]},
        ]
        self.prometheus = self._keep(prometheus.start())
        for job in ("vllm", "inferwatch-engine", "inferwatch-gpu"):
            prometheus.wait_for_series(f'up{{job="{job}"}} == 1', timeout=60)
        self.say(f"  stack up: Prometheus {prometheus.url}, Alertmanager {am.url}, remediate {remediator.url}")
        return self

    def start_engine(self, model: str, size: str = "tiny", **options: Any) -> Any:
        """Start (or restart on its old port) the vLLM server of `model`, serving weights of `size`
        (tiny_model.SIZES) under that name."""
        from inferwatch.lab.engine import runtime
        from inferwatch.lab.engine.server import VllmServer

        old = self.engines.get(model)
        port = old.port if old else 0
        if old:
            old.stop()
        # A fresh directory (and so vLLM cache) per start: after a SIGKILL, a restart on the old
        # cache hung in engine start-up for minutes here; a new one is up in ~30 s.
        self._starts[model] = self._starts.get(model, 0) + 1
        workdir = self.root / model / f"start-{self._starts[model]}"
        workdir.mkdir(parents=True, exist_ok=True)
        env = {"VLLM_CPU_OMP_THREADS_BIND": WORKER_CORES[model]}
        server = VllmServer(runtime.ensure_tiny_model(0, size), workdir, model, port, env=env,
                            niceness=ENGINE_NICENESS, **options)
        self.engines[model] = server.start()
        return server

    def stop(self) -> None:
        for thing in reversed(self.started):
            try:
                thing.stop()
            except Exception as exc:  # keep stopping the rest
                self.say(f"  (stopping {type(thing).__name__} failed: {exc})")
        for server in self.engines.values():
            server.stop()
        self.started.clear()
        remove_orphaned_shared_memory(self._since)

    def _keep(self, thing: Any) -> Any:
        self.started.append(thing)
        return thing

    def _empty_dir(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path


def remove_orphaned_shared_memory(since: float) -> list[Path]:
    """Delete the /dev/shm segments (multiprocessing `psm_*`) that vLLM processes created since
    `since` and that no live process still maps: a SIGKILLed server leaves 160-250 MB behind."""
    shm = Path("/dev/shm")
    candidates = {p for p in shm.glob("psm_*") if _mtime(p) >= since}
    if not candidates:
        return []
    mapped: set[str] = set()
    for maps in Path("/proc").glob("[0-9]*/maps"):
        try:
            mapped.update(line.split()[-1] for line in maps.read_text().splitlines() if "/dev/shm/" in line)
        except OSError:  # the process went away, or is not ours to read
            continue
    removed = [p for p in sorted(candidates) if str(p) not in mapped]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
