"""Builds `promtool test rules` files: a normal week with daily and weekly patterns, plus faults.

Time 0 is a Monday 00:00. Days 5 and 6 are the weekend (lower traffic, lower latency peaks).
Faults start on day 7 (the second Monday), when a full week of history exists.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

MINUTE = 60
HOUR = 60 * MINUTE
DAY = 24 * HOUR
DAYS = 8
FAULT_AT = 7 * DAY + 14 * HOUR  # second Monday, 14:00: the daily peak

Series = dict[str, str]  # promtool input series text -> values text


def daily(t: float, night: float, peak: float, weekend_peak: float) -> float:
    """A smooth day: `night` at 03:00, the peak at 15:00; weekends peak lower."""
    day = int(t // DAY)
    top = weekend_peak if day % 7 in (5, 6) else peak
    phase = (t % DAY) / DAY  # 0 = midnight
    shape = (1 - math.cos(2 * math.pi * (phase - 0.125))) / 2  # 0 at 03:00, 1 at 15:00
    return night + (top - night) * shape


def values(fn: Callable[[float], float | None], step: int = MINUTE, end: int = DAYS * DAY, digits: int = 6) -> str:
    """Explicit per-step values; None becomes `_` (no sample)."""
    out = []
    for i in range(end // step + 1):
        v = fn(i * step)
        out.append("_" if v is None else f"{v:.{digits}g}")
    return _compress(out)


def _compress(items: list[str]) -> str:
    """Collapse runs of equal values into promtool's `vxN` notation."""
    out, i = [], 0
    while i < len(items):
        j = i
        while j + 1 < len(items) and items[j + 1] == items[i]:
            j += 1
        run = j - i
        out.append(items[i] if run == 0 else f"{items[i]}x{run}")
        i = j + 1
    return " ".join(out)


def counter(rate: Callable[[float], float], step: int = MINUTE, end: int = DAYS * DAY) -> str:
    """A counter whose per-second rate follows `rate(t)`."""
    total, out = 0.0, []
    for i in range(end // step + 1):
        out.append(f"{total:.12g}")
        total += rate(i * step) * step
    return " ".join(out)


def noisy(fn: Callable[[float], float], amplitude: float = 0.03, seed: int = 1) -> Callable[[float], float]:
    rng = random.Random(seed)
    cache: dict[float, float] = {}

    def wrapped(t: float) -> float:
        if t not in cache:
            cache[t] = fn(t) * (1 + rng.uniform(-amplitude, amplitude))
        return cache[t]

    return wrapped


def after(t0: float, before: float | None, during: float | None) -> Callable[[float], float | None]:
    return lambda t: during if t >= t0 else before


def at(day: int, hour: float = 0, minute: float = 0) -> str:
    """promtool eval_time as a duration string."""
    total = int(day * DAY + hour * HOUR + minute * MINUTE)
    return f"{total // 60}m"


# -- expected annotations: the rule's own Go templates, rendered the way Prometheus does --------

def go_float(v: float) -> str:
    text = repr(float(v))
    return text[:-2] if text.endswith(".0") else text


def humanize_duration(v: float) -> str:
    if v == 0:
        return "0s"
    if abs(v) >= 1:
        if abs(v) < 60:
            return f"{v:.4g}s"
        raise ValueError("longer durations are not used by these tests")
    prefix = ""
    for p in ("m", "u", "n"):
        if abs(v) >= 1:
            break
        prefix, v = p, v * 1000
    return f"{v:.4g}{prefix}s"


def humanize(v: float) -> str:
    if v == 0 or 1 <= abs(v) < 1000:
        return f"{v:.4g}"
    raise ValueError("SI prefixes are not used by these tests")


FILTERS = {"": go_float, "humanizeDuration": humanize_duration, "humanizePercentage": lambda v: f"{v * 100:.4g}%",
           "humanize": humanize}


def render_template(template: str, labels: dict[str, str], value: float) -> str:
    import re

    def one(match: re.Match) -> str:
        expr = match.group(1).strip()
        if expr.startswith("$labels."):
            return labels.get(expr.removeprefix("$labels."), "")
        head, _, fn = (part.strip() for part in expr.partition("|"))
        assert head == "$value", expr
        return FILTERS[fn](value)

    return re.sub(r"\{\{(.*?)\}\}", one, template)
