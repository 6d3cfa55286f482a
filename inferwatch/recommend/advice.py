"""From capacity sweeps to configuration advice: the load one replica serves within the latency SLO
under each measured vLLM configuration, the replicas a target load needs, and which setting changes
are worth making, each with its measured effect.

Pure: sweeps in, advice out (`sweep.py` measures, `command.py` reads and prints). Capacity is read off
measured points only, never extrapolated: the highest throughput of a concurrency level whose p95
TTFT and p95 TPOT both met the SLO. A configuration with no such level has capacity 0, which is
advice too (this setting cannot meet the SLO at any load measured).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

# The settings the advice compares (vLLM's own flag names, without the dashes); others are reported
# as they are but not ranked.
SETTINGS = ("max_num_seqs", "max_num_batched_tokens", "max_model_len", "gpu_memory_utilization")


@dataclass(frozen=True)
class Point:
    """One closed-loop concurrency level of a sweep."""

    concurrency: int
    requests: int
    errors: int
    seconds: float
    ttft_p50_seconds: float
    ttft_p95_seconds: float
    tpot_p50_seconds: float
    tpot_p95_seconds: float
    throughput_requests_per_second: float
    throughput_output_tokens_per_second: float


@dataclass(frozen=True)
class Sweep:
    """The points of one endpoint under one configuration and one workload (token lengths)."""

    settings: dict[str, str]
    prompt_tokens: int
    output_tokens: int
    points: tuple[Point, ...]
    source: str = ""  # where it came from (the file), for messages


@dataclass(frozen=True)
class Slo:
    ttft_seconds: float
    tpot_seconds: float
    max_error_ratio: float = 0.01  # a level that fails more requests than this does not count


@dataclass(frozen=True)
class Capacity:
    """What one replica of a configuration serves within the SLO."""

    sweep: Sweep
    requests_per_second: float  # 0: no measured level met the SLO
    point: Point | None  # the level it was read from

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in sorted(self.sweep.settings.items())) or "(no settings given)"


@dataclass(frozen=True)
class Change:
    """One setting's measured effect: the same workload under two configurations that differ in it alone."""

    setting: str
    before: str
    after: str
    capacity_before: float
    capacity_after: float

    @property
    def ratio(self) -> float | None:
        return self.capacity_after / self.capacity_before if self.capacity_before > 0 else None


@dataclass
class Advice:
    slo: Slo
    target_requests_per_second: float | None
    capacities: list[Capacity]  # best first
    changes: list[Change] = field(default_factory=list)  # worth making: capacity goes up, largest gain first
    notes: list[str] = field(default_factory=list)

    @property
    def best(self) -> Capacity:
        return self.capacities[0]

    def replicas(self, capacity: Capacity) -> int | None:
        return replicas_for(self.target_requests_per_second, capacity.requests_per_second)


def replicas_for(target_requests_per_second: float | None, capacity_per_replica: float) -> int | None:
    """Replicas for the target load at this capacity (None: no target, or the SLO is never met)."""
    if target_requests_per_second is None or capacity_per_replica <= 0:
        return None
    return max(1, math.ceil(target_requests_per_second / capacity_per_replica - 1e-9))


def meets(point: Point, slo: Slo) -> bool:
    total = point.requests + point.errors
    return (point.requests > 0 and point.ttft_p95_seconds <= slo.ttft_seconds
            and point.tpot_p95_seconds <= slo.tpot_seconds and point.errors <= slo.max_error_ratio * total)


def capacity(sweep: Sweep, slo: Slo) -> Capacity:
    within = [p for p in sweep.points if meets(p, slo)]
    if not within:
        return Capacity(sweep, 0.0, None)
    best = max(within, key=lambda p: p.throughput_requests_per_second)
    return Capacity(sweep, best.throughput_requests_per_second, best)


def advise(sweeps: list[Sweep], slo: Slo, target_requests_per_second: float | None = None) -> Advice:
    """Rank the configurations by capacity within the SLO; every pair that differs in one setting
    alone (same workload) gives that setting's measured effect."""
    if not sweeps:
        raise ValueError("no sweep to advise from")
    capacities = sorted((capacity(s, slo) for s in sweeps), key=lambda c: -c.requests_per_second)
    advice = Advice(slo, target_requests_per_second, capacities)
    workloads = {(s.prompt_tokens, s.output_tokens) for s in sweeps}
    if len(workloads) > 1:
        advice.notes.append("the sweeps ran different workloads (prompt/output tokens): only sweeps of the same "
                            "workload are compared setting by setting")
    for i, a in enumerate(capacities):
        for b in capacities[i + 1:]:
            change = _single_change(b, a)  # from the worse configuration to the better one
            if change and change.capacity_after > change.capacity_before:
                advice.changes.append(change)
    advice.changes.sort(key=lambda c: -(c.ratio or math.inf))
    if advice.best.requests_per_second <= 0:
        advice.notes.append("no measured level met the SLO under any configuration: measure lower concurrency, "
                            "or relax the SLO")
    return advice


def _single_change(before: Capacity, after: Capacity) -> Change | None:
    a, b = before.sweep, after.sweep
    if (a.prompt_tokens, a.output_tokens) != (b.prompt_tokens, b.output_tokens):
        return None
    differing = [k for k in sorted(set(a.settings) | set(b.settings)) if a.settings.get(k) != b.settings.get(k)]
    if len(differing) != 1:
        return None
    key = differing[0]
    return Change(key, a.settings.get(key, "(default)"), b.settings.get(key, "(default)"),
                  before.requests_per_second, after.requests_per_second)


def format_advice(advice: Advice) -> str:
    """The advice as an operator reads it: capacity per configuration, replicas, the changes worth making."""
    slo = advice.slo
    lines = [f"SLO: p95 TTFT <= {slo.ttft_seconds:g} s, p95 TPOT <= {slo.tpot_seconds:g} s, "
             f"errors <= {slo.max_error_ratio:.0%}"]
    if advice.target_requests_per_second is not None:
        lines.append(f"target load: {advice.target_requests_per_second:g} requests/s")
    lines += ["", "| configuration | workload (prompt/output tokens) | requests/s per replica within the SLO "
              "| at concurrency | p95 TTFT (s) | p95 TPOT (s) | replicas |", "|---|---|---|---|---|---|---|"]
    for c in advice.capacities:
        p = c.point
        replicas = advice.replicas(c)
        if replicas is None:
            replicas = "-" if advice.target_requests_per_second is None else "SLO never met"
        measured = f"{p.concurrency} | {p.ttft_p95_seconds:.3f} | {p.tpot_p95_seconds:.4f}" if p else "- | - | -"
        lines.append(f"| {c.label} | {c.sweep.prompt_tokens}/{c.sweep.output_tokens} | {c.requests_per_second:.2f} | "
                     f"{measured} | {replicas} |")
    if advice.changes:
        lines += ["", "Changes worth making (measured, one setting at a time):"]
        for ch in advice.changes:
            gain = f"x{ch.ratio:.2f}" if ch.ratio is not None else "from none to some"
            lines.append(f"- {ch.setting}: {ch.before} -> {ch.after}: {ch.capacity_before:.2f} -> "
                         f"{ch.capacity_after:.2f} requests/s per replica within the SLO ({gain})")
    lines.append("")
    lines.append(f"Recommended: {advice.best.label}" + (
        f", {advice.replicas(advice.best)} replica(s)" if advice.replicas(advice.best) is not None else ""))
    lines += [f"note: {n}" for n in advice.notes]
    return "\n".join(lines)
