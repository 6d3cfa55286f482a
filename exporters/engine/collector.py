"""The engine exporter's collector: probe every endpoint concurrently on each scrape.

Like blackbox_exporter, data is fresh per scrape and Prometheus sets the pace. Each endpoint has
one deadline (`probe_timeout_seconds`) for all its requests, enforced by cancelling its I/O on
one shared event loop, so a slow, hanging or trickling endpoint costs its deadline once, in
parallel, and never holds a thread. An endpoint has at most one probe in flight: an overlapping
scrape reports its last result with reason `stale`.
vLLM's own metrics are not re-exported: Prometheus scrapes vLLM directly.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterable, Iterator

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from inferwatch.config import EndpointConfig, EngineExporterConfig
from inferwatch.exporters.engine.probe import ProbeResult, probe_async
from inferwatch.exporters.engine.version import DirectoryVersion
from inferwatch.kit.families import Family, FamilyTable, Sample
from inferwatch.kit.labels import clean
from inferwatch.kit.selfmetrics import SelfMetrics
from inferwatch.kit.workers import LoopThread

log = logging.getLogger(__name__)

_ENDPOINT = ("endpoint", "model_name", "role", "hostname")
TABLE = FamilyTable("inferwatch_", [
    # `target` (host:port of the base URL, what Prometheus calls `instance` when it scrapes the
    # engine) lets Alertmanager see this probe and a failed scrape of the same engine as one outage.
    Family("engine_up", "gauge", "1 if the endpoint's /health answered 200.", (*_ENDPOINT, "target")),
    Family("engine_model_served", "gauge", "1 if the endpoint lists its configured model in /v1/models.", _ENDPOINT),
    Family("engine_probe_duration_seconds", "gauge", "Time the last probe took.", ("endpoint",)),
    Family("engine_probe_failures", "counter", "Failed probes by reason.", ("endpoint", "reason")),
    Family("engine_served_model_max_length_tokens", "gauge",
           "Max context of each model an endpoint serves (from /v1/models).", ("endpoint", "served_model")),
    Family("engine_info", "gauge", "Serving engine version (value 1).", ("endpoint", "engine_version")),
    Family("model_version_info", "gauge", "Model version each endpoint serves.",
           ("endpoint", "model_name", "version", "source")),
    Family("model_version_changes", "counter", "Model version changes seen on the endpoint (deploys, rollbacks).",
           ("endpoint", "model_name")),
    Family("model_version_since_timestamp_seconds", "gauge", "When the current model version was first seen.",
           ("endpoint", "model_name")),
    Family("model_healthy_endpoints", "gauge", "Endpoints per model that are up and serve it (redundancy).",
           ("model_name", "role")),
    Family("model_configured_endpoints", "gauge", "Endpoints configured per model.", ("model_name", "role")),
    Family("engine_exporter_probe_round_seconds", "gauge", "Wall time to probe every endpoint on the last scrape."),
    Family("engine_exporter_probes_in_flight", "gauge", "Probes still running after the last scrape returned."),
    Family("engine_exporter_probes_skipped", "counter",
           "Probes not started because the endpoint's previous probe was still running (reported `stale`)."),
    Family("engine_exporter_model_hash_timeouts", "counter",
           "Model directory fingerprints abandoned at their time budget."),
])

WAIT_SLACK_SECONDS = 0.25  # the loop's own lag when it runs many probes at once
LOG_EVERY_SECONDS = 60.0  # one debug line per endpoint and reason per minute


def endpoint_target(endpoint: EndpointConfig) -> str:
    """host:port of the endpoint's base URL (the scheme's default port when it names none)."""
    try:
        parts = urllib.parse.urlsplit(endpoint.base_url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        host = parts.hostname or ""
        return clean(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    except ValueError:
        return ""


def endpoint_hostname(endpoint: EndpointConfig) -> str:
    """The host an endpoint runs on (for joining with GPU series): configured, else the URL's host."""
    try:
        return clean(endpoint.hostname or (urllib.parse.urlsplit(endpoint.base_url).hostname or ""))
    except ValueError:
        return ""


