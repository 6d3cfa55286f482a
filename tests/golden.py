"""Golden expositions, in the manner of node_exporter's `e2e-output.txt`: exactly what each exporter
serves on /metrics, for every simulated GPU scenario in both namings and for a fixed set of fake engines.

An intended change to an exporter's output shows up as a diff of `tests/golden/*.txt`: regenerate them
with one command and review that diff like code.

    .venv/bin/python tests/golden.py --update     # rewrite every golden file (and delete stale ones)
    .venv/bin/python tests/golden.py              # check only: print the diffs, exit 1 if any is stale

`tests/test_golden.py` runs the same check in the fast tier. What keeps the output reproducible:

- GPU: the simulator runs on a `ManualClock`. Scrape 1 happens at t=0 (NVML initialised, identities
  learned, XID watcher registered); the clock then moves `ADVANCE_SECONDS` (energy and PCIe counters
  and throttle time move by exact amounts, fell-off-bus's GPU is lost, the scenario's XIDs fall due
  and we wait until the watcher has recorded every one); scrape 2 is the golden. Hostname is fixed,
  there is no Docker socket, and processes are attributed from a fixture proc root (`PROC`), never
  the host's /proc (PID 4242 may exist there).
- Engine: fake engines (`inferwatch.lab.fake_openai`) that are healthy, answering 5xx, malformed, and
  a port that refuses connections, each with a configured `model_version`. Ports appear in no label
  but `inferwatch_engine_up`'s `target` (host:port), where the free port is written as `PORT`.
- Probe: what `GET /probe` answers for a module against a fake engine with a fixed answer (a passing
  case, a failing assertion, a `similar` assertion with no embedder) and against a refusing port.
- Scaler: its collector after a fixed sequence of calls, queries and decisions (the counting the
  servicer does), with more ScaledObjects than `max_tracked_objects` and a name needing cleaning.
- Served as in production (`kit.exporter.registry_for`: the component's families plus the kit's
  self-metrics), minus the test process's own `process_*`/`python_*` families.
- Values measuring real time are replaced by `MASKED` (the series and its labels are still checked):
  samples named `*_duration_seconds`, `*_round_seconds` or `*_timestamp_seconds`. Counters such as
  `inferwatch_gpu_clock_event_duration_seconds_total` are simulated time and stay exact.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import functools
import logging
import re
import socket
import sys
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from prometheus_client import generate_latest

from inferwatch.config import EndpointConfig, EngineExporterConfig, GpuExporterConfig
from inferwatch.exporters.engine.collector import EngineCollector
from inferwatch.exporters.gpu.collector import GpuCollector
from inferwatch.exporters.gpu.simnvml import ManualClock, SimulatedNvml, scenario_names
from inferwatch.kit.exporter import registry_for
from inferwatch.lab.fake_openai import DEFAULT_MODEL, FakeOpenAI
from inferwatch.lab.process import wait_until

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
REGENERATE = ".venv/bin/python tests/golden.py --update"
HOSTNAME = "golden-host"
ADVANCE_SECONDS = 10.0
MASK = "MASKED"
MASKED_SAMPLES = re.compile(r"_(duration|round|timestamp|time_to_first_token|time_per_output_token|e2e_request_latency)"
                            r"_seconds$")
DROPPED_PREFIXES = ("process_", "python_")
NAMINGS = ("inferwatch", "dcgm")
# The fixture proc root: PID 4242 (h100x2's vLLM) runs in a Docker container; any other PID does not exist.
PROC = {4242: "0::/system.slice/docker-" + "4242abcd" * 8 + ".scope\n"}


def cases() -> dict[str, Callable[[], str]]:
    """Golden file name -> the function producing its content."""
    out: dict[str, Callable[[], str]] = {}
    for scenario in scenario_names():
        for naming in NAMINGS:
            out[f"gpu-{scenario}-{naming}.txt"] = functools.partial(gpu_exposition, scenario, naming)
    out["engine.txt"] = engine_exposition
    out["probe.txt"] = probe_exposition
    out["feedback.txt"] = feedback_exposition
    out["drift.txt"] = drift_exposition
    out["scaler.txt"] = scaler_exposition
    return out


# -- producing expositions ----------------------------------------------------------------------

def gpu_exposition(scenario: str, naming: str) -> str:
    sim = SimulatedNvml.from_scenario(scenario, clock=ManualClock())
    xids = sim.pending_xids()
    with tempfile.TemporaryDirectory(prefix="golden-proc-") as proc_root:
        for pid, cgroup in PROC.items():
            (Path(proc_root) / str(pid)).mkdir()
            (Path(proc_root) / str(pid) / "cgroup").write_text(cgroup)
        config = GpuExporterConfig(naming=naming, hostname=HOSTNAME, docker_socket="", proc_root=proc_root)
        collector = GpuCollector(config, sim)
        watcher = collector.xid
        if watcher is not None:
            watcher.wait_ms = 20  # its real-time event wait: short, so close() does not wait a second
        registry = registry_for(collector)
        try:
            generate_latest(registry)  # t = 0
            if watcher is not None and not sim.driver_missing:
                wait_until(lambda: watcher.running, 10, interval=0.005, what="the XID watcher to register")
            sim.advance(ADVANCE_SECONDS)
            if watcher is not None and xids:
                def recorded() -> bool:
                    return sum(s.value for gpu in sim.gpus for s in watcher.samples(gpu.uuid, {})
                               if s.family == "xid_errors") == xids

                wait_until(recorded, 10, interval=0.005, what=f"{xids} XID event(s) to be recorded")
            text = generate_latest(registry).decode()
        finally:
            collector.close()
    return header(f"GPU exporter, scenario {scenario}, naming {naming}") + normalise(text)


def engine_exposition() -> str:
    fakes = [FakeOpenAI().start(), FakeOpenAI(health_status=503).start(),
             FakeOpenAI(models_body=b"<html>not json</html>").start()]
    refusing = socket.socket()  # bound, never listening: connections are refused, and no one can take the port
    refusing.bind(("127.0.0.1", 0))
    healthy, failing, malformed = (fake.url for fake in fakes)
    endpoints = [
        EndpointConfig("healthy", healthy, DEFAULT_MODEL, model_version="v1", hostname="gpu-node-1"),
        EndpointConfig("failing", failing, DEFAULT_MODEL, model_version="v1"),
        EndpointConfig("malformed", malformed, DEFAULT_MODEL, role="backup", model_version="v1"),
        EndpointConfig("refused", f"http://127.0.0.1:{refusing.getsockname()[1]}", "other", model_version="v2"),
    ]
    collector = EngineCollector(EngineExporterConfig(probe_timeout_seconds=2.0, endpoints=endpoints))
    try:
        text = generate_latest(registry_for(collector)).decode()
    finally:
        collector.close()
        refusing.close()
        for fake in fakes:
            fake.stop()
    text = re.sub(r'target="127\.0\.0\.1:\d+"', 'target="127.0.0.1:PORT"', text)
    return header("engine exporter: healthy, 5xx, malformed /v1/models, connection refused") + normalise(text)


PROBE_MODULES = """\
modules:
  golden:
    kind: chat
    model: fake
    health: {max_model_len: 4096, tokenizer_text: "Hello, world!"}
    cases:
      - name: capital
        prompt: What is the capital of France?
        assert:
          - {type: icontains, value: paris}
          - {type: similar, value: Paris is the capital of France.}
      - name: river
        prompt: Which river flows through Paris?
        assert:
          - {name: seine, type: contains, value: Seine}
          - {type: length, max_tokens: 8}
