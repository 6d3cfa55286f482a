"""The engine exporter against hostile endpoints: healthy neighbours stay visible, nothing piles up."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from helpers import scrape_samples

from inferwatch.config import EndpointConfig, EngineExporterConfig
from inferwatch.exporters.engine import server as engine_server
from inferwatch.exporters.engine.probe import probe
from inferwatch.lab.process import free_port, wait_until


def endpoint(name: str, url: str, **extra) -> EndpointConfig:
    return EndpointConfig(name=name, base_url=url, model="m", **extra)


def up_by_endpoint(seen: dict) -> dict[str, float]:
    return {dict(k)["endpoint"]: v for k, v in seen["inferwatch_engine_up"].items()}


@pytest.mark.parametrize(("mode", "reason"), [
    ("hang", "timeout"), ("trickle", "timeout"), ("slow_headers", "timeout"), ("reset", "malformed"),
    ("garbage", "malformed"), ("huge", "malformed"),
])
def test_each_hostile_mode_has_a_reason_and_a_real_duration(hostile, healthy, mode: str, reason: str) -> None:
    peer = hostile(mode)
    result = probe(endpoint(mode, peer.url), timeout=0.5)
    assert (result.healthy, result.failure) == (False, reason)
    assert result.duration <= 0.5 + 0.3, "the deadline covers connect, headers and body"
    if reason != "timeout":
        assert result.duration < 0.5, "a fast failure reports its real duration, not the deadline"


def test_a_reset_after_health_still_names_the_failure(hostile, healthy) -> None:
    refused = probe(endpoint("gone", f"http://127.0.0.1:{free_port()}"), timeout=0.5)
    assert refused.failure == "refused"


def test_whole_model_list_is_scanned_and_odd_ids_are_cleaned(hostile, healthy) -> None:
    many = probe(endpoint("many", hostile("many_models", count=10_000).url), timeout=2.0)
    assert (many.healthy, many.failure, many.serves_model) == (True, "", True), "the model listed 10,001st is found"
    assert len(many.served_models) == 32, "exported served models stay capped"
    odd = probe(endpoint("odd", hostile("odd_ids").url), timeout=2.0)
    assert (odd.failure, odd.serves_model) == ("", True)
    for served in odd.served_models:
        served.encode("utf-8")  # encodable: a lone surrogate would make every scrape HTTP 500
        assert len(served) <= 128 and "\x07" not in served and "\x1b" not in served


def test_odd_ids_do_not_break_the_scrape(hostile, healthy) -> None:
    config = EngineExporterConfig(listen_address="127.0.0.1", port=0, probe_timeout_seconds=1.0, endpoints=[
        endpoint("odd", hostile("odd_ids").url), endpoint("ok", healthy().url)])
    exporter = engine_server.start(config)
    try:
        seen = scrape_samples(exporter.url)
    finally:
        exporter.stop()
    assert up_by_endpoint(seen) == {"odd": 1.0, "ok": 1.0}


def test_auth_header_never_follows_a_redirect_to_another_origin(hostile, healthy, monkeypatch) -> None:
    monkeypatch.setenv("ENGINE_TOKEN", "Bearer s3cret")
    elsewhere = healthy()
    origin = hostile("redirect", location=elsewhere.url)
    result = probe(endpoint("r", origin.url, auth_header_env="ENGINE_TOKEN"), timeout=1.0)
    assert result.failure == "redirect"
    assert origin.requests and origin.requests[0]["authorization"] == "Bearer s3cret"
    assert not elsewhere.requests, "the other origin (another port) was never contacted"


def test_same_origin_redirect_is_followed_with_its_token(monkeypatch) -> None:
    """A proxy that moves /health to /healthz on the same host and port is followed."""
    from aiohttp import web

    from inferwatch.lab.fake_openai import Behaviour, FakeOpenAI

    seen: list[str | None] = []

    async def moved(request: web.Request, behaviour: Behaviour) -> web.StreamResponse:
        return web.Response(status=302, headers={"Location": "/healthz"})

    async def healthz(request: web.Request, behaviour: Behaviour) -> web.StreamResponse:
        seen.append(request.headers.get("Authorization"))
        return web.Response(status=200)

    monkeypatch.setenv("ENGINE_TOKEN", "Bearer s3cret")
    with FakeOpenAI(Behaviour(model="m", routes={"GET /health": moved, "GET /healthz": healthz})) as fake:
        result = probe(endpoint("s", fake.url, auth_header_env="ENGINE_TOKEN"), timeout=1.0)
    assert (result.healthy, result.failure) == (True, "")
    assert seen == ["Bearer s3cret"], "same origin: followed, with the token"


def test_many_hanging_and_trickling_endpoints_do_not_blind_healthy_ones(hostile, healthy) -> None:
    """70 hanging and 19 trickling endpoints next to 10 healthy ones: every healthy one is up on every scrape."""
    hang, trickle = hostile("hang"), hostile("trickle")
    healthy = [healthy() for _ in range(10)]
    endpoints = [endpoint(f"hang-{i}", hang.url) for i in range(70)]
    endpoints += [endpoint(f"trickle-{i}", trickle.url) for i in range(19)]
    endpoints += [endpoint(f"ok-{i}", peer.url) for i, peer in enumerate(healthy)]
    config = EngineExporterConfig(listen_address="127.0.0.1", port=0, probe_timeout_seconds=0.8,
                                  endpoints=endpoints)
    exporter = engine_server.start(config)
    try:
        scrape_samples(exporter.url)
        threads_after_first = threading.active_count()
        for _ in range(8):
            up = up_by_endpoint(scrape_samples(exporter.url))
            assert all(up[f"ok-{i}"] == 1.0 for i in range(10)), up
            assert all(up[f"hang-{i}"] == 0.0 for i in range(70))
            assert all(up[f"trickle-{i}"] == 0.0 for i in range(19))
        seen = scrape_samples(exporter.url)
        assert threading.active_count() <= threads_after_first + 2, "no thread per stuck probe"
        assert seen["inferwatch_engine_exporter_probes_skipped_total"] == {(): 0.0}
        failures = {(dict(k)["endpoint"].split("-")[0], dict(k)["reason"])
                    for k in seen["inferwatch_engine_probe_failures_total"]}
        # `stale` = a probe the loaded event loop finished just after the scrape stopped waiting.
        assert {reason for kind, reason in failures if kind != "ok"} <= {"timeout", "stale"}
        assert {reason for kind, reason in failures if kind == "ok"} <= {"stale"}
    finally:
        exporter.stop()


def test_sigterm_stops_the_exporter_promptly_while_probes_hang(hostile, healthy, tmp_path: Path) -> None:
    hang = hostile("hang")
    config = tmp_path / "c.yaml"
    port = free_port()
    endpoints = "".join(f"    - {{name: h{i}, base_url: '{hang.url}', model: m}}\n" for i in range(20))
    config.write_text(f"engine_exporter:\n  listen_address: 127.0.0.1\n  port: {port}\n  probe_timeout_seconds: 5\n"
                      f"  endpoints:\n{endpoints}")
    proc = subprocess.Popen([sys.executable, "-m", "inferwatch.cli", "engine-exporter", "-c", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).status == 200, 10,
                   what="exporter up")
        def scrape_until_stopped() -> None:
            with contextlib.suppress(OSError):  # the exporter stops while this scrape waits: it is cut off
                scrape_samples(f"http://127.0.0.1:{port}/metrics")

        threading.Thread(target=scrape_until_stopped, daemon=True).start()
        time.sleep(0.5)  # a scrape is now waiting on 20 hanging probes
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        stopped_after = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, proc.stderr.read().decode()[-2000:]
    assert stopped_after < 10  # the 2 s target is measured in benchmarks/soak.py, not asserted here
