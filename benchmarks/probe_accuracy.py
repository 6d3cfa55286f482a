"""Probe exporter: how far its client-side TTFT is from vLLM's own, and what one probe costs in CPU.

1. TTFT overhead against a real vLLM (CPU build, the tests' tiny random-weight model, on loopback).
   N sequential streamed completion requests go through `exporters.probe.client.run_request`, the
   code every probe case runs. Around each one, vLLM's /metrics is read: when
   `vllm:time_to_first_token_seconds_count` grew by exactly 1, the growth of `_sum` is vLLM's
   server-side TTFT of that request. Reported: client TTFT - server TTFT (median, p90, max).
   Target: median <= 5 ms. vLLM 0.32.0 starts its clock (`arrival_time`) when the API server
   starts rendering the prompt (chat template, tokenisation included) and stops it when its
   output processor handles the first engine-core output; so the difference is the probe's TCP
   connect and request send, vLLM's HTTP parsing and request validation before rendering, and,
   after the first token, detokenising, SSE framing, the socket back and the probe's chunk parsing.
2. Exporter CPU per probe: a 20-case module against the fake OpenAI server
   (`inferwatch.lab.fake_openai`, no token delay, a fixed short answer) running in ANOTHER process,
   so only the exporter's CPU is counted. In this process, each run is what GET /probe does:
   `server.probe_route` (parameter parsing, deadline, `ProbeCollector.probe_now` on its worker
   pool: the health checks and the 20 cases, assertions judged) and the encoded exposition, called
   with a stand-in for the HTTP handler (the kit's HTTP serving itself is not included). The
   probe runs on a worker thread, so CPU is `time.process_time()` (every thread of this process)
   around the call; nothing else runs here (no scheduled targets, no DNS: the target is an IP).
   Deterministic assertions only, and side by side the same module with a `similar` assertion per
   case (the numpy MiniLM embedder, one BLAS thread), if it is installed. Target: <= 50 ms.

Run: .venv/bin/python benchmarks/probe_accuracy.py [--requests 40] [--runs 30] [--skip-vllm]
Prints markdown tables; writes nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

from prometheus_client.exposition import choose_encoder

from inferwatch.config import ProbeExporterConfig
from inferwatch.exporters.probe import server as probe_server
from inferwatch.exporters.probe.client import run_request
from inferwatch.exporters.probe.collector import ProbeCollector
from inferwatch.exporters.probe.metrics import Families, render_probe
from inferwatch.exporters.probe.modules import Modules, load_modules
from inferwatch.lab.process import free_port, wait_until

TTFT = "vllm:time_to_first_token_seconds"
VLLM_MODEL = "tiny-llama"
VLLM_PROMPT = "Once upon a time"  # the slow tier's timing prompt: its first token decodes to text
FAKE_MODEL = "fake"
FAKE_ANSWER = '{"city": "Paris", "answer": 42}'  # seven words: seven streamed tokens in the fake
PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
                     "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")  # what Prometheus 2.42 sends


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


# -- 1. client TTFT against vLLM's own ---------------------------------------------------------

def ttft_counters(base_url: str) -> tuple[float, float]:
    """(count, sum) of vLLM's TTFT histogram, summed over its label sets."""
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=10) as response:
        text = response.read().decode()
    count = total = 0.0
    for line in text.splitlines():
        if line.startswith(f"{TTFT}_count"):
            count += float(line.rsplit(" ", 1)[1])
        elif line.startswith(f"{TTFT}_sum"):
            total += float(line.rsplit(" ", 1)[1])
    return count, total


def first_token_text(base_url: str, params: dict) -> str:
    """The text of the first generated token (non-streamed, max_tokens 1): empty would delay the client's TTFT."""
    body = json.dumps({**params, "model": VLLM_MODEL, "prompt": VLLM_PROMPT, "max_tokens": 1}).encode()
    request = urllib.request.Request(f"{base_url}/v1/completions", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)["choices"][0]["text"]


