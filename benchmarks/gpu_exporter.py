"""GPU exporter cost per scrape for 1, 8 and 64 simulated GPUs.

Two measurements, side by side in one run:
- in a separate exporter process (as deployed): HTTP scrape latency, process CPU per scrape
  (exporter + simulated NVML) and resident memory after the scrapes;
- in this process: exporter CPU per scrape with the simulated NVML's own CPU time subtracted
  (each simulated call is timed with the worker thread's CPU clock), which is the figure the
  target "<= 10 ms of exporter CPU for 8 GPUs, NVML excluded" speaks of.

Run: .venv/bin/python benchmarks/gpu_exporter.py [--scrapes 200]
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry, generate_latest

from inferwatch.config import GpuExporterConfig
from inferwatch.exporters.gpu.collector import GpuCollector
from inferwatch.exporters.gpu.simnvml import SimulatedNvml
from inferwatch.lab.stack import free_port, wait_until

CLK_TCK = os.sysconf("SC_CLK_TCK")


def scenario(gpus: int) -> dict:
    processes = [{"pid": 10_000 + i, "used_bytes": 2**30} for i in range(4)]
    return {"gpus": [{"profile": "h100-80gb", "count": gpus, "utilization_gpu": 80, "processes": processes}]}


def timed_sim(gpus: int) -> tuple[SimulatedNvml, list[float]]:
    """A simulated NVML whose every call adds its thread CPU time to `spent[0]`."""
    sim = SimulatedNvml.from_scenario(scenario(gpus))
    spent = [0.0]
    for name in dir(SimulatedNvml):
        if not name.startswith("nvml") or name.startswith("nvmlEventSetWait"):
            continue
        original = getattr(sim, name)

        @functools.wraps(original)
        def wrapper(*args, _fn=original, **kwargs):
            start = time.thread_time()
            try:
                return _fn(*args, **kwargs)
            finally:
                spent[0] += time.thread_time() - start

        setattr(sim, name, wrapper)
    return sim, spent


def in_process_cpu(gpus: int, scrapes: int) -> dict[str, float]:
    sim, spent = timed_sim(gpus)
    collector = GpuCollector(GpuExporterConfig(hostname="bench", xid_events=False, process_attribution=False), sim)
    registry = CollectorRegistry()
    registry.register(collector)
    generate_latest(registry)  # warm-up: init, identities, unsupported probes learned
    total, nvml = [], []
    for _ in range(scrapes):
        before_cpu, before_nvml = time.process_time(), spent[0]
        generate_latest(registry)
        total.append(time.process_time() - before_cpu)
        nvml.append(spent[0] - before_nvml)
    collector.close()
    exporter_only = [t - n for t, n in zip(total, nvml, strict=True)]
    return {
        "cpu_total_ms": statistics.median(total) * 1000,
        "cpu_nvml_ms": statistics.median(nvml) * 1000,
        "cpu_exporter_ms": statistics.median(exporter_only) * 1000,
    }


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def subprocess_exporter(gpus: int, scrapes: int, workdir: Path) -> dict[str, float]:
    path = workdir / f"bench-{gpus}.yaml"
    path.write_text(yaml.safe_dump(scenario(gpus)))
    port = free_port()
    exe = Path(sys.executable).parent / "inferwatch"
    proc = subprocess.Popen([str(exe), "--log-level", "warning", "gpu-exporter", "--simulate", str(path),
                             "--port", str(port), "--listen-address", "127.0.0.1"])
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        wait_until(lambda: urllib.request.urlopen(url, timeout=5).status == 200, 30, what="exporter")
        latencies = []
        cpu_before = proc_cpu_seconds(proc.pid)
        for _ in range(scrapes):
            start = time.perf_counter()
            with urllib.request.urlopen(url, timeout=30) as response:
                size = len(response.read())
            latencies.append(time.perf_counter() - start)
        cpu = (proc_cpu_seconds(proc.pid) - cpu_before) / scrapes
        return {
            "latency_p50_ms": statistics.median(latencies) * 1000,
            "latency_p99_ms": sorted(latencies)[int(0.99 * (len(latencies) - 1))] * 1000,
            "process_cpu_ms": cpu * 1000,
            "rss_mb": proc_rss_mb(proc.pid),
            "bytes": size,
        }
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scrapes", type=int, default=200)
    parser.add_argument("--gpus", type=int, nargs="+", default=[1, 8, 64])
    args = parser.parse_args()
    print(f"# GPU exporter benchmark: {args.scrapes} scrapes per size, medians; python {sys.version.split()[0]}")
    header = ("gpus", "scrape p50 ms", "scrape p99 ms", "process CPU ms", "exporter CPU ms (NVML excl.)",
              "sim NVML CPU ms", "RSS MB", "exposition KiB")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    with tempfile.TemporaryDirectory() as tmp:
        for gpus in args.gpus:
            inproc = in_process_cpu(gpus, args.scrapes)
            sub = subprocess_exporter(gpus, args.scrapes, Path(tmp))
            row = (gpus, f"{sub['latency_p50_ms']:.2f}", f"{sub['latency_p99_ms']:.2f}", f"{sub['process_cpu_ms']:.2f}",
                   f"{inproc['cpu_exporter_ms']:.2f}", f"{inproc['cpu_nvml_ms']:.2f}", f"{sub['rss_mb']:.1f}",
                   f"{sub['bytes'] / 1024:.0f}")
            print("| " + " | ".join(str(c) for c in row) + " |", flush=True)


if __name__ == "__main__":
    main()
