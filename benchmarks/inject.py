"""Injector and engine-exporter benchmarks, each measured side by side in one run.

1. Open-loop injection against the fake OpenAI-compatible engine (`inferwatch.lab.fake_openai`, aiohttp,
   in another process):
   Poisson arrivals at several rates; schedule lag = dispatch time - scheduled time.
   Target: >= 500 requests/s held with p99 schedule lag <= 5 ms.
2. Engine exporter: 20 endpoints, 10 healthy, 5 slow (/health takes 5 s), 5 down (refused).
   Target: <= 1 s per scrape.

Run: .venv/bin/python benchmarks/inject.py [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
import urllib.request

from prometheus_client import CollectorRegistry, generate_latest

from inferwatch.config import EndpointConfig, EngineExporterConfig
from inferwatch.exporters.engine.collector import EngineCollector
from inferwatch.inject import schedule
from inferwatch.inject.client import Target
from inferwatch.inject.runner import run
from inferwatch.lab.fake_openai import DEFAULT_MODEL
from inferwatch.lab.stack import free_port, wait_until


def start_server(port: int, count: int = 1, health_delay: float = 0.0) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "inferwatch.lab.fake_openai", "--port", str(port), "--ports",
                             str(count), "--health-delay", str(health_delay)])
    url = f"http://127.0.0.1:{port + count - 1}/v1/models"
    wait_until(lambda: urllib.request.urlopen(url, timeout=2).status == 200, 20, what="fake engine")
    return proc


def consecutive_free_ports(count: int) -> int:
    while True:
        base = free_port()
        if base + count < 65000 and all(_free(base + i) for i in range(count)):
            return base


def _free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def bench_injector(rates: list[float], duration: float, runs: int) -> None:
    port = consecutive_free_ports(1)
    server = start_server(port)
    target = Target(f"http://127.0.0.1:{port}", DEFAULT_MODEL, timeout=30)
    print(f"## Injector: Poisson, {duration:.0f} s per run, 8-token prompts, 4-token outputs, median of {runs} runs")
    print("| offered req/s | completed req/s | lag p50 ms | lag p99 ms | lag max ms | errors | e2e p50 ms |")
    print("|---|---|---|---|---|---|---|")
    try:
        for rate in rates:
            rows = []
            for seed in range(runs):
                arrivals = schedule.poisson(rate, duration, 8, 4, seed=seed)
                report = asyncio.run(run(arrivals, target, concurrency=1024, progress=False))
                s = report.summary()
                rows.append((len(arrivals) / duration, s["throughput_requests_per_second"],
                             s["schedule_lag_seconds"]["p50"] * 1000, s["schedule_lag_seconds"]["p99"] * 1000,
                             max(report.lags) * 1000, sum(s["errors"].values()), s["e2e_seconds"]["p50"] * 1000))
            med = [statistics.median(col) for col in zip(*rows, strict=True)]
            print(f"| {med[0]:.0f} | {med[1]:.0f} | {med[2]:.2f} | {med[3]:.2f} | {med[4]:.2f} | {med[5]:.0f} "
                  f"| {med[6]:.2f} |", flush=True)
    finally:
        server.terminate()
        server.wait(10)


def bench_engine_exporter(scrapes: int, timeout: float) -> None:
    healthy_port = consecutive_free_ports(10)
    healthy = start_server(healthy_port, 10)
    slow_port = consecutive_free_ports(5)
    slow = start_server(slow_port, 5, health_delay=5.0)
    endpoints = [EndpointConfig(f"ok-{i}", f"http://127.0.0.1:{healthy_port + i}", DEFAULT_MODEL) for i in range(10)]
    endpoints += [EndpointConfig(f"slow-{i}", f"http://127.0.0.1:{slow_port + i}", DEFAULT_MODEL) for i in range(5)]
    endpoints += [EndpointConfig(f"down-{i}", f"http://127.0.0.1:{free_port()}", DEFAULT_MODEL) for i in range(5)]
    collector = EngineCollector(EngineExporterConfig(probe_timeout_seconds=timeout, endpoints=endpoints))
    registry = CollectorRegistry()
    registry.register(collector)
    times = []
    try:
        for _ in range(scrapes):
            start = time.perf_counter()
            text = generate_latest(registry).decode()
            times.append(time.perf_counter() - start)
        up = sum(1 for line in text.splitlines() if line.startswith("inferwatch_engine_up{") and line.endswith(" 1.0"))
        print(f"\n## Engine exporter: 20 endpoints (10 healthy, 5 slow, 5 down), probe_timeout {timeout} s, "
              f"{scrapes} scrapes")
        print("| scrape p50 s | scrape max s | endpoints up |")
        print("|---|---|---|")
        print(f"| {statistics.median(times):.3f} | {max(times):.3f} | {up} |")
    finally:
        collector.close()
        healthy.terminate()
        slow.terminate()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rates", type=float, nargs="+", default=[250, 500, 750])
    parser.add_argument("--scrapes", type=int, default=20)
    args = parser.parse_args()
    bench_injector(args.rates, args.duration, args.runs)
    bench_engine_exporter(args.scrapes, timeout=0.8)


if __name__ == "__main__":
    main()
