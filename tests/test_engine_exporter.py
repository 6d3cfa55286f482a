"""Engine exporter against misbehaving endpoints: each fault is a metric value, never a crash."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from helpers import by_label, scrape
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from inferwatch.config import EndpointConfig, EngineExporterConfig
from inferwatch.exporters.engine import server as engine_server
from inferwatch.exporters.engine.collector import EngineCollector
from inferwatch.exporters.engine.probe import probe
from inferwatch.exporters.engine.version import DirectoryVersion
from inferwatch.kit.exporter import registry_for
from inferwatch.lab.fake_openai import DEFAULT_MODEL, Behaviour, FakeOpenAI
from inferwatch.lab.stack import free_port


@pytest.fixture
def peers():
    """Starts fake engines (real HTTP servers on loopback) and returns their base URLs."""
    started: list[FakeOpenAI] = []

    def start(behaviour: Behaviour) -> str:
        fake = FakeOpenAI(behaviour).start()
        started.append(fake)
        return fake.url

    yield start
    for fake in started:
        fake.stop()


def endpoint(name: str, url: str, model: str = DEFAULT_MODEL, role: str = "primary", **extra) -> EndpointConfig:
    return EndpointConfig(name=name, base_url=url, model=model, role=role, **extra)


def test_probe_reports_each_failure_kind(peers) -> None:
    ok = probe(endpoint("ok", peers(Behaviour())), timeout=1.0)
    assert (ok.healthy, ok.failure, ok.serves_model, ok.model_root) == (True, "", True, f"/models/{DEFAULT_MODEL}")
    assert (ok.served_models, ok.engine_version) == ({DEFAULT_MODEL: 4096}, "0.0.0+fake")
    slow = probe(endpoint("slow", peers(Behaviour(delay=3))), timeout=0.3)
    assert (slow.healthy, slow.failure) == (False, "timeout")
    assert slow.duration < 1.0, "a slow endpoint costs at most its deadline"
    broken = probe(endpoint("broken", peers(Behaviour(health_status=503))), timeout=1.0)
    assert (broken.healthy, broken.failure) == (False, "http_5xx")
    garbage = probe(endpoint("garbage", peers(Behaviour(models_body=b"<html>oops"))), timeout=1.0)
    assert (garbage.healthy, garbage.failure, garbage.serves_model) == (True, "malformed", False)
    wrong_shape = probe(endpoint("shape", peers(Behaviour(models_body=b'{"data": [{"name": 1}]}'))), timeout=1.0)
    assert wrong_shape.failure == "malformed"
    refused = probe(endpoint("down", f"http://127.0.0.1:{free_port()}"), timeout=1.0)
    assert (refused.healthy, refused.failure) == (False, "refused")
    other_model = probe(endpoint("other", peers(Behaviour(model="x"))), timeout=1.0)
    assert (other_model.healthy, other_model.serves_model) == (True, False)


def test_auth_header_comes_from_the_named_env_var(peers, monkeypatch: pytest.MonkeyPatch) -> None:
    url = peers(Behaviour(require_auth="Bearer s3cret"))
    without = probe(endpoint("a", url, auth_header_env="VLLM_AUTH"), timeout=1.0)
    assert (without.healthy, without.failure) == (False, "http_4xx")
    monkeypatch.setenv("VLLM_AUTH", "Bearer s3cret")
    with_auth = probe(endpoint("a", url, auth_header_env="VLLM_AUTH"), timeout=1.0)
    assert (with_auth.healthy, with_auth.failure, with_auth.serves_model) == (True, "", True)


def test_exporter_in_prometheus_with_redundancy(prometheus, peers) -> None:
    config = EngineExporterConfig(listen_address="127.0.0.1", port=0, probe_timeout_seconds=0.5, endpoints=[
        endpoint("a", peers(Behaviour())),
        endpoint("b", peers(Behaviour(delay=2))),
        endpoint("c", peers(Behaviour(models_body=b"not json")), role="backup"),
        endpoint("d", peers(Behaviour()), role="backup"),
        endpoint("e", f"http://127.0.0.1:{free_port()}", model="other"),
    ])
    running = engine_server.start(config)
    try:
        job = "engine-fake"
        prometheus.set_job(job, [f"127.0.0.1:{running.port}"], scrape_timeout="1s")
        prometheus.wait_for_series(f'inferwatch_engine_up{{job="{job}"}}', count=5)
        up = by_label(prometheus.query(f'inferwatch_engine_up{{job="{job}"}}'), "endpoint")
        assert up == {"a": 1, "b": 0, "c": 1, "d": 1, "e": 0}
        healthy = prometheus.query(f'inferwatch_model_healthy_endpoints{{job="{job}"}}')
        assert {(h["metric"]["model_name"], h["metric"]["role"]): float(h["value"][1]) for h in healthy} == {
            (DEFAULT_MODEL, "primary"): 1, (DEFAULT_MODEL, "backup"): 1, ("other", "primary"): 0}
        failures = prometheus.query(f'inferwatch_engine_probe_failures_total{{job="{job}"}} > 0')
        assert {(f["metric"]["endpoint"], f["metric"]["reason"]) for f in failures} == {
            ("b", "timeout"), ("c", "malformed"), ("e", "refused")}
        assert prometheus.query_value(f'up{{job="{job}"}}') == 1
        # The scrape is bounded by the probe deadline even though endpoint b takes 2 s.
        assert prometheus.query_value(f'inferwatch_engine_exporter_probe_round_seconds{{job="{job}"}}') < 1.0
    finally:
        running.stop()


def series(text: str, name: str) -> dict[tuple, float]:
    """{tuple(sorted labels): value} of the samples called `name` in an exposition."""
    return {tuple(sorted(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples if sample.name == name}


def test_probe_that_raises_is_an_error_not_a_timeout(peers, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug in our own probe code is reason="error" plus a counted exporter error; no endpoint is blamed."""
    from inferwatch.exporters.engine import collector as engine_collector

    real_probe = engine_collector.probe_async

    async def buggy_probe(endpoint_config: EndpointConfig, timeout: float):
        if endpoint_config.name == "buggy":
            raise RuntimeError("a bug in the probe")
        return await real_probe(endpoint_config, timeout)

    monkeypatch.setattr(engine_collector, "probe_async", buggy_probe)
    url = peers(Behaviour())
    collector = EngineCollector(EngineExporterConfig(probe_timeout_seconds=1.0, endpoints=[
        endpoint("ok", url), endpoint("buggy", url)]))
    registry = registry_for(collector)
    try:
        generate_latest(registry)
        text = generate_latest(registry).decode()
    finally:
        collector.close()
    assert series(text, "inferwatch_engine_probe_failures_total") == {
        (("endpoint", "buggy"), ("reason", "error")): 2.0}, "2 scrapes; never reason=timeout, nothing for ok"
    assert series(text, "inferwatch_engine_exporter_errors_total") == {
        (("error", "RuntimeError"), ("stage", "probe")): 2.0}
    up = {dict(labels)["endpoint"]: value for labels, value in series(text, "inferwatch_engine_up").items()}
    assert up == {"ok": 1.0, "buggy": 0.0}
    (round_seconds,) = series(text, "inferwatch_engine_exporter_probe_round_seconds").values()
    assert round_seconds < 0.5, "a raising probe is not waited for like a hung one (deadline 1 s)"


