"""Counts XID errors from NVML's event API in a background thread.

NVML only reports XIDs that happen while someone is waiting on an event set, so the watcher
must run continuously, not per scrape. Counts are kept per (GPU uuid, XID code) with a cap on
distinct codes per GPU; codes beyond the cap are counted as xid="other".
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

import pynvml as nv

from inferwatch.exporters.gpu.metrics import Sample
from inferwatch.exporters.gpu.nvml import UNSUPPORTED_CODES, text

log = logging.getLogger(__name__)


class XidWatcher:
    def __init__(self, nvml: Any, wait_ms: int = 1000, max_codes_per_gpu: int = 32):
        self.nv = nvml
        self.wait_ms = wait_ms
        self.max_codes = max_codes_per_gpu
        self._counts: dict[str, dict[str, list[float]]] = {}  # uuid -> xid -> [count, last ts]
        self._last_code: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.running = False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="xid-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)  # a daemon: a wait stuck in the driver ends with the process

    def record(self, uuid: str, code: int, when: float | None = None) -> None:
        with self._lock:
            codes = self._counts.setdefault(uuid, {})
            key = str(code)
            if key not in codes and len(codes) >= self.max_codes:
                key = "other"
            entry = codes.setdefault(key, [0.0, 0.0])
            entry[0] += 1
            entry[1] = when if when is not None else time.time()
            self._last_code[uuid] = code

    def samples(self, uuid: str, labels: dict[str, str]) -> list[Sample]:
        with self._lock:
            codes = {k: list(v) for k, v in self._counts.get(uuid, {}).items()}
            last = self._last_code.get(uuid, 0)
        out = [Sample("xid_last_code", labels, float(last))]
        for code, (count, ts) in codes.items():
            out.append(Sample("xid_errors", {**labels, "xid": code}, count))
            out.append(Sample("xid_last_timestamp_seconds", {**labels, "xid": code}, ts))
        return out

    def _run(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            event_set = None
            try:
                event_set = self._register()
                self.running = True
                backoff = 1.0
                self._wait_loop(event_set)
            except nv.NVMLError as exc:
                log.warning("XID watcher: %s; re-registering in %.0f s", exc, backoff)
            finally:
                self.running = False
                if event_set is not None:
                    with contextlib.suppress(nv.NVMLError):
                        self.nv.nvmlEventSetFree(event_set)
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 30.0)

    def _register(self) -> Any:
        event_set = self.nv.nvmlEventSetCreate()
        for index in range(self.nv.nvmlDeviceGetCount()):
            try:
                handle = self.nv.nvmlDeviceGetHandleByIndex(index)
                supported = self.nv.nvmlDeviceGetSupportedEventTypes(handle)
                if supported & nv.nvmlEventTypeXidCriticalError:
                    self.nv.nvmlDeviceRegisterEvents(handle, nv.nvmlEventTypeXidCriticalError, event_set)
            except nv.NVMLError as exc:  # one GPU that cannot register must not stop the others
                if exc.value not in UNSUPPORTED_CODES:
                    log.warning("XID watcher: GPU %d not watched: %s", index, exc)
        return event_set

    def _wait_loop(self, event_set: Any) -> None:
        while not self._stop.is_set():
            try:
                event = self.nv.nvmlEventSetWait(event_set, self.wait_ms)
            except nv.NVMLError_Timeout:
                continue
            if event.eventType & nv.nvmlEventTypeXidCriticalError:
                self.record(text(self.nv.nvmlDeviceGetUUID(event.device)), int(event.eventData))
