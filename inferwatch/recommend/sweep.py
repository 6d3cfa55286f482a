"""A capacity sweep of a real endpoint: closed-loop clients at each concurrency level (each sends its next
request when its previous one finishes), fixed prompt and output lengths, through the injector's
streaming client. Closed loop, because capacity is the question: the throughput a level sustains and
the latency it costs, without an open-loop queue growing without bound past saturation.

Also the sweep file: JSON, read back with errors that name the file and the key.
"""

from __future__ import annotations

import asyncio
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

from inferwatch.recommend.advice import Point, Sweep

FORMAT = "inferwatch-capacity-sweep/1"


class SweepFileError(ValueError):
    pass


async def measure_level(target: Any, concurrency: int, seconds: float, prompt_tokens: int,
                        output_tokens: int) -> Point:
    """`target`: an `inferwatch.inject.client.Target`. Requests still running at the deadline finish and count."""
    import aiohttp

    from inferwatch.inject.client import send
    from inferwatch.inject.runner import percentile
    from inferwatch.inject.schedule import Arrival

    results = []
    deadline = time.perf_counter() + seconds

    async def client(session: aiohttp.ClientSession) -> None:
        while time.perf_counter() < deadline:
            results.append(await send(session, target, Arrival(0.0, prompt_tokens, output_tokens)))

    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    ok = [r for r in results if r.ok and r.ttft is not None]
    ttft = [r.ttft for r in ok]
    tpot = [r.tpot for r in ok if r.tpot is not None] or [0.0]

    def p(values: list[float], q: float) -> float:
        return float(percentile(values, q)) if values else math.inf

    return Point(concurrency=concurrency, requests=len(ok), errors=len(results) - len(ok), seconds=elapsed,
                 ttft_p50_seconds=statistics.median(ttft) if ttft else math.inf, ttft_p95_seconds=p(ttft, 95),
                 tpot_p50_seconds=statistics.median(tpot), tpot_p95_seconds=p(tpot, 95),
                 throughput_requests_per_second=len(ok) / elapsed,
                 throughput_output_tokens_per_second=sum(r.output_tokens for r in ok) / elapsed)


def run_sweep(target: Any, levels: list[int], seconds: float, warmup: float, prompt_tokens: int,
              output_tokens: int, settings: dict[str, str], say=lambda line: None) -> Sweep:
    """Each level after `warmup` unmeasured seconds at that level (the engine's batch reaches its size)."""
    points = []
    for level in levels:
        if warmup > 0:
            asyncio.run(measure_level(target, level, warmup, prompt_tokens, output_tokens))
        point = asyncio.run(measure_level(target, level, seconds, prompt_tokens, output_tokens))
        say(f"concurrency {level}: {point.throughput_requests_per_second:.2f} requests/s, p95 TTFT "
            f"{point.ttft_p95_seconds:.3f} s, p95 TPOT {point.tpot_p95_seconds:.4f} s, {point.errors} errors")
        points.append(point)
    return Sweep(settings, prompt_tokens, output_tokens, tuple(points))


def sweep_to_json(sweep: Sweep, about: dict[str, Any]) -> str:
    return json.dumps({"format": FORMAT, "settings": sweep.settings, "prompt_tokens": sweep.prompt_tokens,
                       "output_tokens": sweep.output_tokens, "about": about,
                       "points": [_point_dict(p) for p in sweep.points]}, indent=2) + "\n"


def _point_dict(point: Point) -> dict[str, Any]:
    # JSON has no infinity: a level with no successful request has no percentile
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in point.__dict__.items()}


def read_sweep(path: Path) -> Sweep:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise SweepFileError(f"{path}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise SweepFileError(f"{path}:{exc.lineno}: not JSON: {exc.msg}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SweepFileError(f"{path}: format: expected {FORMAT!r} (a file written by `inferwatch recommend sweep`)")
    settings = data.get("settings", {})
    if not isinstance(settings, dict) or not all(isinstance(v, (str, int, float)) for v in settings.values()):
        raise SweepFileError(f"{path}: settings: expected a mapping of setting to value")
    for key in ("prompt_tokens", "output_tokens"):
        if not isinstance(data.get(key), int) or data[key] < 1:
            raise SweepFileError(f"{path}: {key}: expected a positive integer")
    if not isinstance(data.get("points"), list) or not data["points"]:
        raise SweepFileError(f"{path}: points: expected a non-empty list")
    points = []
    names = list(Point.__dataclass_fields__)
    for i, raw in enumerate(data["points"]):
        if not isinstance(raw, dict):
            raise SweepFileError(f"{path}: points[{i}]: expected a mapping")
        values = {}
        for name in names:
            value = raw.get(name, "missing")
            if value is None:  # written for a level with no successful request
                value = math.inf
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                    isinstance(value, float) and math.isnan(value)) or value < 0:
                raise SweepFileError(f"{path}: points[{i}].{name}: expected a number >= 0, got {value!r}")
            values[name] = value
        points.append(Point(**{k: int(v) if k in ("concurrency", "requests", "errors") else float(v)
                               for k, v in values.items()}))
    return Sweep({k: str(v) for k, v in settings.items()}, data["prompt_tokens"], data["output_tokens"],
                 tuple(points), source=str(path))
