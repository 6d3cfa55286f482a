"""The log exporter following the real vLLM server's log (CPU build), with request logging on.

The session's engine is restarted with `--enable-log-requests --enable-log-outputs` at DEBUG (so
prompts and outputs are in its log), then: `inferwatch inject --fault error-burst` -> every HTTP 400
the server logged is one `request_rejected`; a request with a secret prompt -> the prompt's lines are
redacted and the secret is nowhere the exporter answers; the EngineCore process killed -> the
engine-death lines counted as `engine_dead`. The engine is restarted as the session had it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from helpers import scrape_samples

from inferwatch.config import LogExporterConfig, LogSourceConfig
from inferwatch.exporters.logs import server as log_server
from inferwatch.lab.process import wait_until

pytestmark = pytest.mark.slow

LOGGING = ["--enable-log-requests", "--enable-log-outputs"]
SECRET = "the launch code is TANGO-7731"


@pytest.fixture(scope="module")
def followed(vllm_engine):
    vllm_engine.stop()
    server = vllm_engine.start(extra_args=LOGGING, env={"VLLM_LOGGING_LEVEL": "DEBUG"})
    config = LogExporterConfig(listen_address="127.0.0.1", port=0,
                               sources=[LogSourceConfig(name="vllm-0", file=str(server.log_path))])
    exporter = log_server.start(config)
    base = exporter.url.removesuffix("/metrics")
    try:
        wait_until(lambda: value(base, "inferwatch_log_exporter_source_up") == 1, 10, what="following")
        yield vllm_engine, server, base
    finally:
        exporter.stop()
        vllm_engine.stop()
        vllm_engine.start()  # as the rest of the session expects it


def value(base: str, name: str, **labels: str) -> float:
    samples = scrape_samples(f"{base}/metrics").get(name, {})
    return sum(v for k, v in samples.items() if labels.items() <= dict(k).items())


def lines_like(path: Path, needle: str, start: int) -> int:
    with path.open("rb") as log:
        log.seek(start)
        return sum(needle.encode() in line for line in log)


def test_error_burst_lines_are_request_rejected(followed) -> None:
    _, server, base = followed
    start = server.log_path.stat().st_size
    lines_before = value(base, "inferwatch_log_exporter_lines_total")
    done = subprocess.run([sys.executable, "-m", "inferwatch.cli", "inject", "--url", server.base_url, "--rate", "8",
                           "--duration", "9", "--fault", "error-burst", "--max-output-tokens", "2", "--no-progress"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rejected = lambda: lines_like(server.log_path, '" 400 Bad Request', start)  # noqa: E731
    counted = lambda: value(base, "inferwatch_engine_log_events_total", **{"class": "request_rejected"})  # noqa: E731
    try:
        wait_until(lambda: rejected() > 0 and counted() == rejected(), 15, what="every 400 the server logged counted")
    except Exception:
        with server.log_path.open("rb") as log:
            log.seek(start)
            tail = [line for line in log if b"400" in line or b"ERROR" in line][:20]
        raise AssertionError(f"{counted()} counted, {rejected()} logged; {tail}") from None
    assert value(base, "inferwatch_log_exporter_lines_total") - lines_before >= rejected()
    assert value(base, "inferwatch_engine_log_events_total", **{"class": "other_error"}) == 0


def test_prompt_and_output_text_never_leave_the_log(followed) -> None:
    _, server, base = followed
    start = server.log_path.stat().st_size
    body = f'{{"model": "tiny-llama", "prompt": "{SECRET}", "max_tokens": 4}}'.encode()
    request = urllib.request.Request(f"{server.base_url}/v1/completions", data=body,
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=60).read()
    wait_until(lambda: lines_like(server.log_path, "TANGO-7731", start) > 0, 15, what="vLLM logged the prompt")
    carried = lines_like(server.log_path, "TANGO-7731", start)
    wait_until(lambda: value(base, "inferwatch_log_exporter_lines_redacted_total") >= carried, 15, what="redacted")
    answers = [urllib.request.urlopen(f"{base}{path}", timeout=5).read().decode() for path in ("/metrics", "/errors")]
    assert all("TANGO" not in answer for answer in answers)


def test_a_killed_engine_core_is_engine_dead(followed) -> None:
    _, server, base = followed
    core = subprocess.run(["pgrep", "-g", str(os.getpgid(server.pid)), "-f", "VLLM::EngineCore"],
                          capture_output=True, text=True).stdout.split()
    assert core, "the engine core process of the session's vLLM"
    os.kill(int(core[0]), signal.SIGKILL)
    wait_until(lambda: value(base, "inferwatch_engine_log_events_total", **{"class": "engine_dead"}) >= 1, 60,
               what="engine death counted")
    assert value(base, "inferwatch_engine_log_last_event_timestamp_seconds", **{"class": "engine_dead"}) > 0
