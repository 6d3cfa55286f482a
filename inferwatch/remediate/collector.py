"""The remediation receiver's series: what it did, skipped and refused, through one table.

Every configured action x result/reason and every refusal reason exists from the start (zero), so
`increase()` and absence alerts work from the first scrape. Label values come from config (action
names) or closed sets in code, never from alerts.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator

from prometheus_client.metrics_core import Metric

from inferwatch.config import RemediationConfig
from inferwatch.kit.families import Family, FamilyTable, Sample
from inferwatch.kit.selfmetrics import SelfMetrics
from inferwatch.remediate.dispatch import FAILURE_REASONS, Remediator
from inferwatch.remediate.policy import SKIP_REASONS
from inferwatch.remediate.webhook import Notification

RESULTS = ("succeeded", "failed", "dry_run")
REQUEST_REASONS = ("unauthorized", "too_large", "bad_json", "schema")
ALERT_REASONS = ("unknown_alert",)

TABLE = FamilyTable("inferwatch_remediation_", [
    Family("actions", "counter", "Actions finished, by result (dry_run: rendered, audited, not run).",
           ("action", "result")),
    Family("action_failures", "counter", "Failed actions, by reason.", ("action", "reason")),
    Family("skipped", "counter", "Actions not run for an alert they serve: a re-sent notification (duplicate), "
           "the hourly cap (rate_limited) or the cool-down.", ("action", "reason")),
    Family("rejected_requests", "counter", "Webhook requests refused whole, by reason.", ("reason",)),
    Family("rejected_alerts", "counter", "Alerts no configured action serves (not on any allow-list).",
           ("reason",)),
    Family("last_action_timestamp_seconds", "gauge", "When the action last finished (any result).", ("action",)),
    Family("queued_actions", "gauge", "Admitted actions waiting for the worker."),
])


class RemediationCollector:
    def __init__(self, config: RemediationConfig):
        self.config = config
        self.self_metrics = SelfMetrics("remediation")
        self._lock = threading.Lock()
        names = [a.name for a in config.actions]
        self._actions = Counter({(n, r): 0 for n in names for r in RESULTS})
        self._failures = Counter({(n, r): 0 for n in names for r in FAILURE_REASONS})
        self._skipped = Counter({(n, r): 0 for n in names for r in SKIP_REASONS})
        self._requests = Counter({r: 0 for r in REQUEST_REASONS})
        self._alerts = Counter({r: 0 for r in ALERT_REASONS})
        self._last: dict[str, float] = {}
        self.remediator = Remediator(config, self)

    def handle(self, notification: Notification) -> list[dict]:
        return self.remediator.handle(notification)

    # -- the Metrics protocol the remediator counts through --
    def action(self, action: str, result: str, reason: str | None = None) -> None:
        with self._lock:
            self._actions[(action, result)] += 1
            if reason is not None:
                self._failures[(action, reason if reason in FAILURE_REASONS else "error")] += 1
            self._last[action] = time.time()

    def skipped(self, action: str, reason: str) -> None:
        with self._lock:
            self._skipped[(action, reason)] += 1

    def rejected_alert(self, reason: str) -> None:
        with self._lock:
            self._alerts[reason] += 1

    def reject(self, reason: str) -> None:
        with self._lock:
            self._requests[reason] += 1

    def error(self, stage: str, exc: BaseException) -> None:
        self.self_metrics.error(stage, exc)

    def describe(self) -> list[Metric]:
        return TABLE.describe()

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            samples = [Sample("actions", {"action": a, "result": r}, float(n))
                       for (a, r), n in sorted(self._actions.items())]
            samples += [Sample("action_failures", {"action": a, "reason": r}, float(n))
                        for (a, r), n in sorted(self._failures.items())]
            samples += [Sample("skipped", {"action": a, "reason": r}, float(n))
                        for (a, r), n in sorted(self._skipped.items())]
            samples += [Sample("rejected_requests", {"reason": r}, float(n)) for r, n in sorted(self._requests.items())]
            samples += [Sample("rejected_alerts", {"reason": r}, float(n)) for r, n in sorted(self._alerts.items())]
            samples += [Sample("last_action_timestamp_seconds", {"action": a}, t)
                        for a, t in sorted(self._last.items())]
        samples.append(Sample("queued_actions", {}, float(self.remediator.queued())))
        yield from TABLE.render(samples)

    def close(self) -> None:
        self.remediator.close()
