"""Shipped assets (rendered rules, Alertmanager routing, dashboards), read from the installed package.

Never from a source checkout: a wheel install must find exactly what a checkout finds, and a
test fails when the committed copies are stale.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

# repository-relative path -> (package, file name): the same layout the wheel installs.
RULE_FILES: dict[str, tuple[str, str]] = {
    "recording_rules/inferwatch.rules.yaml": ("inferwatch.recording_rules", "inferwatch.rules.yaml"),
    "alerts/inferwatch.alerts.yaml": ("inferwatch.alerts", "inferwatch.alerts.yaml"),
}
ALERTMANAGER_CONFIG = ("inferwatch.alerts.alertmanager", "alertmanager.yml")


def asset(package: str, name: str) -> Traversable:
    return resources.files(package).joinpath(name)


def read(package: str, name: str) -> str:
    return asset(package, name).read_text()


def rule_files() -> dict[str, str]:
    """The rendered rule files as shipped: repository-relative path -> YAML text."""
    return {path: read(*where) for path, where in RULE_FILES.items()}


def write_rule_files(folder: Path) -> list[Path]:
    """The shipped rule files written into `folder` (promtool and Prometheus read paths)."""
    paths = []
    for relative, text in rule_files().items():
        path = folder / Path(relative).name
        path.write_text(text)
        paths.append(path)
    return paths


def alertmanager_config() -> str:
    return read(*ALERTMANAGER_CONFIG)


def mixin_dir() -> Traversable:
    return resources.files("inferwatch") / "mixin"


DASHBOARDS_PACKAGE = "inferwatch.dashboards"


def dashboards() -> dict[str, dict]:
    """The shipped Grafana dashboards: file name (`inferwatch-<name>.json`) -> dashboard JSON."""
    import json

    folder = resources.files(DASHBOARDS_PACKAGE)
    return {item.name: json.loads(item.read_text()) for item in sorted(folder.iterdir(), key=lambda i: i.name)
            if item.name.startswith("inferwatch-") and item.name.endswith(".json")}
