"""The probe exporter (`inferwatch probe-exporter`): GET /probe against fake and hostile engines, scheduled
targets on /metrics, reloads, the command, a real Prometheus scraping /probe, and a real vLLM (slow tier).

Every failure of the probed endpoint is HTTP 200 with `inferwatch_probe_success 0` and one reason from
the closed set; only bad /probe parameters (400) and a full probe pool (503) are not 200.
"""

from __future__ import annotations

import json
import logging
import math
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from helpers import scrape_samples
from prometheus_client.parser import text_string_to_metric_families

from inferwatch.config import ProbeExporterConfig, ProbeTargetConfig
from inferwatch.exporters.probe import prober
from inferwatch.exporters.probe import server as probe_server
from inferwatch.exporters.probe.metrics import PROBE_FAMILIES
from inferwatch.exporters.probe.modules import Modules, load_modules
from inferwatch.exporters.probe.prober import REASONS
from inferwatch.kit.exporter import Exporter
from inferwatch.lab.fake_openai import Behaviour, FakeOpenAI
from inferwatch.lab.process import free_port, wait_until

MODEL = "m"
ANSWER = "Paris is the capital of France."  # six words: six tokens in the fake
PROMPT = "What is the capital of France?"
MODULES = f"""\
modules:
  golden:
    kind: chat
    model: {MODEL}
    timeout_seconds: 10
    params: {{max_tokens: 16}}
    system: Answer in one sentence.
    health: {{max_model_len: 4096, tokenizer_text: "Hello, world!"}}
    cases:
      - name: capital
        prompt: {PROMPT}
        assert:
          - {{type: icontains, value: paris}}
          - {{name: short, type: length, max_tokens: 8}}
          - {{type: similar, value: Paris is the capital.}}
      - name: again
        prompt: And the capital of France is?
        assert:
          - {{type: contains, value: France}}
  wrong:
    kind: chat
    model: {MODEL}
    cases:
      - name: capital
        prompt: {PROMPT}
        assert:
          - {{name: lyon, type: contains, value: Lyon}}
          - {{type: not-refusal}}
      - name: ok
        prompt: {PROMPT}
        assert: [{{type: contains, value: Paris}}]
  other-model:
    kind: chat
    model: not-{MODEL}
    cases:
      - {{name: capital, prompt: {PROMPT}, assert: [{{type: contains, value: Paris}}]}}
  any-model:
    kind: completion
    cases:
      - {{name: capital, prompt: {PROMPT}, assert: [{{type: contains, value: Paris}}]}}
"""


class FixedEmbedder:
    """Stands in for MiniLM: a fixed similarity, so `similar` is judged without the model."""

    def __init__(self, score: float = 0.9, fail: bool = False):
        self.score, self.fail = score, fail

    def similarity(self, a: str, b: str) -> float:
        if self.fail:
            raise RuntimeError("embedder broke")
        return self.score


# -- fixtures and helpers ---------------------------------------------------------------------------

@pytest.fixture
def engine(fake_engines: Callable[..., FakeOpenAI]) -> Callable[..., FakeOpenAI]:
    """Starts fake engines serving MODEL with the fixed ANSWER; stops them after the test."""
    return lambda **fields: fake_engines(**{"model": MODEL, "answer": ANSWER, **fields})


@pytest.fixture
def modules(tmp_path: Path) -> Modules:
    path = tmp_path / "probe-modules.yaml"
    path.write_text(MODULES)
    return load_modules(path)


