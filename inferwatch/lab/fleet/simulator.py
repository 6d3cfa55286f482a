"""A discrete-event model of N vLLM replicas behind a round-robin router, cheap enough for a week of traffic.

Per request, on the replica the router picks:

- **Continuous batching up to max_num_seqs.** A request takes a batch slot at arrival, or when the earliest
  running request finishes if all slots are taken (FIFO).
- **Prefill** runs on the replica's one prefill lane in arrival order (vLLM schedules waiting requests first
  come, first served); it lasts `curve.prefill_seconds(prompt, n)` with n sequences in the batch. TTFT = the
  end of prefill - arrival: the queueing in front of the lane is what overload looks like.
- **Decode** then takes `output - 1` steps of `curve.step_seconds(n)`. n is frozen at admission (the
  approximation that makes this cheap: a request does not slow down when others join later).

Replicas are created `starting` and serve nothing until `startup_seconds` have passed; a removed replica
leaves the router at once and is paid for until its last request finishes (graceful drain). Requests that
arrive while no replica is ready wait at the router and are dispatched when one becomes ready.

The controller runs on tick boundaries; observations are what Prometheus would scrape at that instant
(waiting, running, KV tokens, ready/total replicas) plus per-tick counters (arrivals, completions by finish
time, TTFT events and SLO misses by first-token time), so nothing a controller sees comes from the future.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from inferwatch.lab.fleet.calibration import Curve
from inferwatch.lab.fleet.demand import Demand

TTFT_BIN = 0.01  # seconds per TTFT histogram bin
TTFT_BINS = 12_000


class Replica:
    __slots__ = ("drain_end", "heap", "prefill_free", "ready_at", "starts", "tokens")

    def __init__(self, ready_at: float) -> None:
        self.ready_at = ready_at
        self.heap: list[tuple[float, int]] = []  # (finish time, tokens held) per request in the replica
        self.tokens = 0
        self.prefill_free = 0.0
        self.starts: deque[float] = deque()  # prefill start times not yet reached (FIFO, non-decreasing)
        self.drain_end: float | None = None

    def settle(self, now: float) -> None:
        """Forget requests finished and prefills started by `now`."""
        heap = self.heap
        while heap and heap[0][0] <= now:
            self.tokens -= heapq.heappop(heap)[1]
        starts = self.starts
        while starts and starts[0] <= now:
            starts.popleft()

    def last_finish(self) -> float:
        return max([f for f, _ in self.heap], default=0.0)


@dataclass
class Observation:
    """What a controller may read at tick k (arrays are per tick; only indices < k are complete)."""

    tick: float
    start: float
    curve: Curve
    arrivals: list[int]
    completions: list[int]
    ttft_events: list[int]
    ttft_misses: list[int]
    waiting: list[float]  # fleet sum, scraped at the start of each tick
    running: list[float]
    kv_usage: list[float]  # mean over ready replicas, 0..1
    ready: list[int]
    total: list[int]

    def time(self, k: int) -> float:
        return self.start + k * self.tick


@dataclass
class Result:
    controller: str
    startup_seconds: float
    requests: int
    good: int
    replica_seconds: float
    ttft_hist: np.ndarray
    scale_events: int
    obs: Observation
    peak_replicas: int
    extra: dict = field(default_factory=dict)

    @property
    def attainment(self) -> float:
        return self.good / self.requests if self.requests else 1.0

    @property
    def replica_hours(self) -> float:
        return self.replica_seconds / 3600.0

    def ttft_quantile(self, q: float) -> float:
        cum = np.cumsum(self.ttft_hist)
        if not cum.size or cum[-1] == 0:
            return 0.0
        return float(np.searchsorted(cum, q * cum[-1]) + 1) * TTFT_BIN


Controller = Callable[[int, float, Observation, "Fleet"], int | None]


class Fleet:
    """Replicas and the router. `scale_to(n, now)` is the actuator a controller's decision goes through."""

    def __init__(self, curve: Curve, startup_seconds: float, initial: int, now: float) -> None:
        self.curve, self.startup = curve, startup_seconds
        self.ready: list[Replica] = [Replica(now) for _ in range(initial)]
        self.starting: list[Replica] = []
        self.draining: list[Replica] = []
        self.scale_events = 0

    @property
    def total(self) -> int:
        return len(self.ready) + len(self.starting)

    def scale_to(self, n: int, now: float) -> None:
        n = max(0, int(n))
        if n == self.total:
            return
        self.scale_events += 1
        while self.total < n:
            self.starting.append(Replica(now + self.startup))
        while self.total > n and self.starting:
            self.starting.pop()  # Kubernetes removes not-ready pods first, newest first
        while self.total > n:
            for r in self.ready:
                r.settle(now)
            victim = min(self.ready, key=lambda r: len(r.heap))
            self.ready.remove(victim)
            victim.drain_end = max(now, victim.last_finish(), victim.prefill_free)
            self.draining.append(victim)

    def promote(self, now: float) -> None:
        """Starting replicas whose start-up is over begin serving."""
        if self.starting and any(r.ready_at <= now for r in self.starting):
            self.ready += [r for r in self.starting if r.ready_at <= now]
            self.starting = [r for r in self.starting if r.ready_at > now]

    def paid_seconds(self, start: float, end: float) -> float:
        """Replica-seconds over [start, end): every starting, ready and draining replica."""
        out = (end - start) * self.total
        keep = []
        for r in self.draining:
            out += max(0.0, min(end, r.drain_end) - start)
            if r.drain_end > end:
                keep.append(r)
        self.draining = keep
        return out


