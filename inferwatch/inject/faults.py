"""Named fault scenarios, as changes to the load (and, for an outage, to the engine).

Each fault acts on the middle third of the run (`window`), so every drill has a before, a
during and an after for alerts to fire and resolve on.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace

from inferwatch.inject.schedule import Arrival

FAULTS = ("latency-regression", "error-burst", "traffic-surge", "endpoint-outage", "prompt-shift")


@dataclass(frozen=True)
class Window:
    start: float
    end: float

    def __contains__(self, t: float) -> bool:
        return self.start <= t < self.end


def window_of(arrivals: list[Arrival]) -> Window:
    span = arrivals[-1].at if arrivals else 0.0
    return Window(span / 3, 2 * span / 3)


def apply(name: str, arrivals: list[Arrival], seed: int = 0, factor: float = 4.0) -> list[Arrival]:
    """Return the arrivals with the named fault applied inside the middle third."""
    if name not in FAULTS:
        raise ValueError(f"unknown fault {name!r} (known: {', '.join(FAULTS)})")
    if not arrivals:
        return arrivals
    window, rng = window_of(arrivals), random.Random(seed)
    if name == "latency-regression":  # much longer prompts: prefill time and TTFT go up
        return [replace(a, prompt_tokens=int(a.prompt_tokens * factor)) if a.at in window else a for a in arrivals]
    if name == "error-burst":  # half the requests in the window are invalid (HTTP 400)
        return [replace(a, invalid=True) if a.at in window and rng.random() < 0.5 else a for a in arrivals]
    if name == "traffic-surge":  # `factor` times the arrival rate inside the window
        extra = []
        for a in arrivals:
            if a.at in window:
                extra += [replace(a, at=rng.uniform(window.start, window.end)) for _ in range(int(factor) - 1)]
        return sorted(arrivals + extra, key=lambda a: a.at)
    if name == "prompt-shift":  # from the window on: longer prompts drawn from another token range
        return [replace(a, prompt_tokens=int(a.prompt_tokens * 2), token_offset=200) if a.at >= window.start else a
                for a in arrivals]
    return arrivals  # endpoint-outage changes the engine, not the load


@dataclass
class OutageHooks:
    """How to take the engine down and bring it back for `endpoint-outage`."""

    stop: Callable[[], None]
    start: Callable[[], None]