@pytest.fixture
def exporter(modules: Modules) -> Iterator[Callable[..., Exporter]]:
    """Starts probe exporters on loopback (embedder: FixedEmbedder unless given); stops them after the test."""
    started: list[Exporter] = []

    def start(embedder: object = "fixed", **config: object) -> Exporter:
        settings: dict = {"listen_address": "127.0.0.1", "port": 0, **config}
        running = probe_server.start(ProbeExporterConfig(**settings), modules,
                                     embedder=FixedEmbedder() if embedder == "fixed" else embedder)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, str, str]:
    """(status, content type, body) of a GET, errors included."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def probe_path(target: str, module: str, **extra: str) -> str:
    return "/probe?" + urllib.parse.urlencode({"target": target, "module": module, **extra})


def samples(text: str) -> dict[str, dict[tuple, float]]:
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def one(seen: dict, name: str, **labels: str) -> float:
    """The value of the one sample of `name` whose labels include `labels`."""
    found = [v for key, v in seen.get(name, {}).items() if labels.items() <= dict(key).items()]
    assert len(found) == 1, f"{name}{labels}: {len(found)} samples in {seen.get(name)}"
    return found[0]


def reasons_set(seen: dict, name: str = "inferwatch_probe_failed", **labels: str) -> set[str]:
    return {dict(key)["reason"] for key, v in seen[name].items() if v == 1 and labels.items() <= dict(key).items()}


def run_probe(port: int, target: str, module: str, headers: dict[str, str] | None = None) -> dict:
    status, content_type, body = get(port, probe_path(target, module), headers)
    assert status == 200, body
    assert content_type.startswith("text/plain")
    return samples(body)


# -- GET /probe --------------------------------------------------------------------------------------

def test_passing_module_reports_every_series(engine, exporter) -> None:
    fake = engine(token_delay=0.01)
    running = exporter()
    seen = run_probe(running.port, fake.url, "golden")
    assert set(seen) <= {f"inferwatch_probe_{f.name}" for f in PROBE_FAMILIES}
    module = {"module": "golden", "model_name": MODEL}
    assert one(seen, "inferwatch_probe_success", **module) == 1
    assert one(seen, "inferwatch_probe_module_score_ratio", **module) == 1
    assert reasons_set(seen) == set() and len(seen["inferwatch_probe_failed"]) == len(REASONS)
    assert 0 < one(seen, "inferwatch_probe_duration_seconds") < 5
    for case in ("capital", "again"):
        labels = {**module, "case": case}
        assert one(seen, "inferwatch_probe_case_success", **labels) == 1
        assert one(seen, "inferwatch_probe_case_http_status_code", **labels) == 200
        ttft = one(seen, "inferwatch_probe_case_time_to_first_token_seconds", **labels)
        e2e = one(seen, "inferwatch_probe_case_e2e_request_latency_seconds", **labels)
        tpot = one(seen, "inferwatch_probe_case_time_per_output_token_seconds", **labels)
        assert 0 < ttft <= e2e and 0.005 < tpot < 0.1
        assert one(seen, "inferwatch_probe_case_completion_tokens", **labels) == 6
        assert one(seen, "inferwatch_probe_case_prompt_tokens", **labels) > 0
    assertions = {dict(k)["assertion"]: v for k, v in seen["inferwatch_probe_assertion_success"].items()}
    assert assertions == {"0_icontains": 1, "short": 1, "2_similar": 1, "0_contains": 1}
    assert set(seen["inferwatch_probe_assertion_available"].values()) == {1.0}
    assert one(seen, "inferwatch_probe_assertion_similarity_score", assertion="2_similar") == pytest.approx(0.9)
    assert one(seen, "inferwatch_probe_served_model_info", served_model=MODEL) == 1
    assert one(seen, "inferwatch_probe_model_listed", **module) == 1
    assert one(seen, "inferwatch_probe_model_max_context_tokens", **module) == 4096
    assert one(seen, "inferwatch_probe_model_context_matches", **module) == 1
    assert one(seen, "inferwatch_probe_tokenizer_roundtrip_success", **module) == 1
    assert one(seen, "inferwatch_probe_engine_info", engine_version="0.0.0+fake") == 1
    assert not any(name.startswith(("process_", "python_", "inferwatch_probe_exporter")) for name in seen), \
        "/probe answers the probe's series only"


def test_failing_assertion_fails_its_case_only(engine, exporter) -> None:
    fake = engine()
    running = exporter()
    seen = run_probe(running.port, fake.url, "wrong")
    assert one(seen, "inferwatch_probe_success") == 0
    assert one(seen, "inferwatch_probe_module_score_ratio") == 0.5
    assert reasons_set(seen) == {"assertion_failed"}
    assert reasons_set(seen, "inferwatch_probe_case_failed", case="capital") == {"assertion_failed"}
    assert reasons_set(seen, "inferwatch_probe_case_failed", case="ok") == set()
    judged = seen["inferwatch_probe_assertion_success"]
    assertions = {(dict(k)["case"], dict(k)["assertion"]): v for k, v in judged.items()}
    assert assertions == {("capital", "lyon"): 0, ("capital", "1_not-refusal"): 1, ("ok", "0_contains"): 1}


def test_unavailable_assertion_is_reported_and_fails_nothing(engine, exporter) -> None:
    """No embedder (the optional packages missing): `similar` is unavailable, not a pass, not a failure."""
    fake = engine()
    running = exporter(embedder=None)
    seen = run_probe(running.port, fake.url, "golden")
    assert one(seen, "inferwatch_probe_success") == 1
    assert one(seen, "inferwatch_probe_assertion_available", assertion="2_similar") == 0
    assert not [k for k in seen["inferwatch_probe_assertion_success"] if dict(k)["assertion"] == "2_similar"]


def test_raising_embedder_is_an_exporter_error(engine, exporter) -> None:
    fake = engine()
    running = exporter(embedder=FixedEmbedder(fail=True))
    seen = run_probe(running.port, fake.url, "golden")
    assert one(seen, "inferwatch_probe_assertion_available", assertion="2_similar") == 0
    assert one(seen, "inferwatch_probe_success") == 1, "an assertion that could not be judged fails nothing"
    metrics = scrape_samples(running.url)
    assert one(metrics, "inferwatch_probe_exporter_errors_total", stage="assertion", error="RuntimeError") == 1


def _closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


@pytest.mark.parametrize(("behaviour", "reason"), [
    (None, "connection_error"),
    ({"cut_stream_after": 2}, "bad_stream"),
    ({"invalid_json_chunk": True}, "bad_stream"),
    ({"completions_status": 500}, "http_error"),
    ({"require_auth": "Bearer s3cret"}, "http_error"),
])
def test_endpoint_failures_are_reasons(engine, exporter, behaviour: dict | None, reason: str) -> None:
    url = _closed_port_url() if behaviour is None else engine(**behaviour).url
    running = exporter()
    seen = run_probe(running.port, url, "golden")
    assert one(seen, "inferwatch_probe_success") == 0
    assert one(seen, "inferwatch_probe_module_score_ratio") == 0
    assert reasons_set(seen) == {reason}
    for case in ("capital", "again"):
        assert reasons_set(seen, "inferwatch_probe_case_failed", case=case) == {reason}
        assert one(seen, "inferwatch_probe_case_success", case=case) == 0
    assert "inferwatch_probe_assertion_success" not in seen, "no answer, nothing judged"
    if behaviour is None:
        assert one(seen, "inferwatch_probe_model_listed") == 0
    errors = scrape_samples(running.url).get("inferwatch_probe_exporter_errors_total", {})
    assert errors == {}, "the endpoint's failure is not the exporter's"


def test_scrape_timeout_header_sets_the_deadline(engine, exporter) -> None:
    """Six tokens 0.3 s apart cannot finish in 1.5 s - 0.5 s: the first case times out, the second never starts."""
    fake = engine(token_delay=0.3)
    running = exporter()
    started = time.monotonic()
    seen = run_probe(running.port, fake.url, "golden", {"X-Prometheus-Scrape-Timeout-Seconds": "1.5"})
    elapsed = time.monotonic() - started
    assert elapsed < 1.4, f"the probe took {elapsed:.2f} s with a 1.0 s deadline"
    assert one(seen, "inferwatch_probe_success") == 0
    assert reasons_set(seen) == {"timeout"}
    assert reasons_set(seen, "inferwatch_probe_case_failed", case="capital") == {"timeout"}
    assert reasons_set(seen, "inferwatch_probe_case_failed", case="again") == {"timeout"}
    assert 0.9 < one(seen, "inferwatch_probe_duration_seconds") < 1.3


def test_deadline_rules() -> None:
    module = load_modules_text(MODULES).modules["golden"]  # timeout_seconds: 10
    assert probe_server.deadline_for(module, None, 0.5) == 10
    assert probe_server.deadline_for(module, "4", 0.5) == 3.5
    assert probe_server.deadline_for(module, "60", 0.5) == 10
    assert probe_server.deadline_for(module, "0.3", 0.5) == probe_server.MIN_DEADLINE_SECONDS
    for junk in ("abc", "nan", "inf", "-1", "0"):
        assert probe_server.deadline_for(module, junk, 0.5) == 10


def load_modules_text(text: str) -> Modules:
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        handle.write(text)
    return load_modules(handle.name)


def served_by(model: str) -> Callable:
    """A chat route whose stream names another model than the one asked for (a router, a wrong rollout)."""

    async def respond(request: web.Request, _: Behaviour) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for word in ("Paris ", "is ", "in France."):
            chunk = {"model": model, "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]}
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        usage = {"model": model, "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3}}
        await response.write(f"data: {json.dumps(usage)}\n\ndata: [DONE]\n\n".encode())
        return response

    return respond


def test_model_mismatch(engine, exporter) -> None:
    running = exporter()
    # the module's model is not served: the endpoint refuses it, and does not list it
    seen = run_probe(running.port, engine().url, "other-model")
    assert reasons_set(seen) == {"model_mismatch"}
    assert one(seen, "inferwatch_probe_model_listed", model_name=f"not-{MODEL}") == 0
    # the answer comes from another model than the one asked for: judged, but the case fails
    fake = engine(routes={"POST /v1/chat/completions": served_by("m-v2")})
    seen = run_probe(running.port, fake.url, "golden")
    assert reasons_set(seen, "inferwatch_probe_case_failed", case="again") == {"model_mismatch"}
    assert one(seen, "inferwatch_probe_served_model_info", served_model="m-v2") == 1
    assert one(seen, "inferwatch_probe_assertion_success", case="again") == 1, "assertions are still reported"
    assert one(seen, "inferwatch_probe_success", model_name=MODEL) == 0


def test_module_without_model_asks_the_listed_one(engine, exporter) -> None:
    fake = engine(model="served-x")
    running = exporter()
    seen = run_probe(running.port, fake.url, "any-model")
    assert one(seen, "inferwatch_probe_success", model_name="served-x") == 1
    assert one(seen, "inferwatch_probe_model_listed", model_name="served-x") == 1


@pytest.mark.parametrize(("query", "message"), [
    ({"target": "127.0.0.1:1"}, "module parameter is missing"),
    ({"target": "127.0.0.1:1", "module": "nope"}, "unknown module 'nope'"),
    ({"module": "golden"}, "target parameter is missing"),
    ({"module": "golden", "target": "ftp://host/x"}, "target must be an http(s) URL with a host, or host:port"),
    ({"module": "golden", "target": "http://"}, "target must be an http(s) URL with a host, or host:port"),
    ({"module": "golden", "target": "http://a b:80"}, "target must be an http(s) URL with a host, or host:port"),
])
def test_bad_parameters_are_400(exporter, query: dict, message: str) -> None:
    running = exporter()
    status, _, body = get(running.port, "/probe?" + urllib.parse.urlencode(query))
    assert (status, body) == (400, message + "\n")


def test_bare_host_port_target_and_debug(engine, exporter, caplog: pytest.LogCaptureFixture) -> None:
    fake = engine()
    running = exporter()
    caplog.set_level(logging.DEBUG)
    status, _, body = get(running.port, probe_path(f"127.0.0.1:{fake.port}", "wrong", debug="true"))
    assert status == 200
    assert "Case capital: failed (assertion_failed)" in body and "assertion lyon (contains): failed" in body
    assert "Case ok: passed" in body
    assert "inferwatch_probe_success{" in body.split("Metrics that would have been returned:")[1]
    for secret in (ANSWER, PROMPT, "Paris is", "capital of France"):
        assert secret not in body, "no prompt or answer text in the debug output"
        assert secret not in caplog.text, "no prompt or answer text in the logs"


def test_full_pool_is_503(engine, exporter) -> None:
    slow = engine(answer="Paris", token_delay=1.0)  # one token, a second late
    running = exporter(max_concurrent_probes=1)
    first: list[tuple] = []
    thread = threading.Thread(target=lambda: first.append(get(running.port, probe_path(slow.url, "any-model"))))
    thread.start()
    wait_until(lambda: one(scrape_samples(running.url), "inferwatch_probe_exporter_probes_in_flight") == 1, 5,
               what="the first probe to be running")
    status, _, body = get(running.port, probe_path(slow.url, "any-model"))
    assert status == 503 and body.startswith("too many probes running")
    thread.join(10)
    assert first[0][0] == 200
    metrics = scrape_samples(running.url)
    assert one(metrics, "inferwatch_probe_exporter_probes_rejected_total") == 1
    assert one(metrics, "inferwatch_probe_exporter_probes_in_flight") == 0
    assert get(running.port, probe_path(slow.url, "any-model"))[0] == 200, "the slot is free again"


def test_a_bug_in_the_prober_is_error_not_the_endpoint(engine, exporter, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise KeyError("a bug")

    monkeypatch.setattr(prober, "run_request", broken)
    running = exporter()
    seen = run_probe(running.port, engine().url, "golden")
    assert reasons_set(seen) == {"error"}
    assert one(scrape_samples(running.url), "inferwatch_probe_exporter_errors_total", stage="case",
               error="KeyError") == 2


# -- scheduled targets -------------------------------------------------------------------------------

def test_scheduled_targets_on_metrics(engine, exporter, tmp_path: Path) -> None:
    good = engine(token_delay=0.005)
    secured = engine(require_auth="Bearer s3cret")
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    running = exporter(targets=[
        ProbeTargetConfig("good", good.url, "golden", interval_seconds=0.2),
        ProbeTargetConfig("secured", secured.url, "wrong", interval_seconds=0.2, token_file=str(token)),
        ProbeTargetConfig("down", _closed_port_url(), "golden", interval_seconds=0.2),
    ])

    def ran_twice() -> dict | None:
        seen = scrape_samples(running.url)
        runs = seen.get("inferwatch_probe_runs_total", {})
        return seen if len(runs) == 3 and min(runs.values()) >= 2 else None

    seen = wait_until(ran_twice, 15, what="two runs of every target")
    assert one(seen, "inferwatch_probe_success", target="good") == 1
    assert one(seen, "inferwatch_probe_success", target="down") == 0
    assert reasons_set(seen, target="down") == {"connection_error"}
    assert reasons_set(seen, target="secured") == {"assertion_failed"}, "the token file was sent"
    assert one(seen, "inferwatch_probe_case_failures_total", target="secured", reason="assertion_failed") >= 2
    assert one(seen, "inferwatch_probe_case_failures_total", target="good", reason="timeout") == 0
    good_labels = {"target": "good", "module": "golden", "model_name": MODEL}
    count = one(seen, "inferwatch_probe_client_time_to_first_token_seconds_count", **good_labels)
    assert count >= 4, "two cases a run"
    assert one(seen, "inferwatch_probe_client_time_to_first_token_seconds_bucket", **good_labels, le="+Inf") == count
    assert one(seen, "inferwatch_probe_client_time_to_first_token_seconds_bucket", **good_labels, le="60.0") == count
    assert one(seen, "inferwatch_probe_client_time_per_output_token_seconds_bucket", **good_labels, le="0.001") == 0
    assert one(seen, "inferwatch_probe_client_e2e_request_latency_seconds_sum", **good_labels) > 0
    assert not [k for k in seen.get("inferwatch_probe_client_e2e_request_latency_seconds_count", {})
                if dict(k)["target"] == "down"], "failed requests are not latency observations"
    assert one(seen, "inferwatch_probe_last_run_timestamp_seconds", target="good") > time.time() - 10
    assert one(seen, "inferwatch_probe_exporter_modules") == 4
    assert "inferwatch_probe_exporter_errors_total" not in seen


def test_model_cache_free_bytes(exporter, tmp_path: Path) -> None:
    running = exporter(model_cache_path=str(tmp_path))
    seen = scrape_samples(running.url)
    assert one(seen, "inferwatch_probe_model_cache_free_bytes", path=str(tmp_path)) > 0
    missing = exporter(model_cache_path=str(tmp_path / "missing"))
    seen = scrape_samples(missing.url)
    assert "inferwatch_probe_model_cache_free_bytes" not in seen
    assert one(seen, "inferwatch_probe_exporter_errors_total", stage="model_cache") == 1


# -- a real Prometheus ----------------------------------------------------------------------------------

def test_prometheus_scrapes_probe_with_relabelling(prometheus, engine, exporter) -> None:
    """The blackbox_exporter recipe: targets are endpoints, `module` a param, the exporter the address."""
    good, failing = engine(), engine(invalid_json_chunk=True)
    running = exporter()
    job = "probe-golden"
    prometheus.set_job(job, [good.url.removeprefix("http://"), failing.url.removeprefix("http://")],
                       metrics_path="/probe", params={"module": ["golden"]}, relabel_configs=[
                           {"source_labels": ["__address__"], "target_label": "__param_target"},
                           {"source_labels": ["__param_target"], "target_label": "instance"},
                           {"target_label": "__address__", "replacement": f"127.0.0.1:{running.port}"}])
    series = prometheus.wait_for_series(f'inferwatch_probe_success{{job="{job}"}}', count=2)
    success = {s["metric"]["instance"]: float(s["value"][1]) for s in series}
    assert success == {good.url.removeprefix("http://"): 1.0, failing.url.removeprefix("http://"): 0.0}
    assert all(s["metric"]["module"] == "golden" and s["metric"]["model_name"] == MODEL for s in series)
    failed = prometheus.query(f'inferwatch_probe_failed{{job="{job}"}} == 1')
    assert [(f["metric"]["instance"], f["metric"]["reason"]) for f in failed] == [
        (failing.url.removeprefix("http://"), "bad_stream")]
    assert prometheus.query_value(f'count(up{{job="{job}"}} == 1)') == 2
    good_instance = good.url.removeprefix("http://")
    ttft = prometheus.query_value(
        f'inferwatch_probe_case_time_to_first_token_seconds{{job="{job}",case="capital",instance="{good_instance}"}}')
    assert ttft is not None and ttft > 0


# -- the command ------------------------------------------------------------------------------------------

def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "inferwatch.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_module_file_error_exits_2_with_file_line_key(tmp_path: Path) -> None:
    path = tmp_path / "probes.yaml"
    path.write_text(MODULES.replace("params: {max_tokens: 16}", "params: {max_tokens: 0}"))
    result = run_cli("probe-exporter", "--modules", str(path), "--port", "0")
    assert result.returncode == 2
    assert result.stderr == (f"inferwatch: config error: {path}:6: modules.golden.params.max_tokens: "
                             "must be between 1 and 4096; got 0\n")


def test_command_usage_errors(tmp_path: Path) -> None:
    result = run_cli("probe-exporter", "--port", "0")
    assert result.returncode == 2 and result.stderr.startswith("inferwatch: no probe modules file: pass --modules")
    modules = tmp_path / "probes.yaml"
    modules.write_text(MODULES)
    config = tmp_path / "inferwatch.yaml"
    config.write_text("probe_exporter:\n  targets:\n    - {name: a, url: 'http://127.0.0.1:1', module: nope}\n")
    result = run_cli("probe-exporter", "-c", str(config), "--modules", str(modules))
    assert result.returncode == 2
    assert result.stderr.startswith("inferwatch: probe_exporter.targets[0].module: unknown module 'nope' (modules in ")
    result = run_cli("probe-exporter", "--modules", str(modules), "--web.listen-address", "localhost")
    assert (result.returncode, result.stderr) == (
        2, "inferwatch: --web.listen-address must be [HOST]:PORT; got 'localhost'\n")
    result = run_cli("probe-exporter", "--modules", str(modules), "--timeout-offset", "-1")
    assert (result.returncode, result.stderr) == (
        2, "inferwatch: probe_exporter.timeout_offset_seconds: must be between 0 and 60; got -1.0\n")
    config.write_text("probe_exporter:\n  targets:\n    - {name: 'a b', url: 'http://h:1', module: golden}\n")
    result = run_cli("check-config", "-c", str(config))
    assert result.returncode == 2
    assert result.stderr.startswith(f"inferwatch: config error: {config}:3: probe_exporter.targets[0].name: must be")


def test_once_prints_the_probe_and_exits_by_its_success(engine, tmp_path: Path) -> None:
    fake = engine()
    modules = tmp_path / "probes.yaml"
    modules.write_text(MODULES)
    good = run_cli("probe-exporter", "--modules", str(modules), "--once", "--target", fake.url, "--module", "any-model")
    assert good.returncode == 0, good.stderr
    assert one(samples(good.stdout), "inferwatch_probe_success") == 1
    bad = run_cli("probe-exporter", "--modules", str(modules), "--once", "--target", fake.url, "--module", "wrong",
                  "--debug")
    assert bad.returncode == 1
    assert one(samples(bad.stdout), "inferwatch_probe_success") == 0
    assert "Case capital: failed (assertion_failed)" in bad.stderr
    unknown = run_cli("probe-exporter", "--modules", str(modules), "--once", "--target", fake.url, "--module", "x")
    assert (unknown.returncode, unknown.stderr) == (2, "inferwatch: unknown module 'x'\n")


def test_reload_keeps_previous_modules_when_the_new_file_is_bad(engine, tmp_path: Path) -> None:
    fake = engine()
    modules, config, port = tmp_path / "probes.yaml", tmp_path / "inferwatch.yaml", free_port()
    modules.write_text(MODULES)
    config.write_text(f"probe_exporter:\n  listen_address: 127.0.0.1\n  port: {port}\n  modules_file: {modules}\n"
                      f"  targets:\n    - {{name: fake, url: '{fake.url}', module: golden, interval_seconds: 0.2}}\n")
    proc = subprocess.Popen([sys.executable, "-m", "inferwatch.cli", "probe-exporter", "-c", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        first = wait_until(lambda: (s := scrape_samples(url)) and "inferwatch_probe_success" in s and s, 20,
                           what="the probe exporter's first scheduled run")
        assert one(first, "inferwatch_probe_exporter_config_last_reload_success") == 1
        runs = one(first, "inferwatch_probe_runs_total", target="fake")

        modules.write_text(MODULES.replace("  wrong:\n", "  wrong:\n    temperature: 0\n"))  # an unknown key
        proc.send_signal(signal.SIGHUP)
        bad = wait_until(lambda: (s := scrape_samples(url))
                         and one(s, "inferwatch_probe_exporter_config_last_reload_success") == 0 and s, 20,
                         what="the failed reload")
        assert one(bad, "inferwatch_probe_exporter_modules") == 4
        assert get(port, probe_path(fake.url, "golden"))[0] == 200, "the previous modules still serve /probe"
        assert one(bad, "inferwatch_probe_runs_total", target="fake") >= runs

        modules.write_text(MODULES + "  extra:\n    kind: chat\n    model: m\n    cases:\n"
                           "      - {name: c, prompt: p, assert: [{type: contains, value: Paris}]}\n")
        proc.send_signal(signal.SIGHUP)
        good = wait_until(lambda: (s := scrape_samples(url))
                          and one(s, "inferwatch_probe_exporter_config_last_reload_success") == 1 and s, 20,
                          what="the good reload")
        assert one(good, "inferwatch_probe_exporter_modules") == 5
        assert one(good, "inferwatch_probe_runs_total", target="fake") >= runs, "counters carry over a reload"
        status, _, body = get(port, probe_path(fake.url, "extra"))
        assert status == 200 and one(samples(body), "inferwatch_probe_success") == 1
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, stderr = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:  # never leave it running
            proc.kill()
            proc.communicate()
            raise
    assert proc.returncode == 0
    text = stderr.decode()
    assert "config reload failed, keeping the running config and modules:" in text
    assert "modules.wrong.temperature: unknown key" in text
    for secret in (ANSWER, PROMPT):
        assert secret not in text


# -- a real vLLM (slow tier) -------------------------------------------------------------------------------

VLLM_MODULES = """\
modules:
  timing:
    kind: completion
    model: tiny-llama
    timeout_seconds: 60
    params: {max_tokens: 12, temperature: 0, seed: 0, ignore_eos: true}
    health: {max_model_len: 512, tokenizer_text: "Hello world"}
    cases:
      - name: twelve_tokens
        prompt: "Once upon a time"
        assert:
          - {type: length, min_tokens: 12, max_tokens: 12}
  chat-timing:
    kind: chat
    model: tiny-llama
    timeout_seconds: 60
    params: {max_tokens: 8, temperature: 0, ignore_eos: true}
    cases:
      - name: eight_tokens
        prompt: "Say something."
        assert:
          - {type: length, min_tokens: 8, max_tokens: 8}
  mismatch:
    kind: completion
    model: another-model
    timeout_seconds: 30
    params: {max_tokens: 4}
    cases:
      - {name: c, prompt: "Hello", assert: [{type: length, min_tokens: 1}]}
