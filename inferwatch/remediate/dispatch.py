"""From one webhook notification to decisions: which actions serve each alert, may they run, run them.

Deciding is synchronous (the reply lists every decision); running is not. Alertmanager 0.25 gives a
notification max(group_interval, 10 s) before it gives up and retries, and a kubectl or HTTP action
may take its full timeout, so admitted actions go to ONE worker thread in arrival order and the
reply says `queued`; the final result goes to the metrics and the audit log. One worker, not a
pool: a failover and its undo must never overtake each other. The queue is bounded; an action that
finds it full fails with reason `queue_full`.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, Protocol

from inferwatch.config import RemediationActionConfig, RemediationConfig
from inferwatch.kit.bearer import read_token
from inferwatch.remediate.actions import Plan, execute, plan, precondition_holds, template_values
from inferwatch.remediate.audit import AuditLog
from inferwatch.remediate.policy import PRECONDITION_FAILED, Limits, Policy, idempotency_key
from inferwatch.remediate.templates import RenderError
from inferwatch.remediate.webhook import Alert, Notification

log = logging.getLogger(__name__)

MAX_QUEUED = 256
FAILURE_REASONS = ("injected_flag", "missing_value", "bad_value", "timeout", "exit_status", "http_status",
                   "connection_error", "not_found", "queue_full", "error")


class Metrics(Protocol):
    def action(self, action: str, result: str, reason: str | None = None) -> None: ...

    def skipped(self, action: str, reason: str) -> None: ...

    def rejected_alert(self, reason: str) -> None: ...

    def error(self, stage: str, exc: BaseException) -> None: ...


def matches(action: RemediationActionConfig, alert: Alert) -> bool:
    return alert.alertname in action.alerts and all(alert.labels.get(k) == v for k, v in action.matchers.items())


def served_by(actions: list[RemediationActionConfig], alert: Alert) -> list[tuple[RemediationActionConfig, bool]]:
    """(action, as_undo) for an alert: actions for its status, plus, when resolved, the undo of each
    firing-side action it matches. Each action once, in config order."""
    by_name = {a.name: a for a in actions}
    chosen: dict[str, tuple[RemediationActionConfig, bool]] = {}
    for action in actions:
        if not matches(action, alert):
            continue
        if action.when == alert.status:
            chosen.setdefault(action.name, (action, False))
        elif alert.status == "resolved" and action.undo:
            chosen.setdefault(action.undo, (by_name[action.undo], True))
    return list(chosen.values())


class Remediator:
    def __init__(self, config: RemediationConfig, metrics: Metrics, clock: Callable[[], float] | None = None):
        self.config = config
        self.metrics = metrics
        self.actions = list(config.actions)
        self.allowed = frozenset(name for a in self.actions for name in a.alerts)
        limits = {a.name: Limits(a.max_per_hour, a.cooldown_seconds, frozenset(a.cooldown_ignore_labels))
                  for a in self.actions}
        self.policy = Policy(limits, clock) if clock else Policy(limits)
        self.tokens = {a.name: read_token(a.bearer_token_file, f"actions.{a.name}.bearer_token_file")
                       for a in self.actions if a.bearer_token_file}
        self.audit = AuditLog(config.audit_log)
        self._queue: queue.Queue = queue.Queue(MAX_QUEUED)
        self._worker = threading.Thread(target=self._work, name="remediate-worker", daemon=True)
        self._worker.start()

    def handle(self, notification: Notification) -> list[dict[str, Any]]:
        """Decide for every alert; queue (or, dry run, record) the admitted actions. The reply's results."""
        results = []
        for alert in notification.alerts:
            if alert.alertname not in self.allowed:
                self.metrics.rejected_alert("unknown_alert")
                self._audit(alert, None, "rejected", "unknown_alert")
                results.append(_result(alert, None, "rejected", "unknown_alert"))
                continue
            serving = served_by(self.actions, alert)
            if not serving:  # allow-listed, but no action for these labels or this status
                results.append(_result(alert, None, "ignored", "no_matching_action"))
                continue
            for action, as_undo in serving:
                result, reason = self._decide(action, as_undo, alert, notification.group_key)
                results.append(_result(alert, action.name, result, reason))
        return results

    def _decide(self, action: RemediationActionConfig, as_undo: bool, alert: Alert,
                group_key: str) -> tuple[str, str | None]:
        try:
            planned = plan(action, template_values(alert, group_key), self.tokens.get(action.name))
        except RenderError as exc:
            log.warning("action %s for %s %s: %s", action.name, alert.alertname, alert.fingerprint, exc)
            self.metrics.action(action.name, "failed", exc.reason)
            self._audit(alert, action, "failed", exc.reason, {"error": str(exc)}, as_undo=as_undo)
            return "failed", exc.reason
        key = idempotency_key(action.name, alert.fingerprint, alert.status, alert.starts_at)
        skip = self.policy.admit(key, alert.labels)
        if skip is not None:
            self.metrics.skipped(action.name, skip)
            self._audit(alert, action, "skipped", skip, as_undo=as_undo)
            return "skipped", skip
        if not self.config.execute:
            log.info("would run %s for %s %s (dry run): %s", action.name, alert.alertname, alert.fingerprint,
                     planned.summary())
            self.metrics.action(action.name, "dry_run")
            self._audit(alert, action, "dry_run", None, {"request": planned.describe()}, as_undo=as_undo)
            return "dry_run", None
        try:
            self._queue.put_nowait((planned, alert, action, as_undo))
        except queue.Full:
            self.metrics.action(action.name, "failed", "queue_full")
            self._audit(alert, action, "failed", "queue_full", {"request": planned.describe()}, as_undo=as_undo)
            return "failed", "queue_full"
        return "queued", None

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                self._queue.task_done()
                return
            try:
                self._run(*item)
            finally:
                self._queue.task_done()

    def _run(self, planned: Plan, alert: Alert, action: RemediationActionConfig, as_undo: bool) -> None:
        if planned.precondition:
            check = precondition_holds(planned)
            if not check.succeeded:
                log.warning("%s for %s %s skipped: precondition %s failed (%s)", action.name, alert.alertname,
                            alert.fingerprint, planned.precondition, check.reason)
                self.metrics.skipped(action.name, PRECONDITION_FAILED)
                self._audit(alert, action, "skipped", PRECONDITION_FAILED,
                            {"request": planned.describe(), **check.detail}, as_undo=as_undo)
                return
        log.info("running %s for %s %s: %s", action.name, alert.alertname, alert.fingerprint, planned.summary())
        try:
            outcome = execute(planned)
        except Exception as exc:  # our bug: counted, never kills the worker
            self.metrics.error("execute", exc)
            self.metrics.action(action.name, "failed", "error")
            self._audit(alert, action, "failed", "error", {"request": planned.describe(), "error": str(exc)},
                        as_undo=as_undo)
            return
        result = "succeeded" if outcome.succeeded else "failed"
        (log.info if outcome.succeeded else log.warning)("%s %s for %s: %s", action.name, result, alert.alertname,
                                                         outcome.reason or "ok")
        self.metrics.action(action.name, result, outcome.reason)
        self._audit(alert, action, result, outcome.reason, {"request": planned.describe(), **outcome.detail},
                    as_undo=as_undo)

    def _audit(self, alert: Alert, action: RemediationActionConfig | None, result: str, reason: str | None,
               extra: dict[str, Any] | None = None, as_undo: bool = False) -> None:
        record = {"alertname": alert.alertname, "fingerprint": alert.fingerprint, "status": alert.status,
                  "starts_at": alert.starts_at, "labels": alert.labels,
                  "action": action.name if action else None, "kind": action.kind if action else None,
                  "undo": as_undo, "execute": self.config.execute, "result": result, "reason": reason,
                  **(extra or {})}
        try:
            self.audit.write(record)
        except OSError as exc:
            self.metrics.error("audit", exc)
            log.error("cannot write the audit log %s: %s", self.config.audit_log, exc)

    def queued(self) -> int:
        return self._queue.qsize()

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every queued action has run (tests); False if `timeout` passed first."""
        finished = threading.Event()
        threading.Thread(target=lambda: (self._queue.join(), finished.set()), daemon=True).start()
        return finished.wait(timeout)

    def close(self) -> None:
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=1.0)
        self._worker.join(timeout=5.0)
        self.audit.close()


def _result(alert: Alert, action: str | None, result: str, reason: str | None) -> dict[str, Any]:
    out = {"fingerprint": alert.fingerprint, "alertname": alert.alertname, "action": action, "result": result}
    if reason:
        out["reason"] = reason
    return out
