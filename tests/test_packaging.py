"""Packaging: one import namespace, one console command, the design's folders in place.

The wheel is checked against the source tree as git sees it (not against setup.py's own walk), so
a module or data file that the build drops, or a second top-level name it adds, fails here.
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# The design's top-level source folders -> where they live in the one import namespace.
SOURCE_FOLDERS = {
    "inferwatch": "inferwatch",
    "exporters": "inferwatch/exporters",
    "scaler": "inferwatch/scaler",
    "dashboards": "inferwatch/dashboards",
    "alerts": "inferwatch/alerts",
    "recording_rules": "inferwatch/recording_rules",
}
# What building the wheel reads besides the source folders.
BUILD_INPUTS = ("pyproject.toml", "setup.py", "README.md")
CONSOLE_SCRIPT = "inferwatch.cli:main"
VLLM_PLUGIN = "inferwatch.exporters.vllm_plugin.stat_logger:InferwatchStatLogger"
# Lines of a build log that mean our packaging needs attention (setuptools/pip warnings).
WARNING = re.compile(r"warning|deprecat|would be ignored", re.IGNORECASE)
FILE_OPERATION = re.compile(r"^\s*(copying|creating|adding|removing) ")


def _is_cache(path: str) -> bool:
    parts = path.split("/")
    return "__pycache__" in parts or path.endswith((".pyc", ".pyo"))


def source_files() -> list[str]:
    """Files git tracks (or would track: new, not ignored) under the build inputs; caches excluded."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--",
                             *SOURCE_FOLDERS, *BUILD_INPUTS], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout.split("\0")
    return sorted(p for p in listed if p and not _is_cache(p) and (REPO / p).is_file())


def expected_wheel_paths(sources: list[str]) -> set[str]:
    """Every file under the source folders at its installed path, e.g. exporters/x.py -> inferwatch/exporters/x.py."""
    paths = set()
    for path in sources:
        folder, _, rest = path.partition("/")
        if folder in SOURCE_FOLDERS and rest:
            paths.add(f"{SOURCE_FOLDERS[folder]}/{rest}")
    return paths


@dataclass(frozen=True)
class BuiltWheel:
    path: Path
    log: str  # pip's verbose output of the build, setuptools' messages included
    sources: list[str]  # the source tree it was built from (a checkout being edited changes under a session)

    def names(self) -> list[str]:
        with zipfile.ZipFile(self.path) as wheel:
            return wheel.namelist()

    def read(self, suffix: str) -> str:
        with zipfile.ZipFile(self.path) as wheel:
            (name,) = [n for n in wheel.namelist() if n.endswith(suffix)]
            return wheel.read(name).decode()


def build_wheel(workdir: Path) -> BuiltWheel:
    """Build the wheel from a copy of the source tree (git's files only).

    A copy, not the checkout: setuptools builds in-tree and ships whatever a previous build left
    in build/lib, and other builds of the same checkout may run at the same time.
    """
    tree, out = workdir / "src", workdir / "dist"
    sources = source_files()
    for path in sources:
        (tree / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / path, tree / path)
    # PYTHONDONTWRITEBYTECODE (set on some machines) makes distutils warn that it skips byte-compiling.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation",
                             "-w", str(out), str(tree)], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    (wheel,) = out.glob("inferwatch-*.whl")
    return BuiltWheel(wheel, result.stdout + result.stderr, sources)


_built: dict[str, BuiltWheel] = {}
_build_lock = threading.Lock()