"""


def probe_exposition() -> str:
    from inferwatch.config import ProbeExporterConfig
    from inferwatch.exporters.probe import server as probe_server
    from inferwatch.exporters.probe.modules import load_modules

    fake = FakeOpenAI(answer="Paris is the capital of France.").start()
    refusing = socket.socket()
    refusing.bind(("127.0.0.1", 0))
    with tempfile.TemporaryDirectory(prefix="golden-probe-") as folder:
        (Path(folder) / "modules.yaml").write_text(PROBE_MODULES)
        modules = load_modules(Path(folder) / "modules.yaml")
    running = probe_server.start(ProbeExporterConfig(listen_address="127.0.0.1", port=0), modules, embedder=None)
    texts = []
    try:
        for target in (fake.url, f"http://127.0.0.1:{refusing.getsockname()[1]}"):
            query = urllib.parse.urlencode({"module": "golden", "target": target})
            with urllib.request.urlopen(f"http://127.0.0.1:{running.port}/probe?{query}", timeout=30) as answer:
                texts.append(answer.read().decode())
    finally:
        running.stop()
        refusing.close()
        fake.stop()
    return (header("probe exporter GET /probe: a fake engine with a fixed answer (no embedder), then a "
                   "refusing port") + normalise(texts[0]) + "# -- the refusing port\n" + normalise(texts[1]))


def feedback_exposition() -> str:
    import json

    from inferwatch.config import FeedbackServerConfig
    from inferwatch.exporters.feedback.collector import FeedbackCollector
    from inferwatch.exporters.feedback.schema import Rejected

    collector = FeedbackCollector(FeedbackServerConfig())  # default scores, no store, no version lookups
    bodies = [
        [{"request_id": f"r{i}", "model": "llama", "model_version": "v1", "score": "thumbs", "value": i % 3 > 0,
          **({"comment": "a comment"} if i == 0 else {})} for i in range(6)],
        {"feedback": [{"request_id": f"s{i}", "model": "llama", "model_version": "v2", "score": "rating", "value": v}
                      for i, v in enumerate((1, 3, 4, 5, 5))]},
        {"batch": [{"type": "score-create", "body": {"traceId": "t1", "name": "quality", "value": 0.3,
                                                     "metadata": {"model": "qwen"}}}]},
        {"request_id": "bad", "model": "llama", "score": "stars", "value": 1},
    ]
    for body in bodies:
        with contextlib.suppress(Rejected):
            collector.ingest(json.dumps(body).encode())
    text = generate_latest(registry_for(collector)).decode()
    return header("feedback server after three accepted batches (ours, ours, Langfuse) and one refused") + \
        normalise(text)


def drift_exposition() -> str:
    from inferwatch.config import DriftExporterConfig, DriftSamplesConfig
    from inferwatch.exporters.drift.collector import DriftCollector
    from inferwatch.exporters.drift.features import FeatureExtractor

    now = 1_800_000_000.0
    config = DriftExporterConfig(min_samples=100, samples=DriftSamplesConfig(reservoir_size=200))
    collector = DriftCollector(config, start=False)
    extractor = FeatureExtractor()
    words = ["invoice", "refund", "account", "shipping", "order", "password", "reset", "login", "billing", "address"]

    def prompts(count: int, length: int) -> list[str]:
        return [" ".join(words[(i * 7 + j) % len(words)] for j in range(length + i % 9)) for i in range(count)]

    yesterday = now - config.samples.reference_offset_seconds - 60
    collector.windows.add("chat", extractor.extract_batch(prompts(300, 12), [None] * 300), yesterday)
    collector.windows.add("chat", extractor.extract_batch(prompts(300, 40), ["ok"] * 300), now - 60)
    collector.windows.add("code", extractor.extract_batch(prompts(50, 12), [None] * 50), now - 60)
    collector.run_once(now)
    collector.received.update({"chat": 600, "code": 50})
    text = generate_latest(registry_for(collector)).decode()
    rounded = re.sub(r"^(inferwatch_drift_score\{[^}]*\}) (\S+)$", lambda m: f"{m[1]} {float(m[2]):.4f}", text,
                     flags=re.MULTILINE)
    return header("drift exporter, samples only: one model whose prompts grew since yesterday, one with too few "
                  "samples; scores rounded to 4 places") + normalise(rounded)


def scaler_exposition() -> str:
    from inferwatch.config import ScalerConfig
    from inferwatch.scaler.metrics import ScalerCollector
    from inferwatch.scaler.policy import Decision

    collector = ScalerCollector(ScalerConfig(max_tracked_objects=2))
    for method, code in [("GetMetricSpec", "OK"), ("GetMetrics", "OK"), ("GetMetrics", "OK"), ("IsActive", "OK"),
                         ("GetMetrics", "UNAVAILABLE"), ("GetMetrics", "INVALID_ARGUMENT"), ("GetMetrics", "BOGUS")]:
        collector.rpc(method, code)
    for stage, failure in [("demand", None), ("demand", None), ("seasonal", None), ("demand", "refused"),
                           ("capacity_history", "no_data")]:
        collector.query(stage, failure)
    collector.decided("prod", "llama-70b", "meta/llama-70b", Decision(3.25, True, 41.5, 12.8, "forecast"), 0.004)
    collector.decided("prod", "qwen 7b\n", "qwen", Decision(0.0, False, 0.0, 20.0, "idle"), 0.003)
    collector.decided("staging", "over-the-cap", "other", Decision(1.0, True, 2.0, 2.0, "min"), 0.002)
    collector.stream(+1)
    text = generate_latest(registry_for(collector)).decode()
    return header("scaler after seven calls (one unknown code), five queries (two failed) and decisions for three "
                  "ScaledObjects, one beyond max_tracked_objects=2") + normalise(text)


def header(what: str) -> str:
    return (f"# Golden exposition ({Path(__file__).name}): {what}.\n"
            f"# Regenerate: {REGENERATE}. {MASK} = a value measuring real time.\n")


def metric_name(line: str) -> str:
    if line.startswith(("# HELP ", "# TYPE ")):
        return line.split(" ", 3)[2]
    return re.match(r"[^{\s]*", line).group(0)


def normalise(text: str) -> str:
    """Drop the test process's own families; mask values that measure real time."""
    out = []
    for line in text.splitlines():
        name = metric_name(line)
        if name.startswith(DROPPED_PREFIXES):
            continue
        if not line.startswith("#") and MASKED_SAMPLES.search(name):
            line = f"{line.rsplit(' ', 1)[0]} {MASK}"
        out.append(line)
    return "\n".join(out) + "\n"