def test_version_from_config_wins_and_changes_are_counted(peers, tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text('{"layers": 2}')
    url = peers(Behaviour(root=str(model_dir)))
    config = EngineExporterConfig(endpoints=[endpoint("a", url), endpoint("b", url, model_version="v7")],
                                  listen_address="127.0.0.1", port=0, model_dirs_allowed=[str(tmp_path)])
    running = engine_server.start(config)
    try:
        def versions() -> dict[str, tuple[str, str]]:
            out = {}
            for line in scrape(running.port).splitlines():
                if line.startswith("inferwatch_model_version_info{"):
                    labels = dict(part.split("=", 1) for part in line[line.index("{") + 1:line.index("}")].split(","))
                    out[labels["endpoint"].strip('"')] = (labels["version"].strip('"'), labels["source"].strip('"'))
            return out

        first = versions()
        assert first["b"] == ("v7", "config")
        assert first["a"][1] == "model_dir" and len(first["a"][0]) == 12
        assert versions() == first, "no change, no new version"
        time.sleep(0.01)
        (model_dir / "config.json").write_text('{"layers": 3}')
        second = versions()
        assert second["a"][0] != first["a"][0] and second["b"] == first["b"]
        text = scrape(running.port)
        assert f'inferwatch_model_version_changes_total{{endpoint="a",model_name="{DEFAULT_MODEL}"}} 1.0' in text
        assert f'inferwatch_model_version_changes_total{{endpoint="b",model_name="{DEFAULT_MODEL}"}} 0.0' in text
    finally:
        running.stop()


def test_a_slow_first_fingerprint_is_not_a_version_change(peers, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """On a loaded host the first fingerprint outlasts a scrape's wait: the exporter must not report
    the served root meanwhile, or the fingerprint's arrival counts as a deploy (seen in CI: the first
    version never settled, because it was replaced by itself)."""
    from inferwatch.exporters.engine import version as version_module

    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text('{"layers": 2}')
    real_sample = version_module._sample

    def slow_sample(path: Path, size: int) -> bytes:
        time.sleep(1.0)
        return real_sample(path, size)

    monkeypatch.setattr(version_module, "_sample", slow_sample)
    url = peers(Behaviour(root=str(model_dir)))
    running = engine_server.start(EngineExporterConfig(endpoints=[endpoint("a", url)], listen_address="127.0.0.1",
                                                       port=0, model_dirs_allowed=[str(tmp_path)]))
    try:
        early = scrape(running.port)
        assert "inferwatch_model_version_info{" not in early, "no version before the fingerprint, not the root"
        deadline = time.monotonic() + 10
        while "inferwatch_model_version_info{" not in (text := scrape(running.port)):
            assert time.monotonic() < deadline, "the fingerprint never arrived"
            time.sleep(0.2)
        assert 'source="model_dir"' in text
        assert f'inferwatch_model_version_changes_total{{endpoint="a",model_name="{DEFAULT_MODEL}"}} 0.0' in text
    finally:
        running.stop()


def test_a_fingerprint_over_its_budget_stops_being_pending(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pending lasts until the first attempt ends, success or not: a directory too big to hash within the
    budget must fall back to the served root, not stay versionless."""
    from inferwatch.exporters.engine import version as version_module

    for name in ("a.bin", "b.bin"):
        (tmp_path / name).write_bytes(b"x")
    real_sample = version_module._sample
    monkeypatch.setattr(version_module, "_sample", lambda path, size: (time.sleep(0.5), real_sample(path, size))[1])
    versions = DirectoryVersion(wait_seconds=0.05, budget_seconds=0.2)
    assert versions.lookup(str(tmp_path)) == (None, True), "the first attempt is still running"
    deadline = time.monotonic() + 10
    while (answer := versions.lookup(str(tmp_path))) == (None, True):
        assert time.monotonic() < deadline, "still pending after the first attempt ended"
        time.sleep(0.1)
    assert answer == (None, False) and versions.timeouts >= 1


def test_directory_version_covers_large_files(tmp_path: Path) -> None:
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"\0" * (5 * 1024 * 1024))
    versions = DirectoryVersion()
    before = versions.of(str(tmp_path))
    assert before is not None and len(before) == 12
    assert versions.of(str(tmp_path)) == before, "unchanged content, same version (else != below proves nothing)"
    with weights.open("r+b") as handle:  # a retrained checkpoint changes the tail too
        handle.seek(-10, 2)
        handle.write(b"x" * 10)
    assert versions.of(str(tmp_path)) != before
    assert versions.of(str(tmp_path / "missing")) is None


def test_duplicate_endpoint_names_are_a_config_error(tmp_path: Path) -> None:
    from inferwatch.config import ConfigError, load_config

    path = tmp_path / "c.yaml"
    path.write_text("engine_exporter:\n  endpoints:\n    - {name: a, base_url: \"http://a:8000\", model: m}\n"
                    "    - {name: a, base_url: \"http://b:8000\", model: m}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}:3: engine_exporter.endpoints: endpoint names must be unique; repeated: a"
