"""The GPU exporter's prometheus_client collector.

NVML runs on one dedicated worker thread. A scrape asks that thread for a fresh reading and
waits at most `nvml_timeout_seconds`; if NVML hangs, the scrape returns the exporter's own
metrics (with `exporter_collect_timeouts_total` raised) and later scrapes share the stuck
call instead of piling up new threads.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import pynvml as nv
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from inferwatch.config import GpuExporterConfig
from inferwatch.exporters.gpu.containers import ContainerResolver
from inferwatch.exporters.gpu.metrics import DCGM_LABEL_NAMES, FAMILIES, FAMILY_LIST, PREFIX, TABLE, GpuFamily, Sample
from inferwatch.exporters.gpu.nvml import error_name, load_backend
from inferwatch.exporters.gpu.reader import DeviceReader
from inferwatch.exporters.gpu.xid import XidWatcher
from inferwatch.kit.selfmetrics import SelfMetrics
from inferwatch.kit.workers import DaemonExecutor

log = logging.getLogger(__name__)

INIT_RETRY_SECONDS = 30.0


def default_hostname(config: GpuExporterConfig) -> str:
    return config.hostname or os.environ.get("NODE_NAME") or socket.gethostname()


class GpuCollector(Collector):
    """Built from its config section; `nvml` defaults to the real driver (or `config.simulate`)."""

    def __init__(self, config: GpuExporterConfig, nvml: Any = None, self_metrics: SelfMetrics | None = None):
        self.config = config
        self.nv = nvml if nvml is not None else load_backend(config.simulate)
        self.naming = config.naming
        self.timeout = config.nvml_timeout_seconds
        self.self_metrics = self_metrics or SelfMetrics("gpu")  # given: a reload keeps counting
        self.xid = XidWatcher(self.nv) if config.xid_events else None
        containers = (ContainerResolver(config.proc_root, config.docker_socket)
                      if config.process_attribution else None)
        self.reader = DeviceReader(
            self.nv, default_hostname(config), self.self_metrics, containers, config.max_containers_per_gpu,
            xid_samples=self.xid.samples if self.xid else None,
        )
        self._executor = DaemonExecutor(1, "nvml")  # a hung NVML call must not keep the process alive
        self._inflight: concurrent.futures.Future | None = None
        self._lock = threading.Lock()
        self._initialised = False
        self._init_error = ""
        self._next_init = 0.0
        self._timeouts = 0
        self._last_duration = 0.0
        self._driver_version = ""

    # -- prometheus_client interface -----------------------------------------------------
    def describe(self) -> Iterable[Metric]:
        """Every family we may export, without touching NVML (safe at registration)."""
        seen: set[str] = set()
        for family in FAMILY_LIST:
            for name, kind in self._names_for(family):
                if name not in seen:
                    seen.add(name)
                    yield Metric(name, family.help, kind)

    def collect(self) -> Iterator[Metric]:
        samples = self._fresh_samples() + self._self_samples()
        yield from render(samples, self.naming, self._driver_version)

    def close(self) -> None:
        if self.xid:
            self.xid.stop()
        self._executor.shutdown()
        if self._initialised:
            with contextlib.suppress(nv.NVMLError):
                self.nv.nvmlShutdown()

    # -- collection -----------------------------------------------------------------------
    def _fresh_samples(self) -> list[Sample]:
        with self._lock:
            if self._inflight is None or self._inflight.done():
                self._inflight = self._executor.submit(self._read)
            future = self._inflight
        try:
            return future.result(timeout=self.timeout)
        except concurrent.futures.TimeoutError:
            with self._lock:
                self._timeouts += 1
            log.warning("NVML did not answer within %.1f s; serving exporter metrics only", self.timeout)
            return []
        except concurrent.futures.CancelledError:  # the exporter is closing under a scrape: nothing to report
            log.debug("GPU collection cancelled: the exporter is stopping")
            return []
        except Exception:  # a bug must not take the exporter down: log it and count it
            log.exception("GPU collection failed")
            self.self_metrics.error("collect", "RuntimeError")
            return []

    def _read(self) -> list[Sample]:
        if not self._ensure_init():
            return []
        started = time.perf_counter()
        samples = self.reader.read()
        self._last_duration = time.perf_counter() - started
        for sample in samples:
            if sample.family == "driver_info":
                self._driver_version = sample.labels["driver_version"]
        return samples

    def _ensure_init(self) -> bool:
        if self._initialised:
            return True
        if time.monotonic() < self._next_init:
            return False
        try:
            self.nv.nvmlInit()
        except (nv.NVMLError, OSError) as exc:  # no driver, no library, version mismatch
            self._init_error = error_name(exc)
            self._next_init = time.monotonic() + INIT_RETRY_SECONDS
            log.warning("NVML unavailable (%s); retrying in %.0f s", exc, INIT_RETRY_SECONDS)
            return False
        self._initialised, self._init_error = True, ""
        if self.xid:
            self.xid.start()
        return True

    def _self_samples(self) -> list[Sample]:
        with self._lock:
            timeouts = self._timeouts
        out = [
            Sample("exporter_nvml_up", {"error": self._init_error}, float(self._initialised)),
            Sample("exporter_devices", {}, float(self.reader.device_count)),
            Sample("exporter_collect_duration_seconds", {}, self._last_duration),
            Sample("exporter_collect_timeouts", {}, float(timeouts)),
        ]
        if self.xid:
            out.append(Sample("exporter_xid_watcher_up", {}, float(self.xid.running)))
        for index, device in sorted(self.reader.devices.items()):
            out.append(Sample("exporter_unsupported_probes", {"gpu": str(index)}, float(len(device.unsupported))))
        return out

    def _names_for(self, family: GpuFamily) -> list[tuple[str, str]]:
        if self.naming == "dcgm" and family.dcgm is not None:
            if isinstance(family.dcgm, str):
                return [(family.dcgm, "gauge")]
            return []  # label-dependent DCGM names are only known per sample
        if family.dcgm_only:
            return []
        return [(PREFIX + family.name, family.kind)]


def render(samples: list[Sample], naming: str, driver_version: str = "") -> list[Metric]:
    """Group samples into metric families: the kit table for our names, DCGM's names on request."""
    if naming != "dcgm":
        return TABLE.render(s for s in samples if not FAMILIES[s.family].dcgm_only)
    families: dict[str, Metric] = {}
    for sample in samples:
        family = FAMILIES[sample.family]
        labels, value = dict(sample.labels), sample.value
        if family.dcgm is not None:
            name = family.dcgm if isinstance(family.dcgm, str) else family.dcgm(labels)
            value *= family.dcgm_scale
            labels = _dcgm_labels(labels, driver_version) if family.per_gpu else labels
            # dcgm-exporter's counters carry no `_total`; the text format would add one to a
            # counter's HELP/TYPE, so they are typed gauge here (PromQL does not care).
            kind, sample_name = "gauge", name
        elif family.dcgm_only:
            continue
        else:
            name, kind = PREFIX + family.name, family.kind
            sample_name = name + "_total" if kind == "counter" else name
        metric = families.get(name)
        if metric is None:
            metric = families[name] = Metric(name, family.help, kind)
        metric.add_sample(sample_name, labels, value)
    return list(families.values())


def _dcgm_labels(labels: dict[str, str], driver_version: str) -> dict[str, str]:
    out = {DCGM_LABEL_NAMES.get(k, k): v for k, v in labels.items()}
    out["device"] = f"nvidia{labels['gpu']}"
    out["DCGM_FI_DRIVER_VERSION"] = driver_version
    return out
