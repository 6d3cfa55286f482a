"""The log exporter's collector: every source's lines classified and counted, error templates ranked.

A line goes: cut at `max_line_bytes` -> prompt/output text redacted (privacy.redact) -> classified
(rules; DEBUG lines are not, they repeat the others) -> counted, and an error-ish line templated
into the bounded per-source store. The text of a line is never kept: only counts, the redacted
template and timestamps.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator

from prometheus_client.metrics_core import Metric

from inferwatch.config import LogExporterConfig, LogSourceConfig
from inferwatch.exporters.logs.privacy import redact
from inferwatch.exporters.logs.rules import Classifier
from inferwatch.exporters.logs.sources import STATES, Source
from inferwatch.exporters.logs.templates import TemplateStore, template
from inferwatch.kit import sentry
from inferwatch.kit.families import Family, FamilyTable, Sample
from inferwatch.kit.httpclient import FetchError
from inferwatch.kit.prometheus import PrometheusAPI, QueryError
from inferwatch.kit.selfmetrics import SelfMetrics

log = logging.getLogger(__name__)

# Debug lines repeat what the INFO/ERROR lines say (vLLM logs every rejected request again at DEBUG):
# read and redacted, never classified.
_DEBUG_LINE = re.compile(r"^(?:\([^)]{1,80}\) )?DEBUG\b")
_SC = ("source", "class")

TABLE = FamilyTable("inferwatch_", [
    Family("engine_log_events", "counter", "Engine log lines by error class and severity (rules in "
           "exporters/logs/rules; unmatched ERROR/CRITICAL lines are other_error).", (*_SC, "severity")),
    Family("engine_log_last_event_timestamp_seconds", "gauge", "When a line of this class was last seen.", _SC),
    Family("engine_log_templates", "gauge", "Distinct error templates held for the source (bounded).", ("source",)),
    Family("engine_log_new_templates", "counter", "Error templates seen for the first time.", _SC),
    Family("engine_log_new_version_templates", "counter", "Error templates first seen after the source's model "
           "version changed (a deploy brought a new problem).", ("source",)),
    Family("log_exporter_lines", "counter", "Lines read from the source.", ("source",)),
    Family("log_exporter_lines_redacted", "counter", "Lines that carried prompt or output text (the text was "
           "dropped before anything looked at the line).", ("source",)),
    Family("log_exporter_lines_dropped", "counter", "Lines or parts of lines not classified: too_long (cut at "
           "max_line_bytes), binary (not text).", ("source", "reason")),
    Family("log_exporter_source_up", "gauge", "1 while the source is being followed.", ("source",)),
    Family("log_exporter_source_state", "gauge", "1 for the source's current state.", ("source", "state")),
    Family("log_exporter_source_ended", "counter", "Times the stream ended (stdin EOF, container stopped).",
           ("source",)),
])


class LogCollector:
    def __init__(self, config: LogExporterConfig, start_sources: bool = True):
        self.config = config
        self.self_metrics = SelfMetrics("log")
        self.templates = TemplateStore(config.max_templates_per_source)
        self.classifiers = {s.name: Classifier.for_engine(s.engine, config.rules_files) for s in config.sources}
        self._lock = threading.Lock()
        self._events: Counter[tuple[str, str, str]] = Counter()
        self._new: Counter[tuple[str, str]] = Counter()
        self._new_in_version: Counter[str] = Counter()
        self._last: dict[tuple[str, str], float] = {}
        self._lines: Counter[str] = Counter()
        self._redacted: Counter[str] = Counter()
        self._dropped: Counter[tuple[str, str]] = Counter()
        self._ended: Counter[str] = Counter()
        self._state: dict[str, str] = {}
        self._versions: dict[str, str] = {}
        for source in config.sources:
            self._state[source.name] = "missing"
            for key in self._possible(source):  # the series exist at 0, so increase() sees the first event
                self._events[key] += 0
            self._lines[source.name] = self._redacted[source.name] = self._ended[source.name] = 0
            self._new_in_version[source.name] = 0
            for reason in ("too_long", "binary"):
                self._dropped[(source.name, reason)] = 0
        self._stopping = threading.Event()
        self.sources = [Source(s, config.max_line_bytes, self.feed, self.set_state, config.docker_socket)
                        for s in config.sources]
        self._prometheus = PrometheusAPI(config.prometheus_url, timeout=5) if config.prometheus_url else None
        self._watcher = threading.Thread(target=self._watch_versions, name="log-versions", daemon=True)
        if start_sources:
            for source in self.sources:
                source.start()
            if config.prometheus_url:
                self._watcher.start()

    def _possible(self, source: LogSourceConfig) -> set[tuple[str, str, str]]:
        rules = getattr(self.classifiers[source.name], "rules", [])
        return {(source.name, r.klass, r.severity) for r in rules} | {(source.name, "other_error", "error")}

    # -- the line path -------------------------------------------------------------------------------

    def feed(self, source: str, raw: bytes, cut: bool, now: float | None = None) -> None:
        """One line of `source` (no newline). Never raises: a bug is counted in the self-metrics."""
        try:
            self._feed(source, raw, cut, time.time() if now is None else now)
        except Exception as exc:
            self.self_metrics.error("line", exc)

    def _feed(self, source: str, raw: bytes, cut: bool, now: float) -> None:
        with self._lock:
            self._lines[source] += 1
            if cut:
                self._dropped[(source, "too_long")] += 1
        if b"\x00" in raw:
            with self._lock:
                self._dropped[(source, "binary")] += 1
            return
        line, carried = redact(raw.decode("utf-8", "replace"))
        if carried:
            with self._lock:
                self._redacted[source] += 1
        verdict = None if _DEBUG_LINE.match(line) else self.classifiers[source].classify(line)
        if verdict is None:
            return
        with self._lock:
            self._events[(source, verdict.klass, verdict.severity)] += 1
            self._last[(source, verdict.klass)] = now
        stats, first = self.templates.add(source, template(line), verdict.klass, verdict.severity, now)
        if first:
            with self._lock:
                self._new[(source, verdict.klass)] += 1
                if stats.new_in_version:
                    self._new_in_version[source] += 1
            sentry.capture_new_template(source, verdict.klass, verdict.severity, stats.template, stats.new_in_version)

    def set_state(self, source: str, state: str) -> None:
        with self._lock:
            if state == "ended" and self._state.get(source) != "ended":
                self._ended[source] += 1
            self._state[source] = state

    # -- model versions: "new in this version" -------------------------------------------------------

    def _watch_versions(self) -> None:
        delay = 0.0
        while not self._stopping.wait(delay):
            delay = self.config.version_poll_seconds
            for source in self.config.sources:
                version = self._version_of(source.name)
                if version and version != self._versions.get(source.name):
                    self._versions[source.name] = version
                    self.templates.set_version(source.name, version, time.time())

    def _version_of(self, source: str) -> str | None:
        """The version the engine exporter reports for the endpoint named like the source."""
        expr = f"max by (version) (inferwatch_model_version_info{{endpoint={json.dumps(source)}}})"
        try:
            results = self._prometheus.query(expr)
        except (FetchError, QueryError, KeyError, TypeError) as exc:
            self.self_metrics.error("versions", exc)
            return None
        return results[0]["metric"].get("version") if len(results) == 1 else None

    # -- Prometheus ----------------------------------------------------------------------------------

    def describe(self) -> list[Metric]:
        return TABLE.describe()

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            samples = [Sample("engine_log_events", {"source": s, "class": c, "severity": v}, float(n))
                       for (s, c, v), n in sorted(self._events.items())]
            samples += [Sample("engine_log_last_event_timestamp_seconds", {"source": s, "class": c}, t)
                        for (s, c), t in sorted(self._last.items())]
            samples += [Sample("engine_log_new_templates", {"source": s, "class": c}, float(n))
                        for (s, c), n in sorted(self._new.items())]
            for name in sorted(self._state):
                samples += [Sample("engine_log_new_version_templates", {"source": name},
                                   float(self._new_in_version[name])),
                            Sample("log_exporter_lines", {"source": name}, float(self._lines[name])),
                            Sample("log_exporter_lines_redacted", {"source": name}, float(self._redacted[name])),
                            Sample("log_exporter_source_ended", {"source": name}, float(self._ended[name])),
                            Sample("log_exporter_source_up", {"source": name},
                                   1.0 if self._state[name] == "following" else 0.0)]
                samples += [Sample("log_exporter_source_state", {"source": name, "state": state},
                                   1.0 if self._state[name] == state else 0.0) for state in STATES]
            samples += [Sample("log_exporter_lines_dropped", {"source": s, "reason": r}, float(n))
                        for (s, r), n in sorted(self._dropped.items())]
        samples += [Sample("engine_log_templates", {"source": s}, float(self.templates.size(s)))
                    for s in sorted(self._state)]
        yield from TABLE.render(samples)

    def close(self) -> None:
        self._stopping.set()
        for source in self.sources:
            source.stop()