"""


@pytest.mark.slow
def test_probe_against_real_vllm(vllm_engine, tmp_path: Path) -> None:
    path = tmp_path / "vllm-probes.yaml"
    path.write_text(VLLM_MODULES)
    modules = load_modules(path)
    base = vllm_engine.server.base_url
    running = probe_server.start(ProbeExporterConfig(listen_address="127.0.0.1", port=0), modules, embedder=None)
    try:
        for module, case, tokens in (("timing", "twelve_tokens", 12), ("chat-timing", "eight_tokens", 8)):
            seen = run_probe(running.port, base, module)
            labels = {"module": module, "case": case, "model_name": "tiny-llama"}
            assert reasons_set(seen) == set(), f"{module}: {seen.get('inferwatch_probe_failed')}"
            assert one(seen, "inferwatch_probe_success", module=module) == 1
            assert one(seen, "inferwatch_probe_case_completion_tokens", **labels) == tokens
            assert one(seen, "inferwatch_probe_served_model_info", module=module, served_model="tiny-llama") == 1
            e2e = one(seen, "inferwatch_probe_case_e2e_request_latency_seconds", **labels)
            ttft = seen.get("inferwatch_probe_case_time_to_first_token_seconds")
            if module == "chat-timing" and not ttft:
                # The random-weight model's chat tokens may all decode to no text (special tokens, skipped):
                # then no chunk carries output, and TTFT/TPOT are absent rather than wrong.
                continue
            ttft_value = one(seen, "inferwatch_probe_case_time_to_first_token_seconds", **labels)
            tpot = one(seen, "inferwatch_probe_case_time_per_output_token_seconds", **labels)
            assert 0 < ttft_value <= e2e
            assert math.isfinite(tpot) and 0 < tpot < e2e
        seen = run_probe(running.port, base, "timing")
        assert one(seen, "inferwatch_probe_model_context_matches") == 1
        assert one(seen, "inferwatch_probe_model_max_context_tokens") == 512
        assert one(seen, "inferwatch_probe_tokenizer_roundtrip_success") == 1
        assert one(seen, "inferwatch_probe_engine_info", engine_version="0.32.0") == 1
        seen = run_probe(running.port, base, "mismatch")
        assert reasons_set(seen) == {"model_mismatch"}
        assert one(seen, "inferwatch_probe_model_listed", model_name="another-model") == 0
    finally:
        running.stop()



def test_shipped_examples_load() -> None:
    from inferwatch.config import load_config

    examples = Path(__file__).resolve().parent.parent / "inferwatch" / "examples"
    shipped = load_modules(examples / "probe-modules.yaml")
    assert set(shipped.modules) == {"golden-chat", "latency"}
    assert shipped.modules["latency"].params.request_params()["ignore_eos"] is True
    assert load_config(examples / "inferwatch.yaml").probe_exporter == ProbeExporterConfig()


@pytest.mark.parametrize(("old", "new", "message"), [
    ("health: {max_model_len: 4096,", "health: {max_model_len: 0,",
     "8: modules.golden.health.max_model_len: must be at least 1; got 0"),
    ('tokenizer_text: "Hello, world!"', "tokenizer_text: ''",
     "8: modules.golden.health.tokenizer_text: must not be empty (leave it out to skip the round trip)"),
    ("params: {max_tokens: 16}", "params: {max_tokens: 16, ignore_eos: maybe}",
     "6: modules.golden.params.ignore_eos: expected true or false, got 'maybe'"),
])
def test_health_and_params_mistakes(tmp_path: Path, old: str, new: str, message: str) -> None:
    from inferwatch.config import ConfigError

    path = tmp_path / "probes.yaml"
    assert old in MODULES
    path.write_text(MODULES.replace(old, new))
    with pytest.raises(ConfigError) as info:
        load_modules(path)
    assert str(info.value) == f"{path}:{message}"
