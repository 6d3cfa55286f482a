"""Arrival schedules: Poisson, or a replayed Azure LLM inference trace, time- and rate-scaled.

An arrival is when to send (seconds from the start) and how long the prompt and the output are
in tokens. Schedules are plain lists built up front, so the sender's hot loop does no work but
sleep and dispatch.
"""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path


@dataclass(frozen=True)
class Arrival:
    at: float  # seconds after the start
    prompt_tokens: int
    output_tokens: int
    invalid: bool = False  # deliberately malformed (error-burst fault)
    token_offset: int = 0  # shifts the prompt's token ids (prompt-distribution-shift fault)


class TraceError(ValueError):
    pass


def poisson(rate: float, duration: float, prompt_tokens: int, output_tokens: int, seed: int = 0) -> list[Arrival]:
    """Exponential inter-arrival gaps at `rate` requests/s for `duration` seconds."""
    if rate <= 0 or duration <= 0:
        raise ValueError("rate and duration must be positive")
    rng = random.Random(seed)
    arrivals, t = [], 0.0
    while True:
        t += rng.expovariate(rate)
        if t >= duration:
            return arrivals
        arrivals.append(Arrival(t, prompt_tokens, output_tokens))


def _parse_timestamp(text: str) -> float:
    # Azure 2023 traces: "2023-11-16 18:17:03.9799600" (7 fractional digits; Python takes 6)
    date, _, fraction = text.strip().partition(".")
    stamp = datetime.strptime(date, "%Y-%m-%d %H:%M:%S").timestamp()
    return stamp + (float(f"0.{fraction}") if fraction else 0.0)


def read_trace(path: str | Path, limit: int | None = None) -> list[Arrival]:
    """Rows of `TIMESTAMP,ContextTokens,GeneratedTokens`, offsets relative to the first row."""
    arrivals: list[Arrival] = []
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            _read_rows(handle, path, limit, arrivals)
    except csv.Error as exc:  # e.g. a field over the csv module's 128 KiB limit
        raise TraceError(f"{path}: not a readable CSV trace ({exc})") from None
    except UnicodeDecodeError:
        raise TraceError(f"{path}: not UTF-8 text") from None
    arrivals.sort(key=lambda a: a.at)
    return arrivals


def _read_rows(handle: Iterable[str], path: str | Path, limit: int | None, arrivals: list[Arrival]) -> None:
    """Append the trace's rows to `arrivals`, offsets relative to the first row."""
    reader = csv.DictReader(handle)
    missing = {"TIMESTAMP", "ContextTokens", "GeneratedTokens"} - set(reader.fieldnames or [])
    if missing:
        raise TraceError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    start = None
    for line, row in enumerate(reader, start=2):
        try:
            stamp = _parse_timestamp(row["TIMESTAMP"])
            prompt, output = int(row["ContextTokens"]), int(row["GeneratedTokens"])
        except (ValueError, TypeError) as exc:
            raise TraceError(f"{path}:{line}: bad row ({exc})") from None
        start = stamp if start is None else start
        arrivals.append(Arrival(stamp - start, max(1, prompt), max(1, output)))
        if limit and len(arrivals) >= limit:
            break


def scale(arrivals: list[Arrival], time_scale: float = 1.0, rate_scale: float = 1.0, seed: int = 0) -> list[Arrival]:
    """Compress time by `time_scale` (2 = twice as fast), then thin or replicate by `rate_scale`.

    Rate scaling keeps the trace's shape: each request is kept floor(r) times plus once more with
    probability frac(r); copies are jittered by up to half the mean gap so they do not coincide.
    """
    if time_scale <= 0 or rate_scale <= 0:
        raise ValueError("time_scale and rate_scale must be positive")
    rng = random.Random(seed)
    timed = [replace(a, at=a.at / time_scale) for a in arrivals]
    if rate_scale == 1.0 or not timed:
        return timed
    span = timed[-1].at - timed[0].at
    jitter = 0.5 * span / len(timed) if len(timed) > 1 else 0.0
    out = []
    for arrival in timed:
        copies = math.floor(rate_scale) + (1 if rng.random() < rate_scale % 1 else 0)
        for copy in range(copies):
            shift = rng.uniform(-jitter, jitter) if copy else 0.0
            out.append(replace(arrival, at=max(0.0, arrival.at + shift)))
    out.sort(key=lambda a: a.at)
    return out


def fit(arrivals: list[Arrival], max_model_len: int, max_prompt: int | None = None,
        max_output: int | None = None) -> list[Arrival]:
    """Clamp lengths so each request fits the endpoint's context (invalid ones stay invalid)."""
    out = []
    for a in arrivals:
        output = min(a.output_tokens, max_output or a.output_tokens, max_model_len - 1)
        prompt = min(a.prompt_tokens, max_prompt or a.prompt_tokens, max_model_len - output)
        out.append(replace(a, prompt_tokens=max(1, prompt), output_tokens=max(1, output)))
    return out
