"""The open-loop sender: requests leave on schedule whether or not earlier ones have finished.

The concurrency cap is a safety valve, not back-pressure: an arrival that finds the cap full is
dropped and counted (`client_overload`), so a slow server never slows the offered load down.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp

from inferwatch.inject.client import Result, Target, send
from inferwatch.inject.faults import OutageHooks, Window
from inferwatch.inject.schedule import Arrival


@dataclass
class Report:
    planned: int = 0
    duration: float = 0.0
    results: list[Result] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)  # dispatch time - scheduled time, seconds
    dropped: int = 0

    @property
    def errors(self) -> Counter[str]:
        errors = Counter(r.error for r in self.results if not r.ok)
        if self.dropped:
            errors["client_overload"] = self.dropped
        return errors

    def summary(self) -> dict:
        ok = [r for r in self.results if r.ok]
        out_tokens = sum(r.output_tokens for r in ok)

        def pct(values: list[float]) -> dict[str, float | None]:
            return {f"p{q}": percentile(values, q) for q in (50, 90, 99)}

        return {
            "requests_planned": self.planned,
            "requests_ok": len(ok),
            "errors": dict(self.errors),
            "duration_seconds": self.duration,
            "throughput_requests_per_second": len(ok) / self.duration if self.duration else 0.0,
            "throughput_output_tokens_per_second": out_tokens / self.duration if self.duration else 0.0,
            "ttft_seconds": pct([r.ttft for r in ok if r.ttft is not None]),
            "tpot_seconds": pct([r.tpot for r in ok if r.tpot is not None]),
            "e2e_seconds": pct([r.e2e for r in ok if r.e2e is not None]),
            "schedule_lag_seconds": pct(self.lags),
        }


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[rank]


class Progress:
    """One status line on stderr, redrawn twice a second (only on a terminal)."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.enabled = total, enabled and sys.stderr.isatty()
        self._last = 0.0

    def update(self, sent: int, done: int, errors: int, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self._last < 0.5):
            return
        self._last = now
        width = 30
        filled = int(width * done / self.total) if self.total else width
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} done, "
                         f"{sent - done} in flight, {errors} errors ")
        if force:
            sys.stderr.write("\n")
        sys.stderr.flush()


async def run(arrivals: list[Arrival], target: Target, concurrency: int = 256, progress: bool = True,
              outage: tuple[Window, OutageHooks] | None = None) -> Report:
    report = Report(planned=len(arrivals))
    bar = Progress(len(arrivals), progress)
    loop = asyncio.get_running_loop()
    inflight: set[asyncio.Task] = set()
    errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)

    async def one(arrival: Arrival) -> None:
        nonlocal errors
        result = await send(session, target, arrival)
        report.results.append(result)
        errors += not result.ok

    async with aiohttp.ClientSession(connector=connector) as session:
        start = loop.time() + 0.05
        if outage:
            window, hooks = outage
            loop.call_at(start + window.start, lambda: loop.run_in_executor(None, hooks.stop))
            loop.call_at(start + window.end, lambda: loop.run_in_executor(None, hooks.start))
        for arrival in arrivals:
            due = start + arrival.at
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            report.lags.append(max(0.0, loop.time() - due))
            if len(inflight) >= concurrency:
                report.dropped += 1
                continue
            task = asyncio.create_task(one(arrival))
            inflight.add(task)
            task.add_done_callback(inflight.discard)
            bar.update(len(report.lags), len(report.results), errors)
        while inflight:
            await asyncio.wait(set(inflight), timeout=0.5)
            bar.update(len(report.lags), len(report.results), errors)
        report.duration = loop.time() - start
    bar.update(len(report.lags), len(report.results), errors, force=True)
    return report


def format_report(summary: dict) -> str:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value * 1000:.1f}"

    lines = [
        f"requests: {summary['requests_ok']} ok of {summary['requests_planned']} planned "
        f"in {summary['duration_seconds']:.1f} s",
        f"throughput: {summary['throughput_requests_per_second']:.2f} req/s, "
        f"{summary['throughput_output_tokens_per_second']:.1f} output tokens/s",
        "errors: " + (", ".join(f"{k}={v}" for k, v in sorted(summary["errors"].items())) or "none"),
        f"{'(ms)':14} {'p50':>9} {'p90':>9} {'p99':>9}",
    ]
    for key, label in (("ttft_seconds", "TTFT"), ("tpot_seconds", "TPOT"), ("e2e_seconds", "e2e"),
                       ("schedule_lag_seconds", "schedule lag")):
        row = summary[key]
        lines.append(f"{label:14} {ms(row['p50']):>9} {ms(row['p90']):>9} {ms(row['p99']):>9}")
    return "\n".join(lines)
