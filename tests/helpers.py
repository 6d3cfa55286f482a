"""Small helpers shared by tests."""

from __future__ import annotations

import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest


def scrape(port: int, path: str = "/metrics") -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as response:
        return response.read().decode()


def by_label(result: list[dict], label: str) -> dict[str, float]:
    """Prometheus instant-query result -> {label value: float value}.

    Two series with the same value of `label` are an error, not a silent overwrite: a dict built
    that way could hide a duplicate (or wrongly labelled) series from the assertion using it.
    """
    out: dict[str, float] = {}
    for series in result:
        key = series["metric"].get(label, "")
        assert key not in out, f"{label}={key!r} labels more than one series: {result}"
        out[key] = float(series["value"][1])
    return out


def scrape_samples(url: str) -> dict[str, dict[tuple, float]]:
    """GET an exposition: {sample name: {sorted label items: value}}."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def backfilled_prometheus(workdir: Path, openmetrics: str, max_block_duration: str | None = None):
    """A started real Prometheus whose TSDB holds exactly `openmetrics` (backfilled with promtool, nothing
    scraped); the caller stops it."""
    from inferwatch.lab.stack import Prometheus

    if shutil.which("promtool") is None or shutil.which("prometheus") is None:
        pytest.fail("promtool and prometheus must be installed (scripts/setup.sh)")
    source = workdir / "history.om"
    source.write_text(openmetrics)
    (workdir / "data").mkdir()
    block = [f"--max-block-duration={max_block_duration}"] if max_block_duration else []
    subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", *block, str(source),
                    str(workdir / "data")], check=True, capture_output=True, timeout=300)
    source.unlink()
    return Prometheus(workdir, retention="30d", scrape_interval="1h", evaluation_interval="1h").start()
