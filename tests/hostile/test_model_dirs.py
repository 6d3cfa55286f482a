"""Model-version fingerprints: only where the operator allowed, and nothing in a directory can block them."""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from inferwatch.config import EndpointConfig, EngineExporterConfig
from inferwatch.exporters.engine import server as engine_server
from inferwatch.exporters.engine.probe import probe
from inferwatch.exporters.engine.version import DirectoryVersion
from inferwatch.lab.fake_openai import Behaviour, FakeOpenAI


def versions(url: str) -> dict[str, tuple[str, str]]:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        if family.name == "inferwatch_model_version_info":
            return {s.labels["endpoint"]: (s.labels["version"], s.labels["source"]) for s in family.samples}
    return {}


def test_a_reported_root_outside_the_allowed_dirs_is_never_walked(tmp_path: Path) -> None:
    allowed = tmp_path / "models"
    (allowed / "m").mkdir(parents=True)
    (allowed / "m" / "config.json").write_text("{}")
    with FakeOpenAI(Behaviour(model="m", root="/usr")) as usr, \
            FakeOpenAI(Behaviour(model="m", root=str(allowed / "m"))) as ok:
        config = EngineExporterConfig(listen_address="127.0.0.1", port=0, model_dirs_allowed=[str(allowed)],
                                      endpoints=[EndpointConfig(name="usr", base_url=usr.url, model="m"),
                                                 EndpointConfig(name="ok", base_url=ok.url, model="m")])
        exporter = engine_server.start(config)
        try:
            seen = versions(exporter.url)
        finally:
            exporter.stop()
    assert seen["usr"] == ("/usr", "served_root"), "a peer cannot make the exporter hash /usr"
    assert seen["ok"][1] == "model_dir" and len(seen["ok"][0]) == 12


def test_special_files_in_an_allowed_dir_cannot_block_the_fingerprint(tmp_path: Path) -> None:
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text('{"layers": 2}')
    os.mkfifo(model / "pipe")  # opening a FIFO for reading blocks until a writer comes
    (model / "kmsg").symlink_to("/proc/kmsg")  # a "file" whose reads never end
    (model / "self").symlink_to("/proc/self/status")
    versions = DirectoryVersion(wait_seconds=5)
    first = versions.of(str(model))
    assert first is not None and len(first) == 12
    (model / "config.json").write_text('{"layers": 3}')
    assert versions.of(str(model)) not in (None, first)


def test_a_redirect_loop_is_reported_as_redirect(hostile) -> None:
    loop = hostile("redirect", location="")  # Location: <same path>: the same origin, forever
    result = probe(EndpointConfig(name="loop", base_url=loop.url, model="m"), timeout=1.0)
    assert result.failure == "redirect"
    assert len(loop.requests) == 4, "followed at most 3 times, then given up"
