"""The feedback service against a real Prometheus: counts, histograms, exemplars, versions resolved from
the engine exporter's series, refusals counted, and the negative store exported for retraining."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import scrape

from inferwatch.config import EndpointConfig, EngineExporterConfig, FeedbackScoreConfig, FeedbackServerConfig
from inferwatch.exporters.engine import server as engine_server
from inferwatch.exporters.feedback import server as feedback_server
from inferwatch.lab.fake_openai import Behaviour, FakeOpenAI

TOKEN = "s3cret-token"
COMMENT = "the answer about my tax return was wrong"


def post(port: int, body: bytes | str | object, token: str | None = TOKEN, headers: dict | None = None,
         path: str = "/v1/feedback") -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else (body.encode() if isinstance(body, str) else json.dumps(body).encode())
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    all_headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {}),
                   **(headers or {})}
    try:
        connection.request("POST", path, body=data, headers=all_headers)
        response = connection.getresponse()
        payload = response.read()
        return response.status, (json.loads(payload) if payload.startswith(b"{") else {"raw": payload.decode()})
    finally:
        connection.close()


@pytest.fixture
def feedback(tmp_path: Path) -> Iterator[Callable[..., object]]:
    started = []

    def start(**fields: object) -> object:
        token_file = tmp_path / "token"
        token_file.write_text(TOKEN + "\n")
        config = FeedbackServerConfig(listen_address="127.0.0.1", port=0, bearer_token_file=str(token_file),
                                      store_dir=str(tmp_path / "store"), **fields)  # type: ignore[arg-type]
        running = feedback_server.start(config)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


def test_feedback_over_http_reaches_prometheus(prometheus, feedback) -> None:
    server = feedback(scores=[
        FeedbackScoreConfig("thumbs"),
        FeedbackScoreConfig("rating", "numeric", min=1, max=5, negative_below=3, positive_from=4),
        FeedbackScoreConfig("reason", "categorical", categories=["wrong", "slow", "great"], negative=["wrong", "slow"]),
    ])
    ours = [{"request_id": f"req-{i}", "model": "llama", "model_version": "v1", "score": "thumbs",
             "value": i % 3 != 0, **({"comment": COMMENT} if i == 0 else {})} for i in range(9)]
    ratings = [{"request_id": f"rate-{i}", "model": "llama", "model_version": "v1", "score": "rating", "value": v}
               for i, v in enumerate([1, 2, 4, 5, 5])]
    langfuse = {"batch": [{"id": "e1", "type": "score-create", "body": {
        "traceId": "trace-77", "name": "reason", "value": "slow", "dataType": "CATEGORICAL", "stringValue": "slow",
        "metadata": {"model": "llama", "model_version": "v2"}}}]}
    assert post(server.port, {"feedback": ours}) == (200, {"accepted": 9})
    assert post(server.port, ratings) == (200, {"accepted": 5})
    assert post(server.port, langfuse) == (200, {"accepted": 1})

    job = "inferwatch-feedback-test"
    prometheus.set_job(job, [f"127.0.0.1:{server.port}"])
    prometheus.wait_for_series(f'inferwatch_feedback_total{{job="{job}"}}', count=5)
    got = {(r["metric"]["score"], r["metric"]["version"], r["metric"]["value"], r["metric"]["polarity"]):
           float(r["value"][1]) for r in prometheus.query(f'inferwatch_feedback_total{{job="{job}"}} > 0')}
    assert got == {("thumbs", "v1", "true", "positive"): 6, ("thumbs", "v1", "false", "negative"): 3,
                   ("rating", "v1", "numeric", "negative"): 2, ("rating", "v1", "numeric", "positive"): 3,
                   ("reason", "v2", "slow", "negative"): 1}
    # Series a score can produce exist at 0 from the first rating of a version, so increase() sees the next one.
    zeros = {(r["metric"]["score"], r["metric"]["version"], r["metric"]["value"]) for r in
             prometheus.query(f'inferwatch_feedback_total{{job="{job}"}} == 0')}
    assert zeros == {("reason", "v2", "wrong"), ("reason", "v2", "great"), ("rating", "v1", "numeric")}
    buckets = {r["metric"]["le"]: float(r["value"][1]) for r in
               prometheus.query(f'inferwatch_feedback_score_bucket{{job="{job}",score="rating"}}')}
    assert buckets == {"1.0": 1, "2.0": 2, "3.0": 2, "4.0": 3, "5.0": 5, "+Inf": 5}
    assert prometheus.query_value(f'inferwatch_feedback_score_sum{{job="{job}",score="rating"}}') == 17
    assert prometheus.query_value(f'inferwatch_feedback_comments_total{{job="{job}"}}') == 1

    # The request id is an exemplar, never a label.
    assert not [r for r in prometheus.query(f'{{job="{job}"}}') if "request_id" in r["metric"]]
    end = time.time() + 30
    ids: set[str] = set()
    while time.time() < end and "trace-77" not in ids:
        answer = prometheus._api("query_exemplars", query=f'inferwatch_feedback_total{{job="{job}"}}',
                                 start=time.time() - 300, end=time.time() + 60)
        ids = {e["labels"]["request_id"] for series in answer for e in series["exemplars"]}
        time.sleep(0.5)
    assert "trace-77" in ids and ids <= {*(f"req-{i}" for i in range(9)), *(f"rate-{i}" for i in range(5)), "trace-77"}

    # Neither the comment nor any text reaches the exposition.
    assert "tax return" not in scrape(server.port)


def test_missing_version_is_resolved_from_the_engine_exporter(prometheus, feedback) -> None:
    model = "feedback-llama"  # its own: other tests export versions of the fake default model to this Prometheus
    fake = FakeOpenAI(Behaviour(model=model)).start()
    engine = engine_server.start(EngineExporterConfig(listen_address="127.0.0.1", port=0, endpoints=[
        EndpointConfig(name="a", base_url=fake.url, model=model, model_version="v7")]))
    try:
        prometheus.set_job("engine-for-feedback", [f"127.0.0.1:{engine.port}"])
        prometheus.wait_for_series(f'inferwatch_model_version_info{{model_name="{model}",version="v7"}}')
        server = feedback(prometheus_url=prometheus.url)
        assert post(server.port, [{"request_id": "r1", "model": model, "score": "thumbs", "value": False},
                                  {"request_id": "r2", "model": "never-served", "score": "thumbs", "value": True}]
                    ) == (200, {"accepted": 2})
        text = scrape(server.port)
        assert (f'inferwatch_feedback_total{{model_name="{model}",polarity="negative",score="thumbs",'
                f'value="false",version="v7"}} 1.0') in text
        assert 'model_name="never-served",polarity="positive",score="thumbs",value="true",version="unknown"' in text
        assert 'inferwatch_feedback_version_lookups_total{result="resolved"} 1.0' in text
        assert 'inferwatch_feedback_version_lookups_total{result="unresolved"} 1.0' in text
    finally:
        engine.stop()
        fake.stop()


def test_bad_payloads_are_refused_whole_with_a_message_and_counted(feedback) -> None:
    server = feedback(max_body_bytes=4096, max_models=2,
                      scores=[FeedbackScoreConfig("thumbs"), FeedbackScoreConfig("topic", "categorical",
                                                                                 max_categories=2)])
    good = {"request_id": "r", "model": "m", "score": "thumbs", "value": True}
    cases = [
        ({**good, "value": "yes"}, TOKEN, 400, "value: score 'thumbs' is boolean", "schema"),
        ({**good, "request_id": 12}, TOKEN, 400, "request_id: must be a string", "schema"),
        ({**good, "model": "bad model name"}, TOKEN, 400, "model: must be 1 to 128 characters", "schema"),
        ({**good, "score": "stars"}, TOKEN, 400, "score: unknown score 'stars'", "unknown_score"),
        ({"feedback": [good, {**good, "timestamp": "yesterday"}]}, TOKEN, 400, "feedback[1].timestamp:", "schema"),
        (b"{not json", TOKEN, 400, "body is not valid JSON", "bad_json"),
        ({"feedback": [good] * 200}, TOKEN, 413, "the limit is 4096", "too_large"),
        (good, "wrong-token", 401, "Bearer token is required", "unauthorized"),
        (good, None, 401, "Bearer token is required", "unauthorized"),
        ({"feedback": [{**good, "model": f"m{i}"} for i in (2, 3, 4)]}, TOKEN, 400,
         "feedback[2].model: 'm4' would be model number 3; max_models is 2", "cardinality"),
        ({"feedback": [{**good, "score": "topic", "value": v} for v in ("a", "b", "c")]}, TOKEN, 400,
         "feedback[2].value: 'c' would be category number 3", "cardinality"),
    ]
    for body, token, status, message, _ in cases:
        code, answer = post(server.port, body, token=token)
        assert code == status and message in answer["error"], (body if not isinstance(body, dict) else "", answer)
    text = scrape(server.port)
    for reason in {c[4] for c in cases}:
        expected = sum(1 for c in cases if c[4] == reason)
        assert f'inferwatch_feedback_rejected_total{{reason="{reason}"}} {expected:.1f}' in text, reason
    assert "inferwatch_feedback_total{" not in text, "a refused batch counts nothing, not even its good items"
    # Within the bounds everything still works, and the first two categories are taken.
    assert post(server.port, {"feedback": [{**good, "score": "topic", "value": v} for v in ("a", "b", "a")]}) == (
        200, {"accepted": 3})
    assert post(server.port, {**good, "model": "m2"}) == (200, {"accepted": 1})
    code, answer = post(server.port, b"{}", token=TOKEN, path="/metrics")
    assert code == 405


def test_negative_requests_are_kept_for_retraining_and_exported(feedback, tmp_path: Path) -> None:
    server = feedback()
    old = time.time() - 3 * 86400
    items = [{"request_id": f"neg-{i}", "model": "llama" if i % 2 else "qwen", "model_version": "v3",
              "score": "thumbs", "value": False, "comment": COMMENT, "timestamp": old if i < 2 else time.time()}
             for i in range(6)]
    items += [{"request_id": "pos-1", "model": "llama", "model_version": "v3", "score": "thumbs", "value": True},
              {"request_id": "low-1", "model": "llama", "model_version": "v3", "score": "rating", "value": 1}]
    assert post(server.port, items) == (200, {"accepted": 8})

    def http_export(query: str) -> list[dict]:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        connection.request("GET", "/v1/feedback/export?" + query, headers={"Authorization": f"Bearer {TOKEN}"})
        response = connection.getresponse()
        body = response.read().decode()
        assert response.status == 200, body
        return [json.loads(line) for line in body.splitlines()]

    everything = http_export("")
    assert {r["request_id"] for r in everything} == {*(f"neg-{i}" for i in range(6)), "low-1"}
    assert {r["request_id"] for r in http_export("model=llama&score=thumbs")} == {"neg-1", "neg-3", "neg-5"}
    assert {r["request_id"] for r in http_export("since=1d")} == {"neg-2", "neg-3", "neg-4", "neg-5", "low-1"}
    assert set(everything[0]) == {"time", "received", "request_id", "model_name", "version", "score", "value"}
    store = tmp_path / "store"
    assert COMMENT not in "".join(p.read_text() for p in store.iterdir())

    cli = subprocess.run([sys.executable, "-m", "inferwatch.cli", "feedback", "export", "--store-dir", str(store),
                          "--model", "qwen", "--since", "2d"], capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0, cli.stderr
    assert [json.loads(line)["request_id"] for line in cli.stdout.splitlines()] == ["neg-2", "neg-4"]
    via_url = subprocess.run([sys.executable, "-m", "inferwatch.cli", "feedback", "export", "--url",
                              f"http://127.0.0.1:{server.port}", "--token-file", str(tmp_path / "token"),
                              "--score", "rating"], capture_output=True, text=True, timeout=60)
    assert via_url.returncode == 0, via_url.stderr
    assert [json.loads(line)["request_id"] for line in via_url.stdout.splitlines()] == ["low-1"]


def test_store_stays_within_its_size_bound(tmp_path: Path) -> None:
    from inferwatch.exporters.feedback.store import NegativeStore, Record, export

    store = NegativeStore(str(tmp_path), max_bytes=1 << 16, retention_seconds=86400, replica="a")
    for batch in range(200):
        store.append([Record(time.time(), time.time(), f"r-{batch}-{i}", "m", "v", "thumbs", False)
                      for i in range(20)])
    store.close()
    assert store.bytes_on_disk() <= 1 << 16
    assert store.stats.segments_deleted > 0
    kept = [r["request_id"] for r in export(tmp_path)]
    assert kept[-1] == "r-199-19" and "r-0-0" not in kept, "the oldest go first"
