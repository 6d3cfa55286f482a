"""The drift exporter's collector: runs the drift job on its own thread every `interval_seconds`
and serves the last outcome, so a scrape never waits on Prometheus or on a 10k-vs-10k test."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator

from prometheus_client.metrics_core import Metric

from inferwatch.config import DriftExporterConfig
from inferwatch.exporters.drift.job import DriftJob, Outcome
from inferwatch.exporters.drift.samples import SampleWindows
from inferwatch.kit.families import Family, FamilyTable, Sample
from inferwatch.kit.selfmetrics import SelfMetrics

log = logging.getLogger(__name__)

_R = ("model_name", "source", "feature", "method")
SAMPLE_REJECT_REASONS = ("unauthorized", "too_large", "bad_json", "schema", "cardinality")

TABLE = FamilyTable(
    "inferwatch_drift_",
    [
        Family("score", "gauge", "Drift score of the current window against the reference (ks: the KS statistic).", _R),
        Family(
            "detected", "gauge", "1 if the method's threshold is crossed (Evidently's defaults unless configured).", _R
        ),
        Family(
            "threshold",
            "gauge",
            "The threshold each method is judged by (ks: the p-value at or below which it drifts).",
            ("method",),
        ),
        Family(
            "samples",
            "gauge",
            "Requests (histogram source) or samples in each window; fewer than min_samples: no score.",
            ("model_name", "source", "feature", "window"),
        ),
        Family(
            "reference_info",
            "gauge",
            'The reference each model is judged against: a pinned name, or "offset" '
            "(the same window reference_offset_seconds ago).",
            ("model_name", "reference"),
        ),
        Family(
            "reference_valid",
            "gauge",
            "0 for a pinned reference that does not load (its models get no score).",
            ("reference",),
        ),
        Family("prometheus_up", "gauge", "1 if the last run's histogram queries succeeded."),
        Family("last_run_timestamp_seconds", "gauge", "When the last drift run finished."),
        Family("last_run_duration_seconds", "gauge", "How long the last drift run took."),
        Family("samples_received", "counter", "Samples taken in by POST /v1/samples.", ("model_name",)),
        Family("samples_rejected", "counter", "POST /v1/samples requests refused whole, by reason.", ("reason",)),
    ],
)


class DriftCollector:
    def __init__(self, config: DriftExporterConfig, start: bool = True):
        self.config = config
        self.self_metrics = SelfMetrics("drift")
        self.windows = SampleWindows(config.samples)
        self.job = DriftJob(config, self.windows)
        self._lock = threading.Lock()
        self._outcome: Outcome | None = None
        self._finished = 0.0
        self._duration = 0.0
        self.received: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter({reason: 0 for reason in SAMPLE_REJECT_REASONS})
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="drift-job", daemon=True) if start else None
        if self._thread:
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            self._stop.wait(self.config.interval_seconds)

    def run_once(self, now: float | None = None) -> Outcome | None:
        started = time.monotonic()
        try:
            outcome = self.job.run(time.time() if now is None else now)
        except Exception as exc:  # a bug costs one run, never the thread
            log.exception("drift run failed")
            self.self_metrics.error("run", exc)
            return None
        for stage, error in outcome.errors:
            self.self_metrics.error(stage, error)
        with self._lock:
            self._outcome, self._finished, self._duration = outcome, time.time(), time.monotonic() - started
        return outcome

    def describe(self) -> list[Metric]:
        return TABLE.describe()

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            outcome, finished, duration = self._outcome, self._finished, self._duration
            received, rejected = dict(self.received), dict(self.rejected)
        samples = [Sample("threshold", {"method": m}, float(v)) for m, v in vars(self.config.thresholds).items()]
        if outcome is not None:
            for r in outcome.results:
                labels = {"model_name": r.model, "source": r.source, "feature": r.feature, "method": r.method}
                samples += [Sample("score", labels, r.score), Sample("detected", labels, float(r.drifted))]
            samples += [
                Sample("samples", dict(zip(("model_name", "source", "feature", "window"), key, strict=True)), n)
                for key, n in sorted(outcome.samples.items())
            ]
            samples += [
                Sample("reference_info", {"model_name": m, "reference": ref}, 1.0)
                for m, ref in sorted(outcome.references.items())
            ]
            pinned = set(outcome.references.values()) | set(outcome.reference_errors)
            samples += [
                Sample("reference_valid", {"reference": name}, float(name not in outcome.reference_errors))
                for name in sorted(pinned - {"offset"})
            ]
            if outcome.prometheus_up is not None:
                samples.append(Sample("prometheus_up", {}, float(outcome.prometheus_up)))
            samples += [
                Sample("last_run_timestamp_seconds", {}, finished),
                Sample("last_run_duration_seconds", {}, duration),
            ]
        samples += [Sample("samples_received", {"model_name": m}, float(n)) for m, n in sorted(received.items())]
        samples += [Sample("samples_rejected", {"reason": r}, float(n)) for r, n in sorted(rejected.items())]
        yield from TABLE.render(samples)

    def close(self) -> None:
        self._stop.set()
