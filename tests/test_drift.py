"""The drift exporter: samples in over HTTP, text drift against a captured reference, references that
survive a restart and refuse to be silently replaced when corrupt, and refusals counted."""

from __future__ import annotations

import http.client
import json
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import scrape

from inferwatch.config import DriftExporterConfig, DriftSamplesConfig
from inferwatch.exporters.drift import server as drift_server
from inferwatch.exporters.drift.histograms import Distribution
from inferwatch.exporters.drift.references import Reference, ReferenceStore

TEXT = ("the model answers questions about invoices shipping returns refunds and account settings for customers "
        "who write in from the web shop mobile app and support email every day of the week")
WORDS = tuple(TEXT.split(" "))
SECRET = "my-password-is-hunter2"


def prose(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high))).capitalize() + "?"


def code(rng: random.Random) -> str:
    lines = rng.randint(8, 30)
    body = "\n".join(f"    x_{i} = compute({rng.randint(0, 9999)}, {rng.random():.4f})" for i in range(lines))
    return f"Fix this function:\n```python\ndef f():\n{body}\n```\nWhy does it fail on ÄÖÜ input?"


def post(port: int, body: object, token: str | None = None) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    try:
        connection.request("POST", "/v1/samples", body=json.dumps(body).encode(), headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def metric(text: str, name: str, **labels: str) -> dict[tuple, float]:
    """{(labels...): value} of the samples named `name` whose labels include `labels`."""
    from prometheus_client.parser import text_string_to_metric_families

    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                out[tuple(sorted(sample.labels.items()))] = sample.value
    return out


@pytest.fixture
def drift(tmp_path: Path) -> Iterator[Callable[..., object]]:
    started = []

    def start(**fields: object) -> object:
        samples = DriftSamplesConfig(slot_seconds=1, window_seconds=3, reference_offset_seconds=3,
                                     retention_seconds=60, reservoir_size=300)
        fields = {"samples": samples, **fields}
        config = DriftExporterConfig(listen_address="127.0.0.1", port=0, interval_seconds=3600, min_samples=100,
                                     references_dir=str(tmp_path / "refs"), **fields)  # type: ignore[arg-type]
        running = drift_server.start(config)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "inferwatch.cli", "drift", *args], capture_output=True, text=True,
                          timeout=120)


def post_window(port: int, model: str, make: Callable[[random.Random], str], seed: int, n: int = 400) -> None:
    rng = random.Random(seed)
    for start in range(0, n, 200):
        rows = [{"prompt": make(rng) + (f" {SECRET}" if i == 0 else ""), "response": prose(rng, 5, 40)}
                for i in range(min(200, n - start))]
        assert post(port, {"model": model, "samples": rows}) == (200, {"accepted": len(rows)})


def test_text_drift_against_a_captured_reference_survives_a_restart(drift, tmp_path: Path) -> None:
    refs = tmp_path / "refs"
    first = drift()
    t0 = time.time()
    post_window(first.port, "chat", lambda rng: prose(rng, 10, 40), seed=1)
    time.sleep(1.1)  # the next slot
    t1 = time.time()
    captured = cli("reference", "--references-dir", str(refs), "capture", "base", "--from", str(t0 - 1), "--to",
                   str(t1), "--exporter", first.url.removesuffix("/metrics"))
    assert captured.returncode == 0, captured.stderr
    assert cli("reference", "--references-dir", str(refs), "pin", "base").returncode == 0
    assert SECRET not in (refs / "base.json").read_text(), "a reference holds sketches, never text"
    first.stop()

    second = drift()  # a restart: only the files are left
    post_window(second.port, "chat", lambda rng: prose(rng, 10, 40), seed=2)  # same distribution
    second.collector.run_once()
    text = scrape(second.port)
    assert metric(text, "inferwatch_drift_reference_info", model_name="chat") == {
        (("model_name", "chat"), ("reference", "base")): 1.0}
    control = metric(text, "inferwatch_drift_detected", model_name="chat", source="samples")
    assert control and sum(control.values()) == 0, {k: v for k, v in control.items() if v}
    assert metric(text, "inferwatch_drift_samples", model_name="chat", window="reference", feature="prompt_chars")[
        (("feature", "prompt_chars"), ("model_name", "chat"), ("source", "samples"), ("window", "reference"))] == 400

    time.sleep(3.1)  # out of the current window
    post_window(second.port, "chat", code, seed=3)  # code, longer, non-ASCII: shifted
    second.collector.run_once()
    text = scrape(second.port)
    shifted = metric(text, "inferwatch_drift_detected", model_name="chat", source="samples")
    drifted = {dict(k)["feature"] for k, v in shifted.items() if v}
    assert {"prompt_chars", "prompt_code_blocks", "prompt_digit_ratio", "embedding"} <= drifted, drifted
    mmd = metric(text, "inferwatch_drift_score", model_name="chat", feature="embedding", method="mmd")
    (score,) = mmd.values()
    assert score > 0.015
    assert SECRET not in text


