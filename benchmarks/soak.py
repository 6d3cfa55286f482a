"""Soak: the engine exporter scraped for N minutes against a mix of hostile and healthy endpoints.

Runs the real `inferwatch engine-exporter` process against 70 hanging, 19 trickling (1 byte per
0.3 s) and 10 healthy endpoints (the issue's numbers), scrapes it once a second like Prometheus,
and reports per minute: scrape time (median, max), healthy endpoints seen up, the exporter's
thread count, RSS and open file descriptors. At the end it sends SIGTERM and reports how long the process took to exit.

Run: .venv/bin/python benchmarks/soak.py [--minutes 10] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from inferwatch.lab.fake_openai import Behaviour, FakeOpenAI
from inferwatch.lab.hostile import HostilePeer
from inferwatch.lab.process import free_port, wait_until

HANGING, TRICKLING, HEALTHY = 70, 19, 10
DEADLINE = 0.8


def proc_status(pid: int) -> tuple[int, float, int]:
    """(threads, RSS MiB, open file descriptors) of a process, from /proc."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["Threads"]), int(fields["VmRSS"].split()[0]) / 1024, len(list(Path(f"/proc/{pid}/fd").iterdir()))


def healthy_up(text: str) -> int:
    for family in text_string_to_metric_families(text):
        if family.name == "inferwatch_engine_up":
            return sum(1 for s in family.samples if s.labels["endpoint"].startswith("ok-") and s.value == 1)
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--json", help="write the per-minute rows here")
    args = parser.parse_args()

    hang, trickle = HostilePeer("hang").start(), HostilePeer("trickle", interval=0.3).start()
    healthy = [FakeOpenAI(Behaviour(model="m")).start() for _ in range(HEALTHY)]
    endpoints = [(f"hang-{i}", hang.url) for i in range(HANGING)] + [(f"trickle-{i}", trickle.url)
                                                                      for i in range(TRICKLING)]
    endpoints += [(f"ok-{i}", fake.url) for i, fake in enumerate(healthy)]
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="inferwatch-soak-"))
    config = folder / "inferwatch.yaml"
    config.write_text(f"engine_exporter:\n  listen_address: 127.0.0.1\n  port: {port}\n"
                      f"  probe_timeout_seconds: {DEADLINE}\n  endpoints:\n"
                      + "".join(f"    - {{name: {name}, base_url: '{url}', model: m}}\n" for name, url in endpoints))
    exporter = subprocess.Popen([sys.executable, "-m", "inferwatch.cli", "--log-level", "warning", "engine-exporter",
                                 "-c", str(config)])
    url = f"http://127.0.0.1:{port}/metrics"
    wait_until(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).status == 200, 30,
               what="engine exporter")
    rows = []
    try:
        end = time.monotonic() + args.minutes * 60
        while time.monotonic() < end:
            minute_end = min(end, time.monotonic() + 60)
            times, ups = [], []
            while time.monotonic() < minute_end:
                started = time.monotonic()
                with urllib.request.urlopen(url, timeout=10) as response:
                    text = response.read().decode()
                times.append(time.monotonic() - started)
                ups.append(healthy_up(text))
                time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
            threads, rss, fds = proc_status(exporter.pid)
            row = {"minute": len(rows) + 1, "scrapes": len(times), "scrape_p50_s": statistics.median(times),
                   "scrape_max_s": max(times), "healthy_up_min": min(ups), "threads": threads, "rss_mib": rss,
                   "open_fds": fds}
            rows.append(row)
            print(json.dumps(row), flush=True)
        started = time.monotonic()
        exporter.send_signal(signal.SIGTERM)
        exporter.wait(30)
        stop_seconds = time.monotonic() - started
    finally:
        if exporter.poll() is None:
            exporter.kill()
        hang.stop()
        trickle.stop()
        for fake in healthy:
            fake.stop()
    summary = {"endpoints": {"hanging": HANGING, "trickling": TRICKLING, "healthy": HEALTHY},
               "deadline_s": DEADLINE, "minutes": rows, "sigterm_to_exit_s": stop_seconds,
               "exit_code": exporter.returncode}
    print(json.dumps({k: v for k, v in summary.items() if k != "minutes"}))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
