"""`inferwatch demo`: the local stack on loopback, so an operator sees the suite work end to end.

Today: the GPU exporter on simulated GPUs, a real Prometheus scraping it, a real Alertmanager.
It prints what Prometheus sees, then stays up until Ctrl-C (or `--duration`), and stops
everything it started.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

from inferwatch.cli import wait_for_signal
from inferwatch.config import InferwatchConfig
from inferwatch.exporters.gpu import server as gpu_server
from inferwatch.stack import Alertmanager, Prometheus, StackError, free_port

DEMO_SCENARIO = "h100x2"


def run_demo(config: InferwatchConfig, workdir: str | None = None, duration: float = 0) -> int:
    root = Path(workdir or tempfile.mkdtemp(prefix="inferwatch-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"inferwatch demo: working in {root}")
    started: list = []
    try:
        gpu_cfg = dataclasses.replace(config.gpu_exporter, listen_address="127.0.0.1", port=free_port(),
                                      simulate=config.gpu_exporter.simulate or DEMO_SCENARIO)
        gpu = gpu_server.start(gpu_cfg)
        started.append(gpu)
        print(f"  GPU exporter   http://127.0.0.1:{gpu.port}/metrics  (simulated: {gpu_cfg.simulate})")

        alertmanager = Alertmanager(root / "alertmanager").start()
        started.append(alertmanager)
        print(f"  Alertmanager   {alertmanager.url}")

        prometheus = Prometheus(root / "prometheus", scrape_interval="5s", evaluation_interval="5s",
                                alertmanager_urls=[alertmanager.url])
        prometheus.scrape_configs = [
            {"job_name": "inferwatch-gpu", "static_configs": [{"targets": [f"127.0.0.1:{gpu.port}"]}]},
        ]
        prometheus.start()
        started.append(prometheus)
        print(f"  Prometheus     {prometheus.url}")

        prometheus.wait_for_series('up{job="inferwatch-gpu"} == 1', timeout=30)
        prometheus.wait_for_series("inferwatch_gpu_up", timeout=30)
        print_summary(prometheus)
        print("\nStack is up. Press Ctrl-C to stop." if not duration else f"\nStopping in {duration:.0f} s.")
    except StackError as exc:
        print(f"inferwatch demo: {exc}")
        _stop_all(started)
        return 1
    wait_for_signal(lambda: _stop_all(started), timeout=duration or None)
    print("inferwatch demo: stopped everything it started.")
    return 0


def print_summary(prometheus: Prometheus) -> None:
    print("\nWhat Prometheus sees:")
    for target in prometheus.targets():
        print(f"  target {target['labels']['job']:18} {target['scrapeUrl']:40} {target['health']}")
    rows = [
        ("GPUs up", "sum(inferwatch_gpu_up)"),
        ("mean GPU utilisation", "avg(inferwatch_gpu_utilization_ratio)"),
        ("framebuffer used (GiB)", "sum(inferwatch_gpu_memory_used_bytes) / 2^30"),
        ("power draw (W)", "sum(inferwatch_gpu_power_usage_watts)"),
    ]
    for label, expr in rows:
        value = prometheus.query_value(expr)
        print(f"  {label:24} {'-' if value is None else f'{value:.2f}'}")


def _stop_all(started: list) -> None:
    for thing in reversed(started):
        try:
            thing.stop()
        except Exception as exc:  # keep stopping the rest
            print(f"  (stopping {type(thing).__name__} failed: {exc})")
    started.clear()
