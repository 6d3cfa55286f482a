"""Golden expositions: what the exporters serve, byte for byte, against tests/golden/*.txt.

Regenerate after an intended change with `.venv/bin/python tests/golden.py --update` (see golden.py).
"""

from __future__ import annotations

import golden
import pytest

CASES = golden.cases()


@pytest.mark.parametrize("name", sorted(CASES))
def test_exposition_matches_golden(name: str) -> None:
    problem = golden.check(name, CASES[name])
    if problem:
        pytest.fail(problem, pytrace=False)


def test_every_golden_file_has_a_case() -> None:
    assert sorted(p.name for p in golden.GOLDEN_DIR.glob("*.txt")) == sorted(CASES), (
        f"stale or missing golden files: run `{golden.REGENERATE}`")


def test_every_scenario_file_and_naming_is_covered() -> None:
    """Against the YAML files in the source tree, not `scenario_names()` (which `cases()` itself uses)."""
    folder = golden.GOLDEN_DIR.parent.parent / "exporters" / "gpu" / "scenarios"
    scenarios = sorted(p.stem for p in folder.glob("*.yaml"))
    assert len(scenarios) >= 8
    assert {name for name in CASES if name.startswith("gpu-")} == {
        f"gpu-{s}-{n}.txt" for s in scenarios for n in ("inferwatch", "dcgm")}


def test_masking_keeps_simulated_counters_exact() -> None:
    text = golden.normalise(
        'inferwatch_gpu_exporter_collect_duration_seconds 0.0123\n'
        'inferwatch_gpu_xid_last_timestamp_seconds{gpu="1",xid="79"} 1.7e9\n'
        'inferwatch_gpu_clock_event_duration_seconds_total{gpu="0",reason="thermal"} 10.0\n'
        'process_cpu_seconds_total 1.5\n')
    assert text == (
        f'inferwatch_gpu_exporter_collect_duration_seconds {golden.MASK}\n'
        f'inferwatch_gpu_xid_last_timestamp_seconds{{gpu="1",xid="79"}} {golden.MASK}\n'
        'inferwatch_gpu_clock_event_duration_seconds_total{gpu="0",reason="thermal"} 10.0\n')
