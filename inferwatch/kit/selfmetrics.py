"""Self-metrics with the same names in every component, and node_exporter's scrape wrapper.

Every component exports, under `inferwatch_<component>_exporter_`:
`scrapes_total`, `scrape_duration_seconds`, `errors_total{stage,error}` and
`config_last_reload_success`. Components count their own failures with `error(stage, exc)`;
`InstrumentedCollector` times each scrape and turns a failing `collect()` into an error sample
instead of an HTTP 500, so a bug blinds one scrape's data, never the component's health series.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Protocol

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from inferwatch.kit import sentry
from inferwatch.kit.families import Family, FamilyTable, Sample

log = logging.getLogger(__name__)

SELF_FAMILIES = [
    Family("scrapes", "counter", "Scrapes (collections) served."),
    Family("scrape_duration_seconds", "gauge", "Wall time of the last scrape's collection."),
    Family("errors", "counter", "Failures by stage and error class; the component kept serving.",
           ("stage", "error")),
    Family("config_last_reload_success", "gauge", "1 if the configuration in use loaded without error."),
]
MAX_ERROR_SERIES = 256  # stage/error values come from code, but keep the bound explicit


def error_class(error: BaseException | str) -> str:
    """A short, bounded label value for a failure: the exception's class name."""
    return error if isinstance(error, str) else type(error).__name__


class SelfMetrics:
    """One component's own health: thread-safe counts, rendered through the shared table."""

    def __init__(self, component: str):
        self.component = component
        self.table = FamilyTable(f"inferwatch_{component}_exporter_", SELF_FAMILIES)
        self._lock = threading.Lock()
        self._errors: Counter[tuple[str, str]] = Counter()
        self._scrapes = 0
        self._last_duration = 0.0
        self.config_ok = True

    def error(self, stage: str, error: BaseException | str) -> None:
        key = (stage, error_class(error))
        with self._lock:
            if key in self._errors or len(self._errors) < MAX_ERROR_SERIES:
                self._errors[key] += 1
            else:
                self._errors[("other", "other")] += 1

    def errors(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._errors)

    def scraped(self, duration: float) -> None:
        with self._lock:
            self._scrapes += 1
            self._last_duration = duration

    def samples(self) -> list[Sample]:
        with self._lock:
            out = [
                Sample("scrapes", {}, float(self._scrapes)),
                Sample("scrape_duration_seconds", {}, self._last_duration),
                Sample("config_last_reload_success", {}, float(self.config_ok)),
            ]
            out += [Sample("errors", {"stage": s, "error": e}, float(n)) for (s, e), n in sorted(self._errors.items())]
        return out

    def describe(self) -> list[Metric]:
        return self.table.describe()

    def render(self) -> list[Metric]:
        return self.table.render(self.samples())


class ComponentCollector(Protocol):
    """What the kit expects of a component's collector."""

    self_metrics: SelfMetrics

    def describe(self) -> Iterable[Metric]: ...

    def collect(self) -> Iterable[Metric]: ...

    def close(self) -> None: ...


class InstrumentedCollector(Collector):
    """Wraps a component's collector: counts and times scrapes, contains its failures."""

    def __init__(self, inner: ComponentCollector):
        self.inner = inner
        self.self_metrics = inner.self_metrics

    def swap(self, inner: ComponentCollector) -> None:
        """A reloaded component: built with these self-metrics, so the counts carry on."""
        if inner.self_metrics is not self.self_metrics:
            raise ValueError("build the new collector with the running one's self_metrics")
        self.self_metrics.config_ok = True
        self.inner = inner

    def describe(self) -> Iterable[Metric]:
        return [*self.inner.describe(), *self.self_metrics.describe()]

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        try:
            families = list(self.inner.collect())
        except Exception as exc:  # a bug must not turn every scrape into HTTP 500
            # Reported before it is logged: Sentry's dedupe then drops the logging integration's copy.
            sentry.capture_exception(exc, stage="collect", collector=self.self_metrics.component)
            log.exception("%s collection failed", self.self_metrics.component)
            self.self_metrics.error("collect", exc)
            families = []
        self.self_metrics.scraped(time.perf_counter() - started)
        yield from families
        yield from self.self_metrics.render()
