"""Packaging: one import namespace, one console command, the design's folders in place."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_wheel_installs_only_the_inferwatch_namespace(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(REPO)], check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("inferwatch-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_levels = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top_levels == {"inferwatch"}
    assert "inferwatch/exporters/gpu/collector.py" in names
    assert "inferwatch/exporters/gpu/scenarios/h100x2.yaml" in names
    assert "inferwatch/examples/inferwatch.yaml" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "inferwatch = inferwatch.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_generic_names_are_not_importable(tmp_path: Path) -> None:
    code = "import importlib.util as u; print(u.find_spec('exporters'), u.find_spec('inferwatch.exporters.gpu'))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True)
    missing, found = result.stdout.split(" ", 1)
    assert missing == "None"
    assert found.strip() != "None"


def test_console_command_lists_its_subcommands() -> None:
    bin_dir = Path(sys.executable).parent
    result = subprocess.run([str(bin_dir / "inferwatch"), "--help"], capture_output=True, text=True, check=True)
    for command in ("gpu-exporter", "gpu-scenarios", "check-config", "demo"):
        assert command in result.stdout
    sub = subprocess.run([str(bin_dir / "inferwatch"), "gpu-exporter", "--help"], capture_output=True, text=True,
                         check=True)
    assert "--simulate" in sub.stdout and "--naming" in sub.stdout


def test_design_folders_exist() -> None:
    for folder in ("exporters", "dashboards", "alerts", "recording_rules", "scaler", "tests", "compose", "docs",
                   "benchmarks", ".ci"):
        assert (REPO / folder).is_dir(), folder
        assert any((REPO / folder).iterdir()), f"{folder}/ is empty"


def test_production_path_never_imports_the_simulator() -> None:
    code = (
        "import sys\n"
        "from inferwatch.config import GpuExporterConfig\n"
        "from inferwatch.exporters.gpu import server\n"
        "from inferwatch import cli\n"
        "from inferwatch.exporters.gpu.collector import GpuCollector\n"
        "collector = GpuCollector(GpuExporterConfig(xid_events=False))\n"
        "print(collector.nv.__name__, 'inferwatch.exporters.gpu.simnvml' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["pynvml", "False"]
