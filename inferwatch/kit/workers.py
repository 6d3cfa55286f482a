"""Daemon threads: a pool for calls that may never return (a hung driver, a dead filesystem), and an
event loop for I/O whose deadlines cancel it.

`concurrent.futures.ThreadPoolExecutor` joins its threads when the interpreter exits, so one
NVML call stuck in the kernel would keep the process alive after SIGTERM. These threads are
daemons: the process exits when the main thread is done, whatever they are stuck in.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
from collections.abc import Callable, Coroutine
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


class LoopThread:
    """An asyncio event loop on its own daemon thread; closing cancels what is left and lets it
    clean up (close its sockets) before the loop closes."""

    def __init__(self, name: str):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self.loop.run_forever()
        # One more turn: coroutines submitted just before the stop become tasks, so they are
        # cancelled and drained below instead of being dropped un-awaited.
        self.loop.run_until_complete(asyncio.sleep(0))
        tasks = asyncio.all_tasks(self.loop)
        for task in tasks:
            task.cancel()
        self.loop.run_until_complete(_drain(tasks))
        self.loop.close()

    def submit(self, coro: Coroutine) -> concurrent.futures.Future:
        try:
            return asyncio.run_coroutine_threadsafe(coro, self.loop)
        except RuntimeError:  # the loop is closed: nothing will ever run the coroutine
            coro.close()
            future: concurrent.futures.Future = concurrent.futures.Future()
            future.cancel()
            return future

    def close(self, timeout: float = 1.0) -> None:
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=timeout)


async def _drain(tasks: set[asyncio.Task]) -> None:
    await asyncio.gather(*tasks, return_exceptions=True)
