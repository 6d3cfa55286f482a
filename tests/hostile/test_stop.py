"""SIGTERM stops every exporter promptly, whatever its probes or driver calls are stuck in."""

from __future__ import annotations

import contextlib
import http.client
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import yaml

from inferwatch.lab.process import free_port, wait_until

STUCK_SECONDS = 600  # a hung driver call: far longer than any stop may take


def start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "inferwatch.cli", "--log-level", "error", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def stop_seconds(proc: subprocess.Popen, port: int) -> float:
    """Scrape once in the background (so a call is stuck), then SIGTERM; seconds until exit."""
    wait_until(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).status == 200, 20,
               what="exporter up")
    def scrape() -> None:
        with contextlib.suppress(OSError, http.client.HTTPException):  # the exporter goes away mid-scrape
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30).read()

    threading.Thread(target=scrape, daemon=True).start()
    time.sleep(1.0)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    return time.monotonic() - started


def test_gpu_exporter_exits_while_an_nvml_call_hangs(tmp_path: Path) -> None:
    scenario = tmp_path / "hung.yaml"
    scenario.write_text(yaml.safe_dump({"gpus": [{"profile": "h100-80gb", "count": 1,
                                                  "hang": {"nvmlDeviceGetPowerUsage": STUCK_SECONDS}}]}))
    port = free_port()
    proc = start(["gpu-exporter", "--simulate", str(scenario), "--listen-address", "127.0.0.1", "--port", str(port)])
    seconds = stop_seconds(proc, port)
    assert proc.returncode == 0, proc.stderr.read().decode()[-2000:]
    assert seconds < 5, f"took {seconds:.1f} s: a stuck NVML thread kept the process alive"


def test_engine_exporter_exits_while_probes_hang(tmp_path: Path) -> None:
    from inferwatch.lab.hostile import HostilePeer

    hang = HostilePeer("hang").start()
    try:
        port = free_port()
        endpoints = "".join(f"    - {{name: h{i}, base_url: '{hang.url}', model: m}}\n" for i in range(50))
        config = tmp_path / "c.yaml"
        config.write_text(f"engine_exporter:\n  listen_address: 127.0.0.1\n  port: {port}\n"
                          f"  probe_timeout_seconds: 20\n  endpoints:\n{endpoints}")
        proc = start(["engine-exporter", "-c", str(config)])
        seconds = stop_seconds(proc, port)
    finally:
        hang.stop()
    assert proc.returncode == 0, proc.stderr.read().decode()[-2000:]
    assert seconds < 5, f"took {seconds:.1f} s"
