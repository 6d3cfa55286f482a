"""The per-replica latency curve the simulator runs on, and where its numbers come from.

A replica is modelled by five numbers, each one a line fitted to a concurrency sweep of a real server:
decode step time = `step_base_seconds + step_per_seq_seconds * n` with n running sequences (the inter-token
latency), and prefill time = `prompt_tokens * (1 + prefill_slowdown_per_seq * n) / prefill_tokens_per_second`
(prefill shares the engine with the running batch). `max_num_seqs` bounds continuous batching.

The CPU curve must come from a measurement file (`benchmarks/calibrate_fleet.py` writes
`benchmarks/data/vllm-cpu-curve.json`); `load_curve` refuses a file without measured points. The GPU set is
illustrative (round numbers of the order of an 8B model on one data-centre GPU, not measured) and is only
ever used when named explicitly.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path


class CalibrationError(ValueError):
    pass


@dataclass(frozen=True)
class Curve:
    name: str
    source: str
    step_base_seconds: float
    step_per_seq_seconds: float
    prefill_tokens_per_second: float
    prefill_slowdown_per_seq: float
    max_num_seqs: int
    kv_cache_tokens: int
    max_model_len: int | None = None  # request lengths are clamped to fit (the tiny CPU model has 512)

    def __post_init__(self) -> None:
        for name in ("step_base_seconds", "prefill_tokens_per_second"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise CalibrationError(f"{name} must be a positive number, got {value!r}")
        for name in ("step_per_seq_seconds", "prefill_slowdown_per_seq"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise CalibrationError(f"{name} must be >= 0, got {value!r}")
        if self.max_num_seqs < 1 or self.kv_cache_tokens < 1:
            raise CalibrationError("max_num_seqs and kv_cache_tokens must be >= 1")

    def step_seconds(self, n: int) -> float:
        return self.step_base_seconds + self.step_per_seq_seconds * n

    def prefill_seconds(self, prompt_tokens: int, n: int) -> float:
        return prompt_tokens * (1.0 + self.prefill_slowdown_per_seq * n) / self.prefill_tokens_per_second


#: Illustrative, NOT measured: the shape of a mid-size model on one data-centre GPU, scaled so that a replica
#: serves about two conversation-trace requests a second. Use only when passed explicitly.
GPU_ILLUSTRATIVE = Curve(
    name="gpu-illustrative", source="illustrative GPU parameters (not measured)",
    step_base_seconds=0.03, step_per_seq_seconds=0.0012, prefill_tokens_per_second=16000.0,
    prefill_slowdown_per_seq=0.005, max_num_seqs=48, kv_cache_tokens=100_000,
)


def linear_fit(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """(intercept, slope) of the least-squares line; one distinct x gives slope 0."""
    if not xs or len(xs) != len(ys):
        raise CalibrationError("a fit needs matching, non-empty x and y")
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx > 0 else 0.0
    return my - slope * mx, slope


def fit_curve(points: Sequence[Mapping[str, float]], name: str, source: str, max_num_seqs: int,
              kv_cache_tokens: int, max_model_len: int | None = None) -> Curve:
    """Curve from sweep points {concurrency, prompt_tokens, ttft_p50_seconds, tpot_p50_seconds}.

    TPOT against concurrency gives the decode step line; TTFT per prompt token against concurrency gives the
    prefill rate (intercept) and its slowdown (slope / intercept). Slopes are floored at 0: noise must not make
    a replica faster under load.
    """
    if len(points) < 2:
        raise CalibrationError("a curve needs at least two concurrency levels")
    cs = [float(p["concurrency"]) for p in points]
    base, per_seq = linear_fit(cs, [float(p["tpot_p50_seconds"]) for p in points])
    inv_rate, inv_slope = linear_fit(cs, [float(p["ttft_p50_seconds"]) / float(p["prompt_tokens"]) for p in points])
    if inv_rate <= 0:
        inv_rate = min(float(p["ttft_p50_seconds"]) / float(p["prompt_tokens"]) for p in points)
    return Curve(name=name, source=source, step_base_seconds=max(base, 1e-6), step_per_seq_seconds=max(per_seq, 0.0),
                 prefill_tokens_per_second=1.0 / inv_rate, prefill_slowdown_per_seq=max(inv_slope, 0.0) / inv_rate,
                 max_num_seqs=max_num_seqs, kv_cache_tokens=kv_cache_tokens, max_model_len=max_model_len)


def load_curve(path: str | Path) -> Curve:
    """A curve parameter file; it must hold the measured `points` its `curve` was fitted from."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CalibrationError(f"{path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("curve"), dict):
        raise CalibrationError(f"{path}: no 'curve' object")
    if not data.get("points"):
        raise CalibrationError(f"{path}: no measured 'points'; a curve file must come from a measurement")
    known = {f.name for f in fields(Curve)}
    unknown = set(data["curve"]) - known
    if unknown:
        raise CalibrationError(f"{path}: unknown curve keys {sorted(unknown)}")
    try:
        return Curve(**data["curve"])
    except TypeError as exc:
        raise CalibrationError(f"{path}: {exc}") from None


def write_curve(path: str | Path, curve: Curve, points: Sequence[Mapping[str, float]],
                meta: Mapping[str, object]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"curve": asdict(curve), "points": list(points), "meta": dict(meta)}
    path.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