def bench_ttft(requests: int, warmup: int) -> tuple[str, list[str]]:
    from inferwatch.lab.engine import runtime
    from inferwatch.lab.engine.server import VllmServer

    model_dir = runtime.ensure_tiny_model(0)
    params = {"max_tokens": 4, "temperature": 0.0, "seed": 0, "ignore_eos": True}
    with tempfile.TemporaryDirectory() as tmp:
        server = VllmServer(model_dir, Path(tmp), VLLM_MODEL)
        started = time.monotonic()
        server.start()
        print(f"vLLM up in {time.monotonic() - started:.0f} s on {server.base_url}", file=sys.stderr)
        try:
            with urllib.request.urlopen(f"{server.base_url}/version", timeout=10) as response:
                version = json.load(response)["version"]
            if not first_token_text(server.base_url, params):
                print("warning: the first token decodes to no text; client TTFT includes later tokens",
                      file=sys.stderr)
            client, server_side, skipped = [], [], 0
            for i in range(warmup + requests):
                before = ttft_counters(server.base_url)
                outcome = run_request(server.base_url, "completion", VLLM_MODEL, VLLM_PROMPT, None, params, 30.0)
                after = counters_after(server.base_url, before)
                if i < warmup:
                    continue
                if not outcome.ok or outcome.ttft_seconds is None or after[0] - before[0] != 1:
                    skipped += 1
                    continue
                client.append(outcome.ttft_seconds)
                server_side.append(after[1] - before[1])
        finally:
            server.stop()
    diff = [(c - s) * 1000 for c, s in zip(client, server_side, strict=True)]
    rows = ["| requests | client TTFT p50 ms | vLLM TTFT p50 ms | difference p50 ms | p90 ms | max ms | min ms "
            "| skipped |", "|---|---|---|---|---|---|---|---|"]
    if diff:
        rows.append(f"| {len(diff)} | {statistics.median(client) * 1000:.2f} | "
                    f"{statistics.median(server_side) * 1000:.2f} | {statistics.median(diff):.2f} | "
                    f"{pct(diff, 90):.2f} | {max(diff):.2f} | {min(diff):.2f} | {skipped} |")
    return version, rows


def counters_after(base_url: str, before: tuple[float, float], wait: float = 2.0) -> tuple[float, float]:
    """The TTFT counters once the count has moved (vLLM records stats after it streams), or after `wait` s."""
    end = time.monotonic() + wait
    while True:
        after = ttft_counters(base_url)
        if after[0] != before[0] or time.monotonic() > end:
            return after
        time.sleep(0.005)


# -- 2. exporter CPU per probe -------------------------------------------------------------------

def modules_yaml(cases: int, similar: bool) -> str:
    """Two modules of `cases` cases each: deterministic assertions, and the same plus `similar`."""
    lines = ["modules:"]
    for name, with_similar in (("deterministic", False), ("similar", True)):
        if with_similar and not similar:
            continue
        lines += [f"  {name}:", "    kind: chat", f"    model: {FAKE_MODEL}", "    timeout_seconds: 30",
                  "    params: {max_tokens: 32, temperature: 0, seed: 0}",
                  "    system: Answer in JSON.",
                  '    health: {max_model_len: 4096, tokenizer_text: "Hello, world!"}', "    cases:"]
        for i in range(cases):
            lines += [f"      - name: case_{i:02d}", f"        prompt: 'Case {i}: the capital of France, as JSON.'",
                      "        assert:",
                      "          - {type: contains, value: Paris}",
                      "          - {type: icontains, value: paris}",
                      "          - {type: regex, value: '\"answer\": *42'}",
                      "          - {type: is-json}",
                      "          - {type: json-schema, schema: {type: object, required: [city],"
                      " properties: {city: {type: string, minLength: 1}}}}",
                      "          - {type: number, value: 42}",
                      "          - {type: length, max_chars: 200, max_tokens: 32}",
                      "          - {type: not-refusal}"]
            if with_similar:
                lines.append("          - {type: similar, value: 'The capital city is Paris.', threshold: 0.1}")
    return "\n".join(lines) + "\n"


def start_fake(port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "inferwatch.lab.fake_openai", "--port", str(port),
                             "--model", FAKE_MODEL, "--answer", FAKE_ANSWER])
    wait_until(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2).status == 200, 20,
               what="fake engine")
    return proc


def one_probe(route: Callable, module: str, port: int) -> tuple[float, float, int]:
    """(CPU s, wall s, exposition bytes) of one GET /probe's work; fails loudly unless the probe succeeded."""
    handler = SimpleNamespace(path=f"/probe?target=127.0.0.1:{port}&module={module}",
                              headers={"X-Prometheus-Scrape-Timeout-Seconds": "10", "Accept": PROMETHEUS_ACCEPT})
    cpu, wall = time.process_time(), time.perf_counter()
    status, _, body = route(handler)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    text = body.decode()
    if status != 200 or not any(line.startswith("inferwatch_probe_success{") and line.endswith(" 1.0")
                                for line in text.splitlines()):
        raise SystemExit(f"probe of module {module} did not succeed:\n{text[:3000]}")
    return cpu, wall, len(body)


