"""The scaler's own series (`inferwatch_scaler_*`, on its HTTP metrics port through the kit).

Label values are closed sets from code (method, code, stage, reason) or, per ScaledObject, its namespace,
name and model, cleaned and capped at `scaler.max_tracked_objects` objects: beyond the cap a decision is
counted in `untracked_decisions_total` instead of getting series (an object not decided on for
STALE_SECONDS gives up its slot).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client.metrics_core import Metric

from inferwatch.config import ScalerConfig
from inferwatch.kit.families import Family, FamilyTable, Sample
from inferwatch.kit.labels import clean
from inferwatch.kit.selfmetrics import SelfMetrics

from .policy import REASONS, Decision
from .signals import STAGES

METHODS = ("GetMetricSpec", "GetMetrics", "IsActive", "StreamIsActive", "StreamMetricSpec")
CODES = ("OK", "INVALID_ARGUMENT", "FAILED_PRECONDITION", "UNAVAILABLE", "RESOURCE_EXHAUSTED", "UNIMPLEMENTED",
         "CANCELLED", "INTERNAL")
OBJECT_LABELS = ("namespace", "scaled_object", "model")
STALE_SECONDS = 3600.0

TABLE = FamilyTable("inferwatch_scaler_", [
    Family("rpcs", "counter", "KEDA's gRPC calls answered, by method and status code (streams when they end).",
           ("method", "code")),
    Family("queries", "counter", "Prometheus queries made, by stage (the Signals field; seasonal: each lookback).",
           ("stage",)),
    Family("query_errors", "counter", "Prometheus queries without a usable answer, by stage and reason.",
           ("stage", "reason")),
    Family("decisions", "counter", "Decisions computed (a cached one answering a second call is not counted)."),
    Family("decision_duration_seconds", "counter", "Wall time spent computing decisions, queries included; "
           "divide by decisions_total for the mean."),
    Family("forecast", "gauge", "Last forecast demand at now + start-up (requests/s or tokens/s, per the policy).",
           OBJECT_LABELS),
    Family("desired_replicas", "gauge", "Last desired replicas answered to KEDA (metricValueFloat).", OBJECT_LABELS),
    Family("capacity_per_replica", "gauge", "Capacity estimate of the last decision (demand one replica serves).",
           OBJECT_LABELS),
    Family("active", "gauge", "1 if the last decision was active (IsActive).", OBJECT_LABELS),
    Family("decision_reason", "gauge", "1 for the reason of the last decision.", (*OBJECT_LABELS, "reason")),
    Family("last_decision_timestamp_seconds", "gauge", "When the last decision was made.", OBJECT_LABELS),
    Family("tracked_objects", "gauge", "ScaledObjects with their own series (at most scaler.max_tracked_objects)."),
    Family("untracked_decisions", "counter", "Decisions for ScaledObjects beyond scaler.max_tracked_objects."),
    Family("open_streams", "gauge", "StreamIsActive streams open."),
])


@dataclass
class _Object:
    model: str
    decision: Decision
    at: float  # wall time of the decision
    seen: float  # monotonic, for the stale rule


class ScalerCollector:
    def __init__(self, config: ScalerConfig, self_metrics: SelfMetrics | None = None):
        self.config = config
        self.self_metrics = self_metrics or SelfMetrics("scaler")
        self._lock = threading.Lock()
        self._rpcs = Counter({(m, c): 0 for m in METHODS for c in CODES})
        self._queries = Counter({s: 0 for s in STAGES})
        self._query_errors: Counter[tuple[str, str]] = Counter()
        self._objects: dict[tuple[str, str], _Object] = {}
        self._untracked = 0
        self._decisions = 0
        self._decision_seconds = 0.0
        self.open_streams = 0

    # -- counting, from the servicer --
    def rpc(self, method: str, code: str) -> None:
        with self._lock:
            self._rpcs[(method, code if code in CODES else "INTERNAL")] += 1

    def query(self, stage: str, failure: str | None) -> None:
        with self._lock:
            self._queries[stage] += 1
            if failure is not None:
                self._query_errors[(stage, failure)] += 1

    def decided(self, namespace: str, name: str, model: str, decision: Decision, seconds: float) -> None:
        key = (clean(namespace), clean(name))
        now = time.monotonic()
        with self._lock:
            self._decisions += 1
            self._decision_seconds += seconds
            if key not in self._objects and len(self._objects) >= self.config.max_tracked_objects:
                stale = min(self._objects, key=lambda k: self._objects[k].seen)
                if now - self._objects[stale].seen < STALE_SECONDS:
                    self._untracked += 1
                    return
                del self._objects[stale]
            self._objects[key] = _Object(clean(model), decision, time.time(), now)

    def stream(self, delta: int) -> None:
        with self._lock:
            self.open_streams += delta

    # -- the collector protocol --
    def describe(self) -> list[Metric]:
        return TABLE.describe()

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            samples = [Sample("rpcs", {"method": m, "code": c}, float(n)) for (m, c), n in sorted(self._rpcs.items())]
            samples += [Sample("queries", {"stage": s}, float(n)) for s, n in self._queries.items()]
            samples += [Sample("query_errors", {"stage": s, "reason": r}, float(n))
                        for (s, r), n in sorted(self._query_errors.items())]
            samples += [Sample("decisions", {}, float(self._decisions)),
                        Sample("decision_duration_seconds", {}, self._decision_seconds)]
            for (namespace, name), obj in sorted(self._objects.items()):
                labels = {"namespace": namespace, "scaled_object": name, "model": obj.model}
                d = obj.decision
                samples += [Sample("forecast", labels, d.forecast), Sample("desired_replicas", labels, d.desired),
                            Sample("capacity_per_replica", labels, d.capacity),
                            Sample("active", labels, float(d.active)),
                            Sample("last_decision_timestamp_seconds", labels, obj.at)]
                samples += [Sample("decision_reason", {**labels, "reason": r}, float(r == d.reason)) for r in REASONS]
            samples += [Sample("tracked_objects", {}, float(len(self._objects))),
                        Sample("untracked_decisions", {}, float(self._untracked)),
                        Sample("open_streams", {}, float(self.open_streams))]
        yield from TABLE.render(samples)

    def close(self) -> None:
        pass