def shared_wheel(factory: pytest.TempPathFactory) -> BuiltWheel:
    """One wheel per test session, shared by the packaging, fresh-venv and compose tests."""
    with _build_lock:
        if "wheel" not in _built:
            _built["wheel"] = build_wheel(factory.mktemp("wheel"))
        return _built["wheel"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> BuiltWheel:
    return shared_wheel(tmp_path_factory)


def test_wheel_holds_every_source_file_at_its_inferwatch_path(wheel: BuiltWheel) -> None:
    expected = expected_wheel_paths(wheel.sources)
    assert "inferwatch/exporters/gpu/scenarios/h100x2.yaml" in expected, "the source listing found the tree"
    shipped = {n for n in wheel.names() if not n.split("/")[0].endswith(".dist-info")}
    missing, unexpected = sorted(expected - shipped), sorted(shipped - expected)
    assert not missing, f"source files missing from the wheel: {missing}"
    assert not unexpected, f"files in the wheel that are not in the source tree: {unexpected}"


def test_wheel_has_only_the_inferwatch_namespace_and_its_dist_info(wheel: BuiltWheel) -> None:
    from inferwatch import __version__

    assert {n.split("/")[0] for n in wheel.names()} == {"inferwatch", f"inferwatch-{__version__}.dist-info"}


def test_wheel_declares_the_console_script_and_the_vllm_plugin(wheel: BuiltWheel) -> None:
    entry_points = configparser.ConfigParser()
    entry_points.read_string(wheel.read(".dist-info/entry_points.txt"))
    assert dict(entry_points["console_scripts"]) == {"inferwatch": CONSOLE_SCRIPT}
    assert dict(entry_points["vllm.stat_logger_plugins"]) == {"inferwatch": VLLM_PLUGIN}
    for target in (CONSOLE_SCRIPT, VLLM_PLUGIN):  # each names a module the wheel ships, defining the attribute
        module, attribute = target.split(":")
        source = wheel.read("/".join(module.split(".")) + ".py")
        assert re.search(rf"^(def|class) {attribute}\b", source, re.MULTILINE), target


def test_wheel_metadata_offers_every_extra_the_cli_names(wheel: BuiltWheel) -> None:
    from inferwatch.kit.extras import EXTRAS

    metadata = wheel.read(".dist-info/METADATA")
    assert "License-Expression: Apache-2.0" in metadata
    offered = set(re.findall(r"^Provides-Extra: (\S+)$", metadata, re.MULTILINE))
    assert set(EXTRAS) <= offered, f"extras named by `inferwatch` but not installable: {set(EXTRAS) - offered}"
    assert {"all", "test"} <= offered


def test_building_the_wheel_prints_no_packaging_warnings(wheel: BuiltWheel) -> None:
    assert "running bdist_wheel" in wheel.log, "the log is verbose enough to show setuptools' messages"
    warnings = [line for line in wheel.log.splitlines() if WARNING.search(line) and not FILE_OPERATION.match(line)]
    assert not warnings, "\n".join(warnings)


def test_nothing_in_the_wheel_is_importable_under_a_second_name(wheel: BuiltWheel, tmp_path: Path) -> None:
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel.path) as archive:
        archive.extractall(site)
    neutral = tmp_path / "cwd"
    neutral.mkdir()
    generic = sorted({*SOURCE_FOLDERS, "mixin", "kit", "lab", "gpu", "engine", "vllm_plugin"} - {"inferwatch"})
    code = (
        "import importlib.util, pkgutil, sys\n"
        f"sys.path.insert(0, {str(site)!r})\n"
        f"print(sorted(m.name for m in pkgutil.iter_modules([{str(site)!r}])))\n"
        f"print([n for n in {generic!r} if importlib.util.find_spec(n) is not None])\n"
        "print(importlib.util.find_spec('inferwatch.exporters.gpu').origin)\n"
    )
    # -I -S: no site-packages (so not the checkout's editable install), no cwd, no PYTHONPATH.
    result = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, cwd=neutral,
                            check=True)
    top_level, importable, origin = result.stdout.splitlines()
    assert top_level == "['inferwatch']"
    assert importable == "[]", f"importable outside the inferwatch namespace: {importable}"
    assert origin == str(site / "inferwatch" / "exporters" / "gpu" / "__init__.py")


def test_generic_names_are_not_importable(tmp_path: Path) -> None:
    """The same in this checkout's editable install."""
    names = sorted(set(SOURCE_FOLDERS) - {"inferwatch"})
    code = ("import importlib.util as u\n"
            f"print([n for n in {names!r} if u.find_spec(n) is not None], u.find_spec('inferwatch.exporters.gpu'))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True)
    importable, found = result.stdout.split(" ", 1)
    assert importable == "[]"
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