def render_cpu(collector: ProbeCollector, module: str, port: int, times: int) -> float:
    """Median CPU ms of the exposition alone (families and the encoder /probe picks), for one probe's result."""
    result = collector.probe_now(module, f"http://127.0.0.1:{port}", 10.0)
    encoder, _ = choose_encoder(PROMETHEUS_ACCEPT)
    spent = []
    for _ in range(times):
        cpu = time.process_time()
        encoder(Families(render_probe(result)))
        spent.append(time.process_time() - cpu)
    return statistics.median(spent) * 1000


def bench_cpu(cases: int, runs: int, warmup: int) -> list[str]:
    if "numpy" not in sys.modules:  # one probe, one core: what the exporter sets before it loads the embedder
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    else:
        print("warning: numpy was loaded before OPENBLAS_NUM_THREADS could be set", file=sys.stderr)
    from inferwatch.exporters.probe import assertions
    from inferwatch.exporters.probe.assertions import load_embedder

    embedder = load_embedder()
    answer_cache = assertions.ANSWER_CACHE_SIZE
    if embedder is None:
        print("note: the embedder is not installed; the `similar` column is left out", file=sys.stderr)
    port = free_port()
    fake = start_fake(port)
    rows = ["| module | cases | assertions per case | runs | CPU p50 ms | CPU p90 ms | CPU max ms | CPU per case "
            "p50 ms | of which exposition p50 ms | wall p50 ms | wall p90 ms | exposition KiB |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "probe-modules.yaml"
            path.write_text(modules_yaml(cases, similar=embedder is not None))
            modules: Modules = load_modules(path)
        collector = ProbeCollector(ProbeExporterConfig(listen_address="127.0.0.1", port=0), modules,
                                   embedder=embedder)
        route = probe_server.probe_route(lambda: collector)
        try:
            # `similar` twice: answers unchanged since the last probe (temperature 0: the steady state;
            # the embedder caches answer vectors by SHA-256), and every answer new (cache off).
            variants = [(name, name, False) for name in modules.modules]
            if "similar" in modules.modules:
                variants.append(("similar, every answer new", "similar", True))
            for label, name, cold in variants:
                module = modules.modules[name]
                if embedder is not None:
                    embedder.answer_cache_size = 0 if cold else answer_cache  # 0: no cache
                for _ in range(warmup):
                    one_probe(route, name, port)
                measured = [one_probe(route, name, port) for _ in range(runs)]
                cpu = [m[0] * 1000 for m in measured]
                render = render_cpu(collector, name, port, runs)
                wall = [m[1] * 1000 for m in measured]
                rows.append(f"| {label} | {cases} | {len(module.cases[0].assertions)} | {runs} | "
                            f"{statistics.median(cpu):.1f} | {pct(cpu, 90):.1f} | {max(cpu):.1f} | "
                            f"{statistics.median(cpu) / cases:.2f} | {render:.1f} | {statistics.median(wall):.1f} | "
                            f"{pct(wall, 90):.1f} | {measured[-1][2] / 1024:.0f} |")
        finally:
            collector.close()
    finally:
        fake.terminate()
        fake.wait(10)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40, help="measured vLLM requests (after the warm-up)")
    parser.add_argument("--runs", type=int, default=30, help="measured probes per module (after the warm-up)")
    parser.add_argument("--cases", type=int, default=20, help="cases per probe module")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured requests / probes first")
    parser.add_argument("--skip-vllm", action="store_true", help="only the CPU part (no vLLM needed)")
    args = parser.parse_args()
    print(f"# Probe exporter benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          f"nproc {os.cpu_count()}, python {sys.version.split()[0]}")
    if not args.skip_vllm:
        version, rows = bench_ttft(args.requests, args.warmup)
        print(f"\n## Client TTFT vs vLLM {version} server TTFT (tiny model, completion, max_tokens 4, sequential)")
        print("\n".join(rows), flush=True)
    print(f"\n## Exporter CPU per probe (GET /probe's code path), fake engine in another process, "
          f"{args.warmup} warm-up probes")
    print("\n".join(bench_cpu(args.cases, args.runs, args.warmup)))


if __name__ == "__main__":
    main()
