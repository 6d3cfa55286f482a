"""The log exporter on real files and a real stdin pipe: following across rotation and truncation, the
stream ending, counts and templates on /metrics and /errors, `inferwatch errors top`, config errors.

The real vLLM tier is tests/test_log_vllm.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import scrape_samples

from inferwatch.config import ConfigError, LogExporterConfig, LogSourceConfig, parse_config
from inferwatch.exporters.logs import server as log_server
from inferwatch.lab.process import free_port, wait_until

EXE = Path(sys.executable).parent / "inferwatch"
OOM = ("(EngineCore_0 pid={pid}) ERROR 12-02 13:0{n}:01 [core.py:700] torch.OutOfMemoryError: CUDA out of memory."
       " Tried to allocate {n}.00 GiB. GPU 0 has a total capacity of 79.1 GiB")
REJECTED = 'INFO:     127.0.0.1:{n} - "POST /v1/completions HTTP/1.1" 400 Bad Request'
STATS = ("(APIServer pid=1) INFO 12-02 13:07:58 [loggers.py:335] Engine 000: Avg prompt throughput: 64.0 tokens/s,"
         " Avg generation throughput: 32.0 tokens/s, Running: 0 reqs, Waiting: 0 reqs")


def events(url: str, source: str) -> dict[str, float]:
    samples = scrape_samples(f"{url}/metrics")["inferwatch_engine_log_events_total"]
    return {dict(k)["class"]: v for k, v in samples.items() if dict(k)["source"] == source and v}


def sample(url: str, name: str, **labels: str) -> float:
    found = scrape_samples(f"{url}/metrics")[name]
    return next(v for k, v in found.items() if labels.items() <= dict(k).items())


def append(path: Path, *lines: str) -> None:
    with path.open("a") as out:
        out.write("".join(line + "\n" for line in lines))


@pytest.fixture
def exporter(tmp_path: Path):
    log = tmp_path / "vllm.log"
    log.write_text("old line before the exporter started: never counted ERROR\n")
    config = LogExporterConfig(listen_address="127.0.0.1", port=0, max_line_bytes=4096,
                               sources=[LogSourceConfig(name="vllm-0", file=str(log))])
    running = log_server.start(config)
    running.base = running.url.removesuffix("/metrics")  # type: ignore[attr-defined]
    wait_until(lambda: sample(running.base, "inferwatch_log_exporter_source_up", source="vllm-0") == 1, 10,
               what="source followed")
    yield running, log
    running.stop()


def test_follows_a_file_across_rotation_and_truncation(exporter) -> None:
    running, log = exporter
    append(log, STATS, REJECTED.format(n=1), OOM.format(pid=7, n=1))
    wait_until(lambda: events(running.base, "vllm-0") == {"request_rejected": 1, "oom_gpu": 1}, 10, what="counted")
    log.rename(log.with_suffix(".log.1"))  # logrotate: rename, then a new file
    append(log.with_suffix(".log.1"), REJECTED.format(n=2))  # the writer still had the old file open
    append(log, REJECTED.format(n=3), OOM.format(pid=8, n=2))
    wait_until(lambda: events(running.base, "vllm-0") == {"request_rejected": 3, "oom_gpu": 2}, 10, what="rotated")
    log.write_text("")  # copytruncate
    append(log, OOM.format(pid=9, n=3))
    wait_until(lambda: events(running.base, "vllm-0") == {"request_rejected": 3, "oom_gpu": 3}, 10, what="truncated")
    assert sample(running.base, "inferwatch_log_exporter_lines_total", source="vllm-0") == 7
    top = json.loads(subprocess.run([str(EXE), "errors", "top", "--url", running.base, "--json"],
                                    capture_output=True, text=True, check=True).stdout)
    oom = [t for t in top["sources"]["vllm-0"] if t["class"] == "oom_gpu"]
    assert len(oom) == 1 and oom[0]["count"] == 3, "three OOMs, different pids and sizes: one template"
    assert "GiB" in oom[0]["template"] and "79.1" not in oom[0]["template"]
    table = subprocess.run([str(EXE), "errors", "top", "--url", running.base], capture_output=True, text=True)
    assert table.returncode == 0 and "oom_gpu" in table.stdout and "vllm-0: 2 template(s)" in table.stdout


def test_long_and_binary_lines_are_cut_or_dropped_not_fatal(exporter) -> None:
    running, log = exporter
    append(log, "ERROR " + "x" * 10_000, "\x00\x01binary ERROR", OOM.format(pid=1, n=1))
    wait_until(lambda: events(running.base, "vllm-0").get("oom_gpu") == 1, 10, what="the line after")
    assert sample(running.base, "inferwatch_log_exporter_lines_dropped_total", source="vllm-0", reason="too_long") == 1
    assert sample(running.base, "inferwatch_log_exporter_lines_dropped_total", source="vllm-0", reason="binary") == 1
    assert events(running.base, "vllm-0") == {"other_error": 1, "oom_gpu": 1}


def test_a_missing_file_is_a_state_and_is_picked_up_when_it_appears(tmp_path: Path) -> None:
    log = tmp_path / "later.log"
    config = LogExporterConfig(listen_address="127.0.0.1", port=0,
                               sources=[LogSourceConfig(name="late", file=str(log))])
    running = log_server.start(config)
    running.base = running.url.removesuffix("/metrics")  # type: ignore[attr-defined]
    try:
        assert sample(running.base, "inferwatch_log_exporter_source_state", source="late", state="missing") == 1
        assert sample(running.base, "inferwatch_log_exporter_source_up", source="late") == 0
        log.write_text("")
        wait_until(lambda: sample(running.base, "inferwatch_log_exporter_source_up", source="late") == 1, 15,
                   what="the file appeared")
    finally:
        running.stop()


def test_stdin_stream_ending_is_reported_and_the_exporter_keeps_serving(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen([str(EXE), "--log-level", "warning", "log-exporter", "--stdin", "kubectl",
                             "--listen-address", "127.0.0.1", "--port", str(port)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _up(url), 20, what="exporter up")
        proc.stdin.write((OOM.format(pid=1, n=1) + "\n" + REJECTED.format(n=1) + "\n").encode())
        proc.stdin.flush()
        wait_until(lambda: events(url, "kubectl") == {"oom_gpu": 1, "request_rejected": 1}, 10, what="stdin counted")
        proc.stdin.close()  # `kubectl logs -f` ended: the pod went away
        wait_until(lambda: sample(url, "inferwatch_log_exporter_source_state", source="kubectl", state="ended") == 1,
                   10, what="ended")
        assert sample(url, "inferwatch_log_exporter_source_ended_total", source="kubectl") == 1
        assert sample(url, "inferwatch_log_exporter_source_up", source="kubectl") == 0
        assert proc.poll() is None, "the exporter keeps serving its counts"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _up(url: str) -> bool:
    try:
        scrape_samples(f"{url}/metrics")
        return True
    except OSError:
        return False


def test_errors_endpoint_validates_its_parameters(exporter) -> None:
    import urllib.error
    import urllib.request

    running, _ = exporter
    for query, status in (("n=0", 400), ("n=x", 400), ("source=nope", 404)):
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(f"{running.base}/errors?{query}", timeout=5)
        assert caught.value.code == status, query
    body = json.loads(urllib.request.urlopen(f"{running.base}/errors?n=5", timeout=5).read())
    assert body == {"sources": {"vllm-0": []}}


def test_every_source_kind_needs_exactly_one_target_and_unique_names(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"f\.yaml:3: log_exporter\.sources\[0\]\.file: exactly one of"):
        parse_config("log_exporter:\n  sources:\n    - {name: a, file: /x, container: vllm}\n", "f.yaml")
    with pytest.raises(ConfigError, match="source names must be unique"):
        parse_config("log_exporter:\n  sources:\n    - {name: a, file: /x}\n    - {name: a, file: /y}\n", "f.yaml")
    with pytest.raises(ConfigError, match=r"sources\[0\]\.engine: must be one of vllm, sglang, tgi"):
        parse_config("log_exporter:\n  sources:\n    - {name: a, file: /x, engine: triton}\n", "f.yaml")
    bad = tmp_path / "rules.yaml"
    bad.write_text("rules:\n  - {name: r, class_name: oom_gpu, severity: error, regex: '(unclosed'}\n")
    result = subprocess.run([str(EXE), "log-exporter", "--file", str(tmp_path / "x.log"), "--rules", str(bad),
                             "--port", str(free_port())], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and f"{bad}:2: rules[0].regex" in result.stderr, result.stderr
    none = subprocess.run([str(EXE), "log-exporter"], capture_output=True, text=True, timeout=30)
    assert none.returncode == 2 and "no log sources" in none.stderr


def test_no_source_text_leaves_the_process(exporter) -> None:
    """A request-logging line's prompt is redacted before anything sees it: not in /metrics or /errors."""
    running, log = exporter
    secret = "my SECRET-4711 prompt says ERROR: CUDA out of memory"
    append(log, f"(APIServer pid=1) INFO 12-02 13:07:58 [logger.py:40] Request cmpl-1 details: prompt: {secret!r},"
                " prompt_token_ids: [1, 2, 3], prompt_embeds shape: None.",
           f"(APIServer pid=1) INFO 12-02 13:07:59 [logger.py:109] Generated response cmpl-1: output: {secret!r},"
           " finish_reason: stop")
    wait_until(lambda: sample(running.base, "inferwatch_log_exporter_lines_redacted_total", source="vllm-0") == 2, 10,
               what="redacted")
    import urllib.request

    texts = [urllib.request.urlopen(f"{running.base}{path}", timeout=5).read().decode()
             for path in ("/metrics", "/errors")]
    assert all("SECRET-4711" not in t for t in texts)
    assert events(running.base, "vllm-0") == {}, "the prompt's words are not the engine's error"


