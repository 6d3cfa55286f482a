"""Capacity from Prometheus history: the load per replica at which the latency SLO still held, read
off the shipped recording rules over a past window, in bins of load.

A sweep measures every load it is asked to; history shows only the loads the fleet happened to
run at, under its real mix of prompts and its settings of the time. So: each step (one value of
every series) meets the SLO or not; steps are grouped into equal-width bins of load per replica;
a bin holds the SLO when at least MEETING_SHARE of its steps met it (the odd slow step is an
incident, not a capacity limit; at 95 %, 2 % random slow steps failed mid-size bins); bins with
fewer than `min_steps` steps say nothing. The capacity is the mean load of the highest bin that
holds. When no busier bin failed, history never reached the limit and the capacity is a lower
bound (the replicas it gives are then an upper bound).

Pure apart from `read_steps`, which queries Prometheus.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

from inferwatch.recommend.advice import Slo, replicas_for

MEETING_SHARE = 0.9
# What a step is made of: the shipped recording rules (recording_rules/inferwatch.rules.yaml).
SERIES = {
    "load": "model_name:llm_requests_per_replica:rate5m",
    "ttft": "model_name:llm_time_to_first_token_seconds:p95_rate5m",
    "itl": "model_name:llm_inter_token_latency_seconds:p95_rate5m",
    "errors": "model_name:llm_request_errors_per_requests:ratio_rate5m",
}


@dataclass(frozen=True)
class Step:
    """One evaluation step of one model: load per replica (requests/s) and what it got."""

    load: float
    ttft_p95_seconds: float
    itl_p95_seconds: float | None = None  # absent: no decode in the window (every output one token)
    error_ratio: float = 0.0


@dataclass(frozen=True)
class Bin:
    low: float
    high: float
    steps: int
    met: int
    mean_load: float

    @property
    def holds(self) -> bool:
        return self.steps > 0 and self.met >= MEETING_SHARE * self.steps


@dataclass
class HistoryCapacity:
    slo: Slo
    bins: list[Bin]  # lowest load first, only those with enough steps
    requests_per_second: float  # per replica; 0 when no bin held
    lower_bound: bool  # no busier bin failed: history never reached the limit
    steps: int
    notes: list[str] = field(default_factory=list)

    def replicas(self, target_requests_per_second: float | None) -> int | None:
        return replicas_for(target_requests_per_second, self.requests_per_second)


def meets(step: Step, slo: Slo) -> bool:
    return (step.ttft_p95_seconds <= slo.ttft_seconds and step.error_ratio <= slo.max_error_ratio
            and (step.itl_p95_seconds is None or step.itl_p95_seconds <= slo.tpot_seconds))


def binned(steps: list[Step], slo: Slo, count: int) -> list[Bin]:
    """Equal-width bins from the lightest to the busiest step's load, lowest first (empty ones left out)."""
    if not steps:
        return []
    low, high = min(s.load for s in steps), max(s.load for s in steps)
    width = (high - low) / count or 1.0
    groups: dict[int, list[Step]] = {}
    for s in steps:
        groups.setdefault(min(count - 1, int((s.load - low) / width)), []).append(s)
    return [Bin(low + i * width, low + (i + 1) * width, len(g), sum(meets(s, slo) for s in g),
                sum(s.load for s in g) / len(g)) for i, g in sorted(groups.items())]


def capacity_from_history(steps: list[Step], slo: Slo, bins: int = 10, min_steps: int = 6) -> HistoryCapacity:
    usable = [s for s in steps if s.load > 0]
    enough = [b for b in binned(usable, slo, bins) if b.steps >= min_steps]
    result = HistoryCapacity(slo, enough, 0.0, False, len(usable))
    if len(usable) < len(steps):
        result.notes.append(f"{len(steps) - len(usable)} idle step(s) left out")
    holding = [b for b in enough if b.holds]
    if not holding:
        result.notes.append("no load bin with enough steps held the SLO" if enough else
                            f"too little history: no load bin has {min_steps} steps")
        return result
    best = holding[-1]
    result.requests_per_second = best.mean_load
    result.lower_bound = not any(b.low > best.low and not b.holds for b in enough)
    if result.lower_bound:
        result.notes.append(f"history never reached the SLO's limit: {best.mean_load:.3g} requests/s per replica "
                            "is a lower bound (sweep the endpoint to find the real one)")
    return result


def format_history(result: HistoryCapacity, model: str, target: float | None) -> str:
    slo = result.slo
    lines = [f"model {model}: {result.steps} step(s); SLO p95 TTFT <= {slo.ttft_seconds:g} s, "
             f"p95 ITL <= {slo.tpot_seconds:g} s, errors <= {slo.max_error_ratio:.0%}; a bin holds when "
             f"{MEETING_SHARE:.0%} of its steps meet it", "",
             "| requests/s per replica | steps | met the SLO | holds |", "|---|---|---|---|"]
    lines += [f"| {b.low:.3g}-{b.high:.3g} (mean {b.mean_load:.3g}) | {b.steps} | {b.met} | "
              f"{'yes' if b.holds else 'no'} |" for b in result.bins]
    lines.append("")
    if result.requests_per_second > 0:
        bound = "at least " if result.lower_bound else ""
        lines.append(f"capacity: {bound}{result.requests_per_second:.3g} requests/s per replica within the SLO")
    replicas = result.replicas(target)
    if target is not None:
        lines.append(f"target {target:g} requests/s: " + (f"{'at most ' if result.lower_bound else ''}"
                                                          f"{replicas} replica(s)" if replicas else "no estimate"))
    lines += [f"note: {n}" for n in result.notes]
    return "\n".join(lines)


class RangeQuery(Protocol):
    def query_range(self, expr: str, start: float, end: float) -> list[dict]: ...


def read_steps(prom: RangeQuery, model: str, start: float, end: float) -> list[Step]:
    """The model's steps between start and end: every step with a load and a TTFT (the others say nothing)."""
    selector = '{model_name="' + model.replace("\\", "\\\\").replace('"', '\\"') + '"}'
    values: dict[str, dict[float, float]] = {}
    for key, metric in SERIES.items():
        found: dict[float, float] = {}
        for series in prom.query_range(f"max({metric}{selector})", start, end):
            found.update({float(t): float(v) for t, v in series["values"] if math.isfinite(float(v))})
        values[key] = found
    return [Step(load, values["ttft"][t], values["itl"].get(t), values["errors"].get(t, 0.0))
            for t, load in sorted(values["load"].items()) if t in values["ttft"]]
