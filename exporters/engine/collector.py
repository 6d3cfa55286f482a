"""The engine exporter's collector: probe every endpoint concurrently on each scrape.

Like blackbox_exporter, data is fresh per scrape and Prometheus sets the pace. Each endpoint has
one deadline (`probe_timeout_seconds`) for all its requests, and the scrape waits for all probes
at most that long plus a little, so a slow or dead endpoint costs time once, in parallel.
vLLM's own metrics are not re-exported: Prometheus scrapes vLLM directly.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from inferwatch.config import EndpointConfig, EngineExporterConfig
from inferwatch.exporters.engine.probe import ProbeResult, probe
from inferwatch.exporters.engine.version import DirectoryVersion

WAIT_SLACK_SECONDS = 0.1
MAX_WORKERS = 64


def endpoint_hostname(endpoint: EndpointConfig) -> str:
    """The host an endpoint runs on (for joining with GPU series): configured, else the URL's host."""
    return endpoint.hostname or (urllib.parse.urlparse(endpoint.base_url).hostname or "")


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
    def __init__(self, config: EngineExporterConfig):
        self.config = config
        self.endpoints = list(config.endpoints)
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=max(1, min(MAX_WORKERS, 2 * len(self.endpoints))), thread_name_prefix="probe")
        self._lock = threading.Lock()
        self._versions = _VersionTracker()
        self._dir_version = DirectoryVersion()
        self._failures: Counter[tuple[str, str]] = Counter()
        self._engine_versions: dict[str, str] = {}
        self._last_round = 0.0

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterator[Metric]:
        results = self._probe_all()
        with self._lock:
            yield from self._families(results)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- probing --------------------------------------------------------------------------
    def _probe_all(self) -> list[ProbeResult]:
        started = time.monotonic()
        timeout = self.config.probe_timeout_seconds
        futures = {self._pool.submit(probe, endpoint, timeout): endpoint for endpoint in self.endpoints}
        done, _ = concurrent.futures.wait(futures, timeout=timeout + WAIT_SLACK_SECONDS)
        results = []
        for future, endpoint in futures.items():
            if future in done and future.exception() is None:
                results.append(future.result())
            else:  # still stuck in a socket call past its deadline, or a bug: both are a failed probe
                results.append(ProbeResult(endpoint, failure="timeout", duration=timeout))
        with self._lock:
            for result in results:
                self._remember(result)
            self._last_round = time.monotonic() - started
        return results

    def _remember(self, result: ProbeResult) -> None:
        name = result.endpoint.name
        if result.failure:
            self._failures[(name, result.failure)] += 1
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
        if directory:
            fingerprint = self._dir_version.of(directory)
            if fingerprint:
                return fingerprint, "model_dir"
        if result.model_root:
            return result.model_root[:128], "served_root"
        return None

    # -- exposition -----------------------------------------------------------------------
    def _families(self, results: list[ProbeResult] | None = None) -> list[Metric]:
        labels = ["endpoint", "model_name", "role", "hostname"]
        up = GaugeMetricFamily("inferwatch_engine_up", "1 if the endpoint's /health answered 200.", labels=labels)
        serving = GaugeMetricFamily("inferwatch_engine_model_served",
                                    "1 if the endpoint lists its configured model in /v1/models.", labels=labels)
        duration = GaugeMetricFamily("inferwatch_engine_probe_duration_seconds", "Time the last probe took.",
                                     labels=["endpoint"])
        failures = CounterMetricFamily("inferwatch_engine_probe_failures", "Failed probes by reason.",
                                       labels=["endpoint", "reason"])
        served = GaugeMetricFamily("inferwatch_engine_served_model_max_length_tokens",
                                   "Max context of each model an endpoint serves (from /v1/models).",
                                   labels=["endpoint", "served_model"])
        engine_info = GaugeMetricFamily("inferwatch_engine_info", "Serving engine version (value 1).",
                                        labels=["endpoint", "engine_version"])
        version_info = GaugeMetricFamily("inferwatch_model_version_info", "Model version each endpoint serves.",
                                         labels=["endpoint", "model_name", "version", "source"])
        changes = CounterMetricFamily("inferwatch_model_version_changes",
                                      "Model version changes seen on the endpoint (deploys, rollbacks).",
                                      labels=["endpoint", "model_name"])
        since = GaugeMetricFamily("inferwatch_model_version_since_timestamp_seconds",
                                  "When the current model version was first seen.", labels=["endpoint", "model_name"])
        healthy = GaugeMetricFamily("inferwatch_model_healthy_endpoints",
                                    "Endpoints per model that are up and serve it (redundancy).",
                                    labels=["model_name", "role"])
        configured = GaugeMetricFamily("inferwatch_model_configured_endpoints", "Endpoints configured per model.",
                                       labels=["model_name", "role"])
        round_time = GaugeMetricFamily("inferwatch_engine_exporter_probe_round_seconds",
                                       "Wall time to probe every endpoint on the last scrape.")
        families = [up, serving, duration, failures, served, engine_info, version_info, changes, since, healthy,
                    configured, round_time]
        if results is None:
            return families

        per_model: dict[tuple[str, str], list[int]] = {}
        for result in results:
            ep = result.endpoint
            key = [ep.name, ep.model, ep.role, endpoint_hostname(ep)]
            up.add_metric(key, float(result.healthy))
            serving.add_metric(key, float(result.healthy and result.serves_model))
            duration.add_metric([ep.name], result.duration)
            for served_model, max_len in result.served_models.items():
                if max_len is not None:
                    served.add_metric([ep.name, served_model], float(max_len))
            counts = per_model.setdefault((ep.model, ep.role), [0, 0])
            counts[0] += int(result.healthy and result.serves_model)
            counts[1] += 1
        for endpoint in self.endpoints:
            name, model = endpoint.name, endpoint.model
            if name in self._engine_versions:
                engine_info.add_metric([name, self._engine_versions[name]], 1.0)
            if name in self._versions.current:
                version, source = self._versions.current[name]
                version_info.add_metric([name, model, version, source], 1.0)
                since.add_metric([name, model], self._versions.since[name])
            changes.add_metric([name, model], float(self._versions.changes[name]))
        for (name, reason), count in sorted(self._failures.items()):
            failures.add_metric([name, reason], float(count))
        for (model, role), (ok, total) in sorted(per_model.items()):
            healthy.add_metric([model, role], float(ok))
            configured.add_metric([model, role], float(total))
        round_time.add_metric([], self._last_round)
        return families