def simulate(demand: Demand, controller: Controller, curve: Curve, startup_seconds: float, start: float,
             end: float, ttft_slo: float, initial: int, tick: float = 15.0, name: str = "") -> Result:
    """Replays demand.times in [start, end) through a fleet the controller sizes at every tick."""
    times, prompts, outputs = demand.slice(start, end)
    times_l, prompts_l, outputs_l = times.tolist(), prompts.tolist(), outputs.tolist()
    nticks = math.ceil((end - start) / tick)
    slack = nticks + int(3600 / tick) + 2  # completions after the end land in the slack
    obs = Observation(tick, start, curve, [0] * slack, [0] * slack, [0] * slack, [0] * slack,
                      [0.0] * nticks, [0.0] * nticks, [0.0] * nticks, [0] * nticks, [0] * nticks)
    fleet = Fleet(curve, startup_seconds, initial, start)
    hist = [0] * TTFT_BINS
    a, b = curve.step_base_seconds, curve.step_per_seq_seconds
    inv_prefill, slow = 1.0 / curve.prefill_tokens_per_second, curve.prefill_slowdown_per_seq
    max_seqs, inv_tick, last_bin = curve.max_num_seqs, 1.0 / tick, slack - 1
    arrivals, completions, events, misses = obs.arrivals, obs.completions, obs.ttft_events, obs.ttft_misses
    pending: list[int] = []  # indices of requests waiting at the router for a ready replica
    good, rr, i, n_req = 0, 0, 0, len(times_l)
    paid, peak = 0.0, fleet.total

    def serve(j: int, replica: Replica, dispatched: float = 0.0) -> None:
        nonlocal good
        t, p, g = times_l[j], prompts_l[j], outputs_l[j]
        admit = t if t > dispatched else dispatched  # held at the router until `dispatched`
        heap = replica.heap
        while heap and heap[0][0] <= admit:
            replica.tokens -= heapq.heappop(heap)[1]
        if len(heap) >= max_seqs:
            finish, held = heapq.heappop(heap)
            replica.tokens -= held
            admit = max(admit, finish)
        n = len(heap) + 1
        begin = admit if admit > replica.prefill_free else replica.prefill_free
        first = begin + p * (1.0 + slow * n) * inv_prefill
        replica.prefill_free = first
        finish = first + (g - 1) * (a + b * n)
        heapq.heappush(heap, (finish, p + g))
        replica.tokens += p + g
        replica.starts.append(begin)
        ttft = first - t
        ft = min(int((first - start) * inv_tick), last_bin)
        events[ft] += 1
        if ttft <= ttft_slo:
            good += 1
        else:
            misses[ft] += 1
        hist[min(int(ttft / TTFT_BIN), TTFT_BINS - 1)] += 1
        completions[min(int((finish - start) * inv_tick), last_bin)] += 1

    for k in range(nticks):
        now = start + k * tick
        fleet.promote(now)
        ready = fleet.ready
        if pending and ready:
            for j in pending:
                serve(j, ready[rr % len(ready)], now)
                rr += 1
            pending = []
        waiting = running = kv = 0.0
        for r in ready:
            r.settle(now)
            w = len(r.starts)
            waiting += w
            running += len(r.heap) - w
            kv += min(1.0, r.tokens / curve.kv_cache_tokens)
        obs.waiting[k], obs.running[k] = waiting, running
        obs.kv_usage[k] = kv / len(ready) if ready else 0.0
        obs.ready[k], obs.total[k] = len(ready), fleet.total
        target = controller(k, now, obs, fleet)
        if target is not None:
            fleet.scale_to(target, now)
            peak = max(peak, fleet.total)
            ready = fleet.ready
        tick_end = now + tick
        j0 = i
        while i < n_req and times_l[i] < tick_end:
            i += 1
        arrivals[k] = i - j0
        nready = len(ready)
        if nready:
            for j in range(j0, i):
                serve(j, ready[rr % nready])
                rr += 1
        else:
            pending.extend(range(j0, i))
        paid += fleet.paid_seconds(now, tick_end)
    hist[-1] += len(pending)  # never served within the run: SLO misses
    misses[last_bin] += len(pending)
    return Result(name, startup_seconds, n_req, good, paid, np.array(hist), fleet.scale_events, obs, peak)
