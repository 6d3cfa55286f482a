"""Multi-day demand from a one-hour Azure LLM inference trace, under a diurnal and weekly envelope.

How (deterministic for a given seed):

1. **Base process.** The trace's inter-arrival gaps, in their recorded order (so its bursts and idle gaps
   survive), each request keeping its own prompt and output lengths. The hour is repeated as needed, every
   repetition rotated to a seeded random starting request; the gap that closes a repetition is a seeded
   random gap of the trace.
2. **Envelope.** `Envelope(t)` (t = seconds since Monday 00:00) is 1 at the weekday peak:
   `trough + (1 - trough) * ((1 + cos(2 pi (hour - peak_hour) / 24)) / 2) ** 2`, times `weekend` on Saturday
   and Sunday, times a seeded per-day amplitude in [1 - day_jitter, 1 + day_jitter] (so "same time yesterday"
   is never exact). Day-level factors change linearly over the first four hours of a day (the trough), never
   as a step.
3. **Scaling to the rate**, two ways (`arrivals`). The rate multiplier is
   `m(t) = (peak_rate / trace mean rate) * Envelope(t)`.
   - `"warp"` (time warp): base time advances m(t) seconds per real second, so every gap is divided by the
     multiplier in force when it occurs: t = L^-1(u) with L(t) = integral of m, tabulated per minute and
     inverted by interpolation. The trace's clients become m(t) times faster: a burst of 67 requests in a
     second arrives within 1/m(t) s. The adversarial reading, where burst intensity grows with load.
   - `"superpose"` (independent users): K = ceil(max m) independent copies of the base process (each with
     its own rotations), each at the trace's own rate, superposed; each arrival is kept with probability
     m(t) / K (thinning, Lewis and Shedler 1979). More users rather than faster users: every burst keeps its
     recorded size and duration, and bursts of different copies are independent, so the aggregate is
     smoother relative to its mean, as a fleet's traffic is when it serves many clients.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inferwatch.inject.schedule import read_trace

DAY = 86400.0
WEEK = 7 * DAY


@dataclass(frozen=True)
class Trace:
    name: str
    gaps: np.ndarray  # seconds before each request (gaps[0] is the closing gap, replaced per repetition)
    prompts: np.ndarray
    outputs: np.ndarray

    @property
    def mean_rate(self) -> float:
        return len(self.gaps) / float(self.gaps[1:].sum())


def load_trace(path: str | Path) -> Trace:
    arrivals = read_trace(path)
    if len(arrivals) < 2:
        raise ValueError(f"{path}: a trace needs at least two requests")
    at = np.array([a.at for a in arrivals])
    gaps = np.diff(at, prepend=at[0])
    return Trace(Path(path).stem, gaps, np.array([a.prompt_tokens for a in arrivals], dtype=np.int32),
                 np.array([a.output_tokens for a in arrivals], dtype=np.int32))


@dataclass(frozen=True)
class Envelope:
    trough: float = 0.15
    peak_hour: float = 14.0
    weekend: float = 0.55
    day_jitter: float = 0.1
    seed: int = 0

    def day_factors(self, days: int) -> np.ndarray:
        rng = np.random.default_rng(self.seed + 7919)
        weekday = np.array([self.weekend if d % 7 >= 5 else 1.0 for d in range(days + 1)])
        return weekday * (1.0 + self.day_jitter * rng.uniform(-1.0, 1.0, days + 1))

    def __call__(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=float)
        hour = (t % DAY) / 3600.0
        shape = self.trough + (1.0 - self.trough) * ((1.0 + np.cos(2 * np.pi * (hour - self.peak_hour) / 24)) / 2) ** 2
        day = np.floor(t / DAY).astype(int)
        factors = self.day_factors(int(day.max()) + 1 if day.size else 1)
        today = factors[np.clip(day, 0, None)]
        yesterday = np.where(day > 0, factors[np.clip(day - 1, 0, None)], today)
        blend = np.clip(hour / 4.0, 0.0, 1.0)
        return shape * (yesterday + (today - yesterday) * blend)


@dataclass(frozen=True)
class Demand:
    """Arrivals (seconds since Monday 00:00, sorted) with their token lengths."""

    times: np.ndarray
    prompts: np.ndarray
    outputs: np.ndarray
    days: float
    peak_rate: float  # requests/s at envelope 1
    envelope: Envelope
    trace: str

    def rate(self, t: np.ndarray) -> np.ndarray:
        """The expected arrival rate (requests/s) at times t."""
        return self.peak_rate * self.envelope(t)

    def slice(self, start: float, end: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        lo, hi = np.searchsorted(self.times, [start, end])
        return self.times[lo:hi], self.prompts[lo:hi], self.outputs[lo:hi]

    def counts(self, start: float, end: float, step: float) -> np.ndarray:
        """Arrivals per step over [start, end)."""
        edges = start + step * np.arange(round((end - start) / step) + 1)
        return np.histogram(self.times, bins=edges)[0]


ARRIVALS = ("warp", "superpose")


def _repeated(trace: Trace, length: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The base process over [0, length): the trace repeated, each repetition rotated to a random request."""
    n = len(trace.gaps)
    gaps, prompts, outputs, covered = [], [], [], 0.0
    period = float(trace.gaps[1:].sum()) + float(trace.gaps.mean())
    for _ in range(math.ceil(length / period) + 1):
        start = int(rng.integers(n))
        order = np.roll(np.arange(n), -start)
        block = trace.gaps[order].copy()
        block[0] = trace.gaps[1 + int(rng.integers(n - 1))]
        gaps.append(block)
        prompts.append(trace.prompts[order])
        outputs.append(trace.outputs[order])
        covered += float(block.sum())
        if covered > length:
            break
    base = np.cumsum(np.concatenate(gaps))
    keep = base < length
    return base[keep], np.concatenate(prompts)[keep], np.concatenate(outputs)[keep]


def build(trace: Trace, days: float, peak_rate: float, envelope: Envelope, seed: int = 0,
          max_model_len: int | None = None, arrivals: str = "warp") -> Demand:
    """`days` of demand starting Monday 00:00 whose envelope-1 rate is `peak_rate` requests/s."""
    if days <= 0 or peak_rate <= 0:
        raise ValueError("days and peak_rate must be positive")
    if arrivals not in ARRIVALS:
        raise ValueError(f"arrivals must be one of {ARRIVALS}, not {arrivals!r}")
    multiplier = peak_rate / trace.mean_rate
    end = days * DAY
    grid = np.arange(0.0, end + 60.0, 60.0)
    m = multiplier * envelope(grid)
    rng = np.random.default_rng(seed)
    if arrivals == "warp":
        warped = np.concatenate([[0.0], np.cumsum((m[1:] + m[:-1]) / 2 * 60.0)])  # L(t) on the grid
        base, prompt, output = _repeated(trace, warped[-1], rng)
        times = np.interp(base, warped, grid)
    else:
        copies = max(1, math.ceil(float(m.max())))
        parts = []
        for _ in range(copies):
            at, p, o = _repeated(trace, end, rng)
            keep = rng.random(len(at)) < np.interp(at, grid, m) / copies
            parts.append((at[keep], p[keep], o[keep]))
        times, prompt, output = (np.concatenate(column) for column in zip(*parts, strict=True))
        order = np.argsort(times, kind="stable")
        times, prompt, output = times[order], prompt[order], output[order]
    if max_model_len:
        output = np.minimum(output, max(1, max_model_len // 4))
        prompt = np.clip(prompt, 1, max_model_len - output)
    return Demand(times, prompt.astype(np.int32), output.astype(np.int32), days, peak_rate, envelope, trace.name)
