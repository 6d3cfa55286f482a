"""A pool of daemon threads for calls that may never return (a hung driver, a dead filesystem).

`concurrent.futures.ThreadPoolExecutor` joins its threads when the interpreter exits, so one
NVML call stuck in the kernel would keep the process alive after SIGTERM. These threads are
daemons: the process exits when the main thread is done, whatever they are stuck in.
"""

from __future__ import annotations

import concurrent.futures
import queue
import threading
from collections.abc import Callable
from typing import Any


class DaemonExecutor:
    def __init__(self, workers: int, name: str):
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True) for i in range(workers)]
        for thread in self._threads:
            thread.start()
        self._closed = False

    def submit(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        if self._closed:
            future.cancel()
            return future
        self._queue.put((future, fn, args))
        return future

    def shutdown(self) -> None:
        """Cancel what has not started; idle threads end, stuck ones are left to the process exit."""
        self._closed = True
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                item[0].cancel()
        for _ in self._threads:
            self._queue.put(None)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            future, fn, args = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # handed to whoever waits on the future
                future.set_exception(exc)