def test_corrupt_reference_is_an_error_and_is_never_replaced(drift, tmp_path: Path) -> None:
    refs = tmp_path / "refs"
    store = ReferenceStore(refs)
    store.save(Reference("good", time.time(), 0, 60, histograms={"m": {"prompt_tokens": Distribution(
        (10.0, 100.0, float("inf")), (5.0, 50.0, 1.0))}}))
    (refs / "bad.json").write_text('{"name": "bad", "created": 1, "from": 0, "to": 60, "histograms": '
                                   '{"m": {"prompt_tokens": {"bounds": [10, 5, "+Inf"], "counts": [1, 2, 3]}}}, '
                                   '"samples": {}}')
    listed = json.loads(cli("reference", "--references-dir", str(refs), "list").stdout)
    errors = {r["name"]: r.get("error", "") for r in listed["references"]}
    assert errors["good"] == "" and "histograms.m.prompt_tokens.bounds: must increase" in errors["bad"]
    refused = cli("reference", "--references-dir", str(refs), "pin", "bad")
    assert refused.returncode == 1 and "bad.json: histograms.m.prompt_tokens.bounds" in refused.stderr
    before = (refs / "bad.json").read_bytes()
    overwrite = cli("reference", "--references-dir", str(refs), "capture", "bad", "--from", "1h",
                    "--prometheus-url", "http://127.0.0.1:9")
    assert overwrite.returncode == 1 and (refs / "bad.json").read_bytes() == before

    # A pin whose file breaks later: that model gets no score, and the exporter says why.
    assert cli("reference", "--references-dir", str(refs), "pin", "good", "--model", "m").returncode == 0
    (refs / "good.json").write_text("{truncated")
    running = drift()
    post_window(running.port, "m", lambda rng: prose(rng, 10, 40), seed=4)
    running.collector.run_once()
    text = scrape(running.port)
    assert metric(text, "inferwatch_drift_reference_valid", reference="good") == {(("reference", "good"),): 0.0}
    assert not metric(text, "inferwatch_drift_score", model_name="m")
    assert cli("reference", "--references-dir", str(refs), "delete", "good").returncode == 1, "pinned"


def test_bad_samples_are_refused_and_counted(drift, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t0k3n")
    running = drift(bearer_token_file=str(token),
                    samples=DriftSamplesConfig(max_models=1, max_batch=10, max_body_bytes=4096))
    ok = {"model": "m", "samples": [{"prompt": "hello there"}]}
    cases = [
        (ok, None, 401, "Bearer token", "unauthorized"),
        ({"model": "m", "samples": [{"prompt": 3}]}, "t0k3n", 400, "samples[0].prompt: must be a string", "schema"),
        ({"model": "m", "samples": [{"features": {"prompt_chars": "long"}}]}, "t0k3n", 400, "prompt_chars",
         "schema"),
        ({"model": "m", "samples": [{"features": {"colour": 1}}]}, "t0k3n", 400, "unknown feature 'colour'",
         "schema"),
        ({"model": "m", "samples": [{"prompt": "x"}] * 11}, "t0k3n", 400, "at most 10", "too_large"),
        ({"model": "m", "samples": [{"prompt": "x" * 5000}]}, "t0k3n", 413, "the limit is 4096", "too_large"),
        ({"samples": [{"prompt": "x"}]}, "t0k3n", 400, "model: must be", "schema"),
    ]
    for body, tok, status, message, _ in cases:
        code, answer = post(running.port, body, tok)
        assert code == status and message in answer["error"], answer
    assert post(running.port, ok, "t0k3n") == (200, {"accepted": 1})
    code, answer = post(running.port, {**ok, "model": "m2"}, "t0k3n")
    assert code == 400 and "max_models is 1" in answer["error"]
    text = scrape(running.port)
    assert metric(text, "inferwatch_drift_samples_rejected_total", reason="too_large") == {
        (("reason", "too_large"),): 2.0}
    assert metric(text, "inferwatch_drift_samples_rejected_total", reason="cardinality") == {
        (("reason", "cardinality"),): 1.0}
    assert metric(text, "inferwatch_drift_samples_received_total") == {(("model_name", "m"),): 1.0}