# -- checking and updating -----------------------------------------------------------------------

def check(name: str, produce: Callable[[], str] | None = None) -> str | None:
    """None if tests/golden/<name> matches what the exporter serves now, else a readable diff."""
    actual = (produce or cases()[name])()
    path = GOLDEN_DIR / name
    if not path.exists():
        return f"{path} is missing; create it with: {REGENERATE}"
    expected = path.read_text()
    if actual == expected:
        return None
    diff = difflib.unified_diff(expected.splitlines(keepends=True), actual.splitlines(keepends=True),
                                fromfile=f"tests/golden/{name} (golden)", tofile=f"{name} (served now)")
    return (f"the exposition differs from tests/golden/{name}. If the change is intended, regenerate with "
            f"`{REGENERATE}` and review the diff.\n" + "".join(diff))


def update() -> list[str]:
    """Rewrite every golden file, delete stale ones; return the names that changed."""
    GOLDEN_DIR.mkdir(exist_ok=True)
    wanted = cases()
    changed = []
    for name, produce in wanted.items():
        path, text = GOLDEN_DIR / name, produce()
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            changed.append(name)
    for stale in sorted(GOLDEN_DIR.glob("*.txt")):
        if stale.name not in wanted:
            stale.unlink()
            changed.append(f"{stale.name} (deleted)")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check (default) or regenerate the golden expositions.")
    parser.add_argument("--update", action="store_true", help="rewrite tests/golden/*.txt from the current code")
    args = parser.parse_args(argv)
    logging.getLogger("inferwatch").setLevel(logging.ERROR)  # no-driver's "NVML unavailable" is expected here
    if args.update:
        changed = update()
        print("\n".join(f"updated {name}" for name in changed) or "golden files already up to date")
        return 0
    problems = [problem for name in cases() if (problem := check(name))]
    stale = sorted(p.name for p in GOLDEN_DIR.glob("*.txt") if p.name not in cases())
    problems += [f"tests/golden/{name} has no case any more; `{REGENERATE}` deletes it" for name in stale]
    print("\n".join(problems) or "golden files up to date")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
