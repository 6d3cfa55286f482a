"""Steady open-loop traffic for one model, whose rate a drill can change while it runs."""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter

from inferwatch.inject.schedule import Arrival


class Load:
    """Poisson arrivals at `rate` requests/s on a background event loop until `stop()`."""

    def __init__(self, base_url: str, model: str, rate: float, prompt_tokens: int = 32, output_tokens: int = 32,
                 seed: int = 0) -> None:
        self.base_url, self.model, self.rate = base_url, model, rate
        self.prompt_tokens, self.output_tokens = prompt_tokens, output_tokens
        self.results: Counter[str] = Counter()  # "ok" or the client's error kind
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True, name=f"load-{model}")

    def start(self) -> Load:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    async def _run(self) -> None:
        import aiohttp

        from inferwatch.inject.client import Target, send

        target = Target(self.base_url, self.model, timeout=60)
        pending: set[asyncio.Task] = set()
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
            while not self._stop.is_set():
                await asyncio.sleep(self._rng.expovariate(self.rate))
                arrival = Arrival(0.0, self.prompt_tokens, self.output_tokens)
                task = asyncio.ensure_future(send(session, target, arrival))
                pending.add(task)
                task.add_done_callback(self._done(pending))
            if pending:
                await asyncio.wait(pending, timeout=30)

    def _done(self, pending: set[asyncio.Task]):
        def done(task: asyncio.Task) -> None:
            pending.discard(task)
            if not task.cancelled() and task.exception() is None:
                result = task.result()
                self.results["ok" if result.ok else result.error] += 1
        return done
