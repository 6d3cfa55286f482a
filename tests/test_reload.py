"""SIGHUP reloads an exporter's config: new settings from the next scrape, state and counts kept."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import scrape_samples

from inferwatch.lab.fake_openai import Behaviour, FakeOpenAI
from inferwatch.lab.process import free_port, wait_until


def value(seen: dict, name: str, **labels: str) -> float | None:
    for key, v in seen.get(name, {}).items():
        if labels.items() <= dict(key).items():
            return v
    return None


@pytest.fixture
def engines():
    fakes = [FakeOpenAI(Behaviour(model="m")).start() for _ in range(2)]
    yield fakes
    for fake in fakes:
        fake.stop()


def engine_config(path: Path, port: int, urls: list[str]) -> None:
    endpoints = "".join(f"    - {{name: e{i}, base_url: '{url}', model: m, model_version: v1}}\n"
                        for i, url in enumerate(urls))
    path.write_text(f"engine_exporter:\n  listen_address: 127.0.0.1\n  port: {port}\n  endpoints:\n{endpoints}")


def test_engine_exporter_reloads_on_sighup(tmp_path: Path, engines) -> None:
    config, port = tmp_path / "inferwatch.yaml", free_port()
    engine_config(config, port, [engines[0].url])
    proc = subprocess.Popen([sys.executable, "-m", "inferwatch.cli", "engine-exporter", "-c", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        first = wait_until(lambda: scrape_samples(url), 20, what="engine exporter")
        since = value(first, "inferwatch_model_version_since_timestamp_seconds", endpoint="e0")
        assert set(dict(k)["endpoint"] for k in first["inferwatch_engine_up"]) == {"e0"}

        engine_config(config, port, [engines[0].url, engines[1].url])
        proc.send_signal(signal.SIGHUP)
        seen = wait_until(lambda: (s := scrape_samples(url)) and len(s.get("inferwatch_engine_up", {})) == 2 and s, 20,
                          what="the reloaded endpoint list")
        assert value(seen, "inferwatch_engine_up", endpoint="e1") == 1.0
        assert value(seen, "inferwatch_engine_exporter_config_last_reload_success") == 1.0
        # the reloaded collector keeps the running self-metrics: the count goes on, it does not restart at 1
        scrapes = "inferwatch_engine_exporter_scrapes_total"
        assert value(seen, scrapes) > value(first, scrapes) >= 1, "self-metrics keep counting"
        assert value(seen, "inferwatch_model_version_since_timestamp_seconds", endpoint="e0") == since, \
            "a reload is not a deploy"

        config.write_text("engine_exporter:\n  port: not-a-port\n")
        proc.send_signal(signal.SIGHUP)
        bad = wait_until(lambda: (s := scrape_samples(url))
                         and value(s, "inferwatch_engine_exporter_config_last_reload_success") == 0.0 and s, 20,
                         what="the failed reload")
        assert len(bad["inferwatch_engine_up"]) == 2, "a bad file keeps the running config"
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=15)
    assert proc.returncode == 0
    assert "config reload failed, keeping the running config:" in stderr.decode()


def test_gpu_exporter_reloads_its_naming(tmp_path: Path) -> None:
    config, port = tmp_path / "inferwatch.yaml", free_port()
    base = "gpu_exporter:\n  listen_address: 127.0.0.1\n  port: {port}\n  xid_events: false\n  simulate: h100x2\n"
    config.write_text(base.format(port=port))
    proc = subprocess.Popen([sys.executable, "-m", "inferwatch.cli", "gpu-exporter", "-c", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        first = wait_until(lambda: scrape_samples(url), 20, what="GPU exporter")
        assert "inferwatch_gpu_utilization_ratio" in first
        config.write_text(base.format(port=1) + "  naming: dcgm\n")  # the port change needs a restart
        proc.send_signal(signal.SIGHUP)
        seen = wait_until(lambda: (s := scrape_samples(url)) and "DCGM_FI_DEV_GPU_UTIL" in s and s, 20,
                          what="DCGM names after the reload")
        assert "inferwatch_gpu_utilization_ratio" not in seen
        assert value(seen, "inferwatch_gpu_exporter_config_last_reload_success") == 1.0
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=15)
    assert proc.returncode == 0
    assert "port need a restart; keeping the running values" in stderr.decode()
