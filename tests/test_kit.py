"""The component kit: the family table, self-metrics with one set of names, the exporter handle."""

from __future__ import annotations

import pytest
from helpers import scrape_samples

from inferwatch.config import EndpointConfig, EngineExporterConfig, GpuExporterConfig
from inferwatch.exporters.engine import server as engine_server
from inferwatch.exporters.gpu import server as gpu_server
from inferwatch.exporters.gpu.simnvml import SimulatedNvml
from inferwatch.kit.exporter import serve
from inferwatch.kit.families import Family, FamilyTable, Sample
from inferwatch.kit.selfmetrics import MAX_ERROR_SERIES, SelfMetrics
from inferwatch.lab.process import free_port

TABLE = FamilyTable("demo_", [
    Family("things", "counter", "Things seen.", ("kind",)),
    Family("level_ratio", "gauge", "A level."),
])


def test_table_renders_counters_with_total_and_keeps_table_order() -> None:
    metrics = TABLE.render([Sample("level_ratio", {}, 0.5), Sample("things", {"kind": "a"}, 3)])
    assert [m.name for m in metrics] == ["demo_things", "demo_level_ratio"]
    assert [(s.name, s.labels, s.value) for s in metrics[0].samples] == [("demo_things_total", {"kind": "a"}, 3)]
    assert [m.name for m in TABLE.describe()] == ["demo_things", "demo_level_ratio"]


def test_table_rejects_labels_it_does_not_declare() -> None:
    with pytest.raises(ValueError, match="demo_things: labels"):
        TABLE.render([Sample("things", {"kind": "a", "prompt": "hello"}, 1)])
    with pytest.raises(ValueError, match="declared twice"):
        FamilyTable("x_", [Family("a", "gauge", "."), Family("a", "gauge", ".")])


class Broken:
    """A component whose collection raises: the kit must keep serving its health."""

    def __init__(self) -> None:
        self.self_metrics = SelfMetrics("broken")
        self.closed = False

    def describe(self) -> list:
        return TABLE.describe()

    def collect(self) -> list:
        raise KeyError("a bug")

    def close(self) -> None:
        self.closed = True


def test_a_failing_collect_is_an_error_sample_not_http_500() -> None:
    exporter = serve(Broken(), "127.0.0.1", 0)
    try:
        scrape_samples(exporter.url)
        seen = scrape_samples(exporter.url)
    finally:
        exporter.stop()
    assert seen["inferwatch_broken_exporter_errors_total"] == {(("error", "KeyError"), ("stage", "collect")): 2.0}
    assert seen["inferwatch_broken_exporter_scrapes_total"] == {(): 2.0}
    assert "demo_things_total" not in seen
    assert exporter.collector.closed, "stop() releases the collector"


def test_error_series_are_bounded() -> None:
    metrics = SelfMetrics("x")
    for i in range(MAX_ERROR_SERIES + 50):
        metrics.error(f"stage{i}", "E")
    errors = metrics.errors()
    assert len(errors) == MAX_ERROR_SERIES + 1
    assert errors[("other", "other")] == 50


SELF_NAMES = ("scrapes_total", "scrape_duration_seconds", "errors_total", "config_last_reload_success")


def test_every_exporter_has_the_same_self_metrics() -> None:
    """The GPU and engine exporters (the vLLM plugin: tests/test_vllm.py) expose the kit's four names."""
    gpu = gpu_server.start(GpuExporterConfig(listen_address="127.0.0.1", port=0, hostname="h", xid_events=False,
                                             process_attribution=False), nvml=SimulatedNvml.from_scenario("h100x2"))
    engine = engine_server.start(EngineExporterConfig(listen_address="127.0.0.1", port=0, endpoints=[
        EndpointConfig(name="down", base_url=f"http://127.0.0.1:{free_port()}", model="m")]))
    try:
        for component, exporter in (("gpu", gpu), ("engine", engine)):
            scrape_samples(exporter.url)
            seen = scrape_samples(exporter.url)
            for name in SELF_NAMES:
                full = f"inferwatch_{component}_exporter_{name}"
                if name == "errors_total":
                    assert full not in seen or all(set(dict(k)) == {"stage", "error"} for k in seen[full])
                else:
                    assert full in seen, full
            assert seen[f"inferwatch_{component}_exporter_scrapes_total"] == {(): 2.0}
            assert seen[f"inferwatch_{component}_exporter_config_last_reload_success"] == {(): 1.0}
            assert seen[f"inferwatch_{component}_exporter_scrape_duration_seconds"][()] > 0
    finally:
        gpu.stop()
        engine.stop()
