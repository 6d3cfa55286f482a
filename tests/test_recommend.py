"""`inferwatch recommend`: capacity within the SLO read off measured points, replicas, the setting
changes worth making, and sweep files read back with errors naming the file and key (fast). The
real-server check (two max_num_seqs values on vLLM) is tests/test_recommend_live.py."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from inferwatch.cli import main
from inferwatch.recommend.advice import Point, Slo, Sweep, advise, capacity, format_advice
from inferwatch.recommend.sweep import SweepFileError, read_sweep, sweep_to_json

SLO = Slo(ttft_seconds=0.5, tpot_seconds=0.05)


def point(concurrency: int, rps: float, ttft: float, tpot: float = 0.02, errors: int = 0, requests: int = 100) -> Point:
    return Point(concurrency, requests, errors, 30.0, ttft / 2, ttft, tpot / 2, tpot, rps, rps * 32)


def sweep(settings: dict[str, str], *points: Point, prompt: int = 128, output: int = 32) -> Sweep:
    return Sweep(settings, prompt, output, points)


def test_capacity_is_the_best_measured_level_within_the_slo() -> None:
    s = sweep({}, point(1, 2.0, 0.1), point(4, 6.0, 0.3), point(8, 7.0, 0.9))  # 8 breaches TTFT
    c = capacity(s, SLO)
    assert (c.requests_per_second, c.point.concurrency) == (6.0, 4)
    tpot_breach = sweep({}, point(1, 2.0, 0.1), point(4, 6.0, 0.3, tpot=0.08))
    assert capacity(tpot_breach, SLO).requests_per_second == 2.0
    failing = sweep({}, point(1, 2.0, 0.1), point(4, 6.0, 0.3, errors=5))  # 5 of 105 failed: over 1 %
    assert capacity(failing, SLO).requests_per_second == 2.0
    never = sweep({}, point(1, 2.0, 0.7))
    assert (capacity(never, SLO).requests_per_second, capacity(never, SLO).point) == (0.0, None)


def test_a_single_setting_change_is_advised_with_its_measured_effect() -> None:
    one = sweep({"max_num_seqs": "1"}, point(1, 2.0, 0.1), point(4, 2.1, 1.5))
    eight = sweep({"max_num_seqs": "8"}, point(1, 2.2, 0.1), point(4, 7.5, 0.2))
    both = sweep({"max_num_seqs": "16", "max_num_batched_tokens": "4096"}, point(4, 9.0, 0.2))
    result = advise([one, eight, both], SLO, target_requests_per_second=20.0)
    assert [c.sweep for c in result.capacities] == [both, eight, one]
    # `both` differs from the others in two settings: no claim about either setting alone
    assert [(ch.setting, ch.before, ch.after) for ch in result.changes] == [("max_num_seqs", "1", "8")]
    assert result.changes[0].ratio == pytest.approx(7.5 / 2.0)  # seqs=1 met the SLO at concurrency 1 only
    assert [result.replicas(c) for c in result.capacities] == [3, 3, 10]  # ceil(20/9), ceil(20/7.5), ceil(20/2)
    text = format_advice(result)
    assert "- max_num_seqs: 1 -> 8: 2.00 -> 7.50 requests/s per replica within the SLO (x3.75)" in text
    assert "Recommended: max_num_batched_tokens=4096, max_num_seqs=16, 3 replica(s)" in text


def test_no_claims_across_workloads_and_when_nothing_meets_the_slo() -> None:
    a = sweep({"max_num_seqs": "1"}, point(1, 2.0, 0.9), prompt=64)
    b = sweep({"max_num_seqs": "8"}, point(1, 3.0, 0.8), prompt=512)
    result = advise([a, b], SLO, target_requests_per_second=5.0)
    assert result.changes == []
    assert any("different workloads" in n for n in result.notes)
    assert any("no measured level met the SLO" in n for n in result.notes)
    assert "SLO never met" in format_advice(result)


def test_sweep_file_round_trip_and_errors_name_the_file_and_key(tmp_path: Path) -> None:
    original = sweep({"max_num_seqs": "8"}, point(1, 2.0, 0.1),
                     Point(16, 0, 12, 30.0, math.inf, math.inf, math.inf, math.inf, 0.0, 0.0))
    path = tmp_path / "a.json"
    path.write_text(sweep_to_json(original, {"url": "http://x"}))
    back = read_sweep(path)
    assert (back.settings, back.points) == (original.settings, original.points)
    data = json.loads(path.read_text())
    data["points"][0]["ttft_p95_seconds"] = "fast"
    path.write_text(json.dumps(data))
    with pytest.raises(SweepFileError, match=rf"^{path}: points\[0\]\.ttft_p95_seconds: expected a number"):
        read_sweep(path)
    path.write_text('{"format": "inferwatch-capacity-sweep/1",\n "points": [}')
    with pytest.raises(SweepFileError, match=rf"^{path}:2: not JSON"):
        read_sweep(path)
    path.write_text(json.dumps({**data, "prompt_tokens": 0}))
    with pytest.raises(SweepFileError, match=rf"^{path}: prompt_tokens: expected a positive integer"):
        read_sweep(path)


def test_advise_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = []
    for seqs, rps4 in (("1", 2.1), ("8", 7.5)):
        path = tmp_path / f"seqs{seqs}.json"
        ttft4 = 1.5 if seqs == "1" else 0.2
        path.write_text(sweep_to_json(sweep({"max_num_seqs": seqs}, point(1, 2.0, 0.1), point(4, rps4, ttft4)), {}))
        files.append(str(path))
    assert main(["recommend", "advise", *files, "--ttft-slo", "0.5", "--tpot-slo", "0.05", "--target-rps", "15",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["recommended"] == {"max_num_seqs": "8"}
    assert [c["replicas"] for c in out["configurations"]] == [2, 8]
    assert out["changes"][0]["ratio"] == pytest.approx(7.5 / 2.0)
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert main(["recommend", "advise", str(bad)]) == 2
    assert f"inferwatch: recommend advise: {bad}: format:" in capsys.readouterr().err
