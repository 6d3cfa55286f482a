"""The README's first command, end to end: the demo stack comes up, serves load and stops cleanly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def run_demo(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "inferwatch"
    return subprocess.run([str(exe), "--log-level", "warning", "demo", "--workdir", str(tmp_path), "--duration", "1",
                           *args], capture_output=True, text=True, timeout=600)


def test_demo_without_engine(tmp_path: Path) -> None:
    result = run_demo(tmp_path, "--no-engine")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "inferwatch-gpu" in result.stdout and " up" in result.stdout
    assert "GPUs up                  2" in result.stdout
    assert "stopped everything it started" in result.stdout


@pytest.mark.slow
def test_full_demo(engine_runtime, tmp_path: Path) -> None:
    result = run_demo(tmp_path, "--load-seconds", "4")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for job in ("inferwatch-engine", "inferwatch-gpu", "inferwatch-probe", "vllm"):
        line = next(line for line in out.splitlines() if line.strip().startswith(f"target {job} "))
        assert line.rstrip().endswith("up"), line
    assert "engine endpoints up      1" in out
    assert "probe success            1" in out, "the latency probe passes against the demo's vLLM"
    goodput = next(line for line in out.splitlines() if "SLO goodput ratio" in line)
    assert float(goodput.split()[-1]) > 0
    assert "errors: none" in out
    recorded = next(line for line in out.splitlines() if "recorded series (rules)" in line)
    assert int(recorded.split()[-1]) > 10, "the shipped rules record from the demo's vLLM"
    leftover = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True)
    assert leftover.stdout == "", "the demo left processes behind"
