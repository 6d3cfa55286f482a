"""The reactive rules the scaler is measured against, as pure functions (benchmark code; the server never
imports this module).

- **production-stack** (`helm/templates/scaledobject-vllm.yaml`): a KEDA Prometheus trigger on
  `sum(vllm:num_requests_waiting)` with threshold 5, `AverageValue`, so the HPA asks for
  `ceil(waiting / 5)` replicas, within its 10 % tolerance, scale-up limit and 300 s scale-down stabilisation
  (`hpa_recommend` + `HpaWindow`).
- **ENOVA** (`enova/algo/service.py`, the reference's section 5): every 30 s over one-minute buckets; up when
  fleet pending >= 50 in each of the last 3 buckets, to `clip(ceil(p90(new) / p90(success) * replicas),
  replicas, max)` (same engine config, so the memory ratio is 1); down to `ceil(replicas / 2)` when the p90 of
  running per replica <= 0.1 * max_num_seqs and of KV usage <= 10 % over the last 3 buckets. Its check that
  refuses a scale-up when KV and batch are both below 90 % ("made-up metrics") is left out, which only helps it.
- **static-peak**: enough replicas for the highest one-minute demand of the run, all the time.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

PRODUCTION_STACK_WAITING_TARGET = 5.0
ENOVA_PENDING_THRESHOLD = 50.0
ENOVA_WINDOW_MINUTES = 3
ENOVA_RUNNING_FRACTION = 0.1
ENOVA_KV_THRESHOLD = 0.10
ENOVA_INTERVAL_SECONDS = 30.0


def hpa_recommend(metric_total: float, target: float, current: int, tolerance: float = 0.1) -> int:
    """The HPA's AverageValue replica count for an external metric (kubernetes replica_calculator.go)."""
    if current > 0 and abs(1.0 - metric_total / (target * current)) <= tolerance:
        return current
    return math.ceil(metric_total / target - 1e-9)


@dataclass
class HpaWindow:
    """HPA behaviour defaults: scale-down stabilisation (max of recent recommendations) and the scale-up
    limit max(+100 %, +4 pods) per 15 s period."""

    min_replicas: int
    max_replicas: int
    scale_down_seconds: float = 300.0
    history: deque = field(default_factory=deque)

    def apply(self, now: float, recommendation: int, current: int) -> int:
        rec = min(max(recommendation, self.min_replicas), self.max_replicas)
        self.history.append((now, rec))
        while self.history and self.history[0][0] < now - self.scale_down_seconds:
            self.history.popleft()
        if rec < current:
            return min(current, max(r for _, r in self.history))
        if rec > current:
            return min(rec, max(2 * current, current + 4), self.max_replicas)
        return rec


def production_stack_metric(waiting_total: float) -> tuple[float, float]:
    """(metric value, target) of production-stack's KEDA trigger."""
    return waiting_total, PRODUCTION_STACK_WAITING_TARGET


def _p90(values: Sequence[float]) -> float:
    """numpy's default (linear) 90th percentile."""
    ordered = sorted(values)
    pos = 0.9 * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def enova_decide(replicas: int, max_replicas: int, pending: Sequence[float], new_requests: Sequence[float],
                 success_requests: Sequence[float], running_per_replica: Sequence[float],
                 kv_usage: Sequence[float], max_num_seqs: int,
                 pending_threshold: float = ENOVA_PENDING_THRESHOLD) -> int:
    """ENOVA's next replica count from the last ENOVA_WINDOW_MINUTES one-minute buckets (oldest first).
    `pending_threshold` is ENOVA's 50 unless the benchmark tunes it (docs/autoscaling.md)."""
    m = ENOVA_WINDOW_MINUTES
    if len(pending) < m:
        return replicas
    if all(p >= pending_threshold for p in pending[-m:]):
        success = _p90(success_requests[-m:])
        ratio = _p90(new_requests[-m:]) / success if success > 0 else 2.0
        return int(min(max(math.ceil(ratio * replicas), replicas), max_replicas))
    if (replicas > 1 and _p90(running_per_replica[-m:]) <= ENOVA_RUNNING_FRACTION * max_num_seqs
            and _p90(kv_usage[-m:]) <= ENOVA_KV_THRESHOLD):
        return math.ceil(replicas / 2)
    return replicas


def static_peak(peak_demand: float, capacity_per_replica: float) -> int:
    """Replicas for the peak, provisioned all the time."""
    return max(1, math.ceil(peak_demand / capacity_per_replica - 1e-9))
