"""Choosing the NVML backend, and classifying NVML errors into what the exporter does about them.

The production path imports only `pynvml` (nvidia-ml-py). The simulated backend is imported
solely when a scenario is asked for, so a stray import can never mask a real driver.
"""

from __future__ import annotations

from typing import Any

import pynvml

from inferwatch.kit.labels import clean

# Errors that mean "this probe will never work on this device": learn once, never retry.
UNSUPPORTED_CODES = frozenset({
    pynvml.NVML_ERROR_NOT_SUPPORTED,
    pynvml.NVML_ERROR_NO_PERMISSION,
    pynvml.NVML_ERROR_NOT_FOUND,
    pynvml.NVML_ERROR_FUNCTION_NOT_FOUND,
    pynvml.NVML_ERROR_INVALID_ARGUMENT,
    pynvml.NVML_ERROR_ARGUMENT_VERSION_MISMATCH,
})
# Errors that mean "the GPU is gone": mark it down, skip the rest of it this round.
LOST_CODES = frozenset({pynvml.NVML_ERROR_GPU_IS_LOST, pynvml.NVML_ERROR_RESET_REQUIRED})


def load_backend(simulate: str | None = None) -> Any:
    """Return an object with pynvml's functions: the real module, or a simulated scenario."""
    if simulate:
        from inferwatch.exporters.gpu.simnvml import SimulatedNvml

        return SimulatedNvml.from_scenario(simulate)
    return pynvml


def error_name(exc: BaseException) -> str:
    """A short, bounded label value for an NVML failure (`GpuIsLost`, `Timeout`, ...)."""
    name = type(exc).__name__
    return name.removeprefix("NVMLError_") if name.startswith("NVMLError_") else name


def text(value: Any) -> str:
    """NVML strings (bytes from older bindings, str from newer ones) as clean label values."""
    return clean(value.decode(errors="replace") if isinstance(value, bytes) else str(value))