class _VersionTracker:
    """Remembers each endpoint's model version to count and timestamp changes (deploys)."""

    def __init__(self) -> None:
        self.current: dict[str, tuple[str, str]] = {}  # endpoint -> (version, source)
        self.since: dict[str, float] = {}
        self.changes: Counter[str] = Counter()

    def observe(self, endpoint: str, version: str, source: str) -> None:
        previous = self.current.get(endpoint)
        if previous is not None and previous[0] == version:
            return
        if previous is not None:
            self.changes[endpoint] += 1
        self.current[endpoint] = (version, source)
        self.since[endpoint] = time.time()


class EngineCollector(Collector):
    """Built from its config section; `previous` (a reload) hands over versions and failure counts."""

    def __init__(self, config: EngineExporterConfig, previous: EngineCollector | None = None):
        self.config = config
        self.self_metrics = previous.self_metrics if previous else SelfMetrics("engine")
        self.endpoints = list(config.endpoints)
        self._probes = LoopThread("engine-probes")  # every probe; deadlines cancel I/O, no thread is stuck
        self._lock = threading.Lock()
        self._versions = _VersionTracker()
        self._dir_version = DirectoryVersion(config.model_dirs_allowed)
        self._failures: Counter[tuple[str, str]] = Counter()
        self._engine_versions: dict[str, str] = {}
        self._inflight: dict[str, concurrent.futures.Future] = {}  # endpoint -> its running probe
        self._last: dict[str, ProbeResult] = {}
        self._skipped = 0
        self._logged: dict[tuple[str, str], float] = {}
        self._last_round = 0.0
        if previous is not None:
            self._carry_over(previous)

    def _carry_over(self, previous: EngineCollector) -> None:
        """Keep what a restart would lose for endpoints still configured: no false deploy, no counter reset."""
        names = {e.name for e in self.endpoints}
        with previous._lock:
            for name in names & set(previous._versions.current):
                self._versions.current[name] = previous._versions.current[name]
                self._versions.since[name] = previous._versions.since[name]
                self._versions.changes[name] = previous._versions.changes[name]
            self._failures.update({k: v for k, v in previous._failures.items() if k[0] in names})
            self._engine_versions.update({k: v for k, v in previous._engine_versions.items() if k in names})

    def describe(self) -> Iterable[Metric]:
        return TABLE.describe()

    def collect(self) -> Iterator[Metric]:
        results = self._probe_all()
        with self._lock:
            samples = self._samples(results)
        yield from TABLE.render(samples)

    def close(self) -> None:
        self._probes.close()
        self._dir_version.close()

    # -- probing --------------------------------------------------------------------------
    def _probe_all(self) -> list[ProbeResult]:
        """Probe every endpoint that has no probe running; each within the deadline, all at once."""
        started = time.monotonic()
        timeout = self.config.probe_timeout_seconds
        started_now: dict[str, concurrent.futures.Future] = {}
        with self._lock:
            for endpoint in self.endpoints:
                running = self._inflight.get(endpoint.name)
                if running is None or running.done():
                    started_now[endpoint.name] = self._inflight[endpoint.name] = self._probes.submit(
                        probe_async(endpoint, timeout))
                else:
                    self._skipped += 1
        concurrent.futures.wait(started_now.values(), timeout=timeout + WAIT_SLACK_SECONDS)
        results = []
        for endpoint in self.endpoints:
            future = started_now.get(endpoint.name)
            # a probe from an overlapping scrape is still running, or the collector is closing (cancelled)
            if future is None or not future.done() or future.cancelled():
                last = self._last.get(endpoint.name, ProbeResult(endpoint))
                results.append(dataclasses.replace(last, failure="stale", duration=time.monotonic() - started))
            elif future.exception() is not None:  # a bug: say so, do not blame the endpoint
                self.self_metrics.error("probe", future.exception())
                results.append(ProbeResult(endpoint, failure="error", duration=time.monotonic() - started))
            else:
                results.append(future.result())
        with self._lock:
            for result in results:
                self._remember(result)
            self._last_round = time.monotonic() - started
        return results

    def _log_failure(self, result: ProbeResult) -> None:
        key = (result.endpoint.name, result.failure)
        now = time.monotonic()
        if now - self._logged.get(key, -LOG_EVERY_SECONDS) >= LOG_EVERY_SECONDS:
            self._logged[key] = now
            log.debug("endpoint %s: probe failed (%s) after %.3f s", result.endpoint.name, result.failure,
                      result.duration)

    def _remember(self, result: ProbeResult) -> None:
        name = result.endpoint.name
        if result.failure != "stale":
            self._last[name] = result
        if result.failure:
            self._failures[(name, result.failure)] += 1
            self._log_failure(result)
        if result.bug:
            self.self_metrics.error("probe", result.bug)
        if result.engine_version:
            self._engine_versions[name] = result.engine_version
        version = self._model_version(result)
        if version is not None:
            self._versions.observe(name, *version)

    def _model_version(self, result: ProbeResult) -> tuple[str, str] | None:
        """(version, source): config wins, then the model directory's content, then vLLM's `root`."""
        endpoint = result.endpoint
        if endpoint.model_version:
            return endpoint.model_version, "config"
        directory = endpoint.model_dir or result.model_root
        if directory and self._dir_version.allows(directory, configured=bool(endpoint.model_dir)):
            fingerprint, pending = self._dir_version.lookup(directory)
            if fingerprint:
                return fingerprint, "model_dir"
            if pending:
                # Slow disk or a loaded host: keep the last version (none yet at start-up). Reporting
                # the served root now would count a spurious change when the fingerprint lands.
                return None
        if result.model_root:
            return clean(result.model_root), "served_root"
        return None

    # -- exposition -----------------------------------------------------------------------
    def _samples(self, results: list[ProbeResult]) -> list[Sample]:
        out: list[Sample] = []
        per_model: dict[tuple[str, str], list[int]] = {}
        for result in results:
            ep = result.endpoint
            key = {"endpoint": ep.name, "model_name": ep.model, "role": ep.role, "hostname": endpoint_hostname(ep)}
            out.append(Sample("engine_up", {**key, "target": endpoint_target(ep)}, float(result.healthy)))
            out.append(Sample("engine_model_served", key, float(result.healthy and result.serves_model)))
            out.append(Sample("engine_probe_duration_seconds", {"endpoint": ep.name}, result.duration))
            for served_model, max_len in result.served_models.items():
                if max_len is not None:
                    out.append(Sample("engine_served_model_max_length_tokens",
                                      {"endpoint": ep.name, "served_model": served_model}, float(max_len)))
            counts = per_model.setdefault((ep.model, ep.role), [0, 0])
            counts[0] += int(result.healthy and result.serves_model)
            counts[1] += 1
        for endpoint in self.endpoints:
            name, model = endpoint.name, endpoint.model
            if name in self._engine_versions:
                out.append(Sample("engine_info", {"endpoint": name, "engine_version": self._engine_versions[name]}, 1))
            if name in self._versions.current:
                version, source = self._versions.current[name]
                labels = {"endpoint": name, "model_name": model}
                out.append(Sample("model_version_info", {**labels, "version": version, "source": source}, 1.0))
                out.append(Sample("model_version_since_timestamp_seconds", labels, self._versions.since[name]))
            out.append(Sample("model_version_changes", {"endpoint": name, "model_name": model},
                              float(self._versions.changes[name])))
        for (name, reason), count in sorted(self._failures.items()):
            out.append(Sample("engine_probe_failures", {"endpoint": name, "reason": reason}, float(count)))
        for (model, role), (ok, total) in sorted(per_model.items()):
            out.append(Sample("model_healthy_endpoints", {"model_name": model, "role": role}, float(ok)))
            out.append(Sample("model_configured_endpoints", {"model_name": model, "role": role}, float(total)))
        out.append(Sample("engine_exporter_probe_round_seconds", {}, self._last_round))
        out.append(Sample("engine_exporter_probes_in_flight", {},
                          float(sum(not f.done() for f in self._inflight.values()))))
        out.append(Sample("engine_exporter_probes_skipped", {}, float(self._skipped)))
        out.append(Sample("engine_exporter_model_hash_timeouts", {}, float(self._dir_version.timeouts)))
        return out
