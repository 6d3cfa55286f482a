"""Package discovery for setuptools; the project's metadata is in pyproject.toml.

The design's top-level folders install under the one `inferwatch` namespace. Every folder below
them is a package and every non-Python file in it is package data, so no hand-kept list can
drop a module or a data file (tests/test_packaging.py checks the built wheel against the tree).
"""

from pathlib import Path

from setuptools import setup

# import name -> source folder
NAMESPACE = {
    "inferwatch": "inferwatch",
    "inferwatch.exporters": "exporters",
    "inferwatch.scaler": "scaler",
    "inferwatch.dashboards": "dashboards",
    "inferwatch.alerts": "alerts",
    "inferwatch.recording_rules": "recording_rules",
}


def _skipped(path: Path) -> bool:
    return any(part == "__pycache__" or part.startswith(".") or part.endswith(".egg-info") for part in path.parts)


def discover(root: Path = Path(".")) -> tuple[list[str], dict[str, str], dict[str, list[str]]]:
    """(packages, package_dir, package_data) for every folder under the mapped source folders."""
    packages: list[str] = []
    package_data: dict[str, list[str]] = {}
    for name, folder in NAMESPACE.items():
        base = root / folder
        for directory in sorted([base, *(p for p in base.rglob("*") if p.is_dir())]):
            relative = directory.relative_to(base)
            if _skipped(relative):
                continue
            package = ".".join([name, *relative.parts])
            packages.append(package)
            data = sorted(f.name for f in directory.iterdir() if f.is_file() and f.suffix not in {".py", ".pyc"})
            if data:
                package_data[package] = data
    return packages, dict(NAMESPACE), package_data


if __name__ == "__main__":
    packages, package_dir, package_data = discover()
    setup(packages=packages, package_dir=package_dir, package_data=package_data, include_package_data=False)