def test_an_error_first_seen_after_a_version_change_is_new_in_that_version(prometheus, fake_engines,
                                                                           tmp_path: Path) -> None:
    """The engine exporter's version for endpoint `vllm-v` goes v1 -> v2 in the real Prometheus; an error
    seen under v1 is old, a different one first seen under v2 is flagged and counted."""
    from inferwatch.config import EndpointConfig, EngineExporterConfig
    from inferwatch.exporters.engine import server as engine_server

    fake = fake_engines()

    def engine_exporter(version: str):
        config = EngineExporterConfig(listen_address="127.0.0.1", port=0, endpoints=[
            EndpointConfig("vllm-v", fake.url, fake.behaviour.model, model_version=version)])
        running = engine_server.start(config)
        prometheus.set_job("log-versions-engine", [f"127.0.0.1:{running.port}"])
        return running

    log = tmp_path / "v.log"
    log.write_text("")
    engine = engine_exporter("v1")
    prometheus.wait_for_series('inferwatch_model_version_info{endpoint="vllm-v", version="v1"}', timeout=30)
    config = LogExporterConfig(listen_address="127.0.0.1", port=0, prometheus_url=prometheus.url,
                               version_poll_seconds=0.5, sources=[LogSourceConfig(name="vllm-v", file=str(log))])
    running = log_server.start(config)
    base = running.url.removesuffix("/metrics")
    try:
        wait_until(lambda: sample(base, "inferwatch_log_exporter_source_up", source="vllm-v") == 1, 10, what="up")
        time.sleep(1.5)  # the watcher has seen v1: the first version is no deploy
        append(log, REJECTED.format(n=1))
        wait_until(lambda: events(base, "vllm-v") == {"request_rejected": 1}, 10, what="old error")
        engine.stop()
        engine = engine_exporter("v2")
        wait_until(lambda: _only_version(prometheus, "v2"), 30, what="v1 gone from the instant vector")
        time.sleep(1.5)
        append(log, REJECTED.format(n=2), OOM.format(pid=3, n=4))
        wait_until(lambda: sample(base, "inferwatch_engine_log_new_version_templates_total", source="vllm-v") == 1, 10,
                   what="the OOM is new in v2")
        top = json.loads(subprocess.run([str(EXE), "errors", "top", "--url", base, "--json"], capture_output=True,
                                        text=True, check=True).stdout)["sources"]["vllm-v"]
        assert {t["class"]: t["new_in_version"] for t in top} == {"request_rejected": None, "oom_gpu": "v2"}
    finally:
        running.stop()
        engine.stop()


def _only_version(prometheus, version: str) -> bool:
    found = prometheus.query('max by (version) (inferwatch_model_version_info{endpoint="vllm-v"})')
    return [r["metric"]["version"] for r in found] == [version]
