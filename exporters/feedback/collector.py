"""The feedback service's collector: feedback counts, the numeric-score histogram and the
service's own health, rendered through one table; `ingest()` is the one way feedback comes in.

Several replicas can run behind a load balancer: each counts what it received, Prometheus
scrapes each, and PromQL sums them (`sum without (instance) (...)`). Nothing is shared but the
store directory, where each replica writes its own segments.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator

from prometheus_client.core import HistogramMetricFamily
from prometheus_client.metrics_core import Metric

from inferwatch.config import FeedbackServerConfig
from inferwatch.exporters.feedback.counts import Accepted, FeedbackCounts
from inferwatch.exporters.feedback.schema import REASONS, Feedback, Rejected, parse_body
from inferwatch.exporters.feedback.store import NegativeStore, Record
from inferwatch.exporters.feedback.versions import VersionResolver
from inferwatch.kit.families import Family, FamilyTable, Sample
from inferwatch.kit.selfmetrics import SelfMetrics

log = logging.getLogger(__name__)

UNKNOWN = "unknown"
LOOKUP_RESULTS = ("given", "resolved", "unresolved", "error", "disabled")
_S = ("model_name", "version", "score")

TABLE = FamilyTable("inferwatch_", [
    Family("feedback", "counter", "Feedback received, by the version that served the request, score, bounded value "
           "and polarity; the exemplar is the request id.", (*_S, "value", "polarity")),
    Family("feedback_comments", "counter", "Feedback that carried a comment (the comment itself is never kept).", _S),
    Family("feedback_rejected", "counter", "Requests refused whole, by reason.", ("reason",)),
    Family("feedback_last_received_timestamp_seconds", "gauge", "When feedback for the model last arrived.",
           ("model_name",)),
    Family("feedback_version_lookups", "counter", "How each item's model version was found (given by the app, "
           "resolved from the engine exporter's series in Prometheus, or not).", ("result",)),
    Family("feedback_store_records_written", "counter", "Negatively rated requests written to the store."),
    Family("feedback_store_bytes", "gauge", "Bytes of the store's segments on disk (every replica's)."),
    Family("feedback_store_segments_deleted", "counter", "Store segments deleted for size or retention."),
    Family("feedback_store_write_errors", "counter", "Failed store writes (the request was answered 503)."),
])
SCORE_HISTOGRAM = "inferwatch_feedback_score"
SCORE_HELP = "Numeric feedback scores, by the version that served the request."


class StoreUnavailable(Exception):
    """The negative store could not take a batch: nothing was counted, the client should retry."""


class FeedbackCollector:
    def __init__(self, config: FeedbackServerConfig):
        self.config = config
        self.self_metrics = SelfMetrics("feedback")
        self.counts = FeedbackCounts(config)
        self.resolver = VersionResolver(config.prometheus_url, config.version_lookup_timeout_seconds)
        self.store = (NegativeStore(config.store_dir, config.store_max_bytes, config.store_retention_days * 86400)
                      if config.store_dir else None)
        self._lock = threading.Lock()
        self._ingest = threading.Lock()  # plan, store, commit: one batch at a time
        self._rejected: Counter[str] = Counter({reason: 0 for reason in REASONS})
        self._lookups: Counter[str] = Counter({result: 0 for result in LOOKUP_RESULTS})

    def reject(self, reason: str) -> None:
        with self._lock:
            self._rejected[reason] += 1

    def ingest(self, body: bytes) -> int:
        """Parse, resolve versions, store the negative ones, count: the number of items accepted.
        Rejected (a 4xx) or StoreUnavailable (a 503) leave every count as it was."""
        try:
            items = parse_body(body, self.counts.scores, self.config.max_batch)
        except Rejected as exc:
            self.reject(exc.reason)
            raise
        versions, lookups_failing = [], False
        for item in items:  # after one failed lookup the batch stops asking: one deadline per request, not per item
            version, result = self._version(item, skip_lookup=lookups_failing)
            versions.append(version)
            lookups_failing = lookups_failing or result == "error"
        with self._ingest:
            try:
                planned = self.counts.plan(items, versions)
            except Rejected as exc:
                self.reject(exc.reason)
                raise
            now = time.time()
            if self.store is not None:
                records = [self._record(p[1], now) for p in planned if p[1].polarity == "negative"]
                try:
                    self.store.append(records)
                except OSError as exc:
                    self.self_metrics.error("store", exc)
                    log.error("cannot write the feedback store: %s", exc)
                    raise StoreUnavailable(str(exc)) from None
            self.counts.commit(planned, now)
        return len(planned)

    def _version(self, item: Feedback, skip_lookup: bool) -> tuple[str, str]:
        if item.version:
            result, version = "given", item.version
        elif skip_lookup:
            result, version = "error", UNKNOWN
        else:
            found, result = self.resolver.resolve(item.model, item.timestamp)
            version = found or UNKNOWN
        with self._lock:
            self._lookups[result] += 1
        return version, result

    @staticmethod
    def _record(accepted: Accepted, now: float) -> Record:
        item = accepted.feedback
        served = min(item.timestamp, now) if item.timestamp is not None else now
        return Record(served, now, item.request_id, item.model, accepted.version, item.score, item.value)

    def describe(self) -> list[Metric]:
        return [*TABLE.describe(), HistogramMetricFamily(SCORE_HISTOGRAM, SCORE_HELP, labels=_S)]

    def collect(self) -> Iterator[Metric]:
        totals, histograms, comments, last = self.counts.snapshot()
        samples = [Sample("feedback", dict(zip((*_S, "value", "polarity"), key, strict=True)), count, exemplar)
                   for key, (count, exemplar) in sorted(totals.items())]
        samples += [Sample("feedback_comments", dict(zip(_S, key, strict=True)), n)
                    for key, n in sorted(comments.items())]
        samples += [Sample("feedback_last_received_timestamp_seconds", {"model_name": m}, t)
                    for m, t in sorted(last.items())]
        with self._lock:
            samples += [Sample("feedback_rejected", {"reason": r}, float(n)) for r, n in sorted(self._rejected.items())]
            samples += [Sample("feedback_version_lookups", {"result": r}, float(n))
                        for r, n in sorted(self._lookups.items())]
        if self.store is not None:
            stats = self.store.stats
            samples += [Sample("feedback_store_records_written", {}, float(stats.records_written)),
                        Sample("feedback_store_bytes", {}, float(self.store.bytes_on_disk())),
                        Sample("feedback_store_segments_deleted", {}, float(stats.segments_deleted)),
                        Sample("feedback_store_write_errors", {}, float(stats.write_errors))]
        yield from TABLE.render(samples)
        if histograms:
            family = HistogramMetricFamily(SCORE_HISTOGRAM, SCORE_HELP, labels=_S)
            for key, histogram in sorted(histograms.items()):
                cumulative, buckets = 0.0, []
                for i, bound in enumerate([*histogram.bounds, float("inf")]):
                    cumulative += histogram.buckets[i]
                    le = "+Inf" if bound == float("inf") else repr(bound)
                    exemplar = histogram.exemplars.get(i)
                    buckets.append((le, cumulative, exemplar) if exemplar else (le, cumulative))
                family.add_metric(list(key), buckets, histogram.sum)
            yield family

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
