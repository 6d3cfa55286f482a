"""An adversarial synthetic vLLM fleet: 15 days of raw Prometheus series at 1-minute resolution,
with labelled incidents, for backtesting alert rules (`inferwatch rules backtest`).

Every feature is here because real alert rules get it wrong:

- three models of different scale; the small one's nights are so quiet (0.1 req/s) that a 5-minute
  p95 is Poisson noise;
- a daily and a weekly cycle with slow day-to-day drift; the data starts on a Thursday, so the first
  Monday comes after a quiet Sunday and before a week of history exists;
- latency from a queue: TTFT = prefill time + an M/M/1 admission wait (mean `S * rho / (1 - rho)`),
  so load alone moves the p95, sharply near saturation; ITL grows mildly with the batch (KV use);
- unusual but legitimate peaks (+30% for an hour, a Saturday spike), counter resets on restarts, a
  Prometheus-side gap where every series (`up` too) has no samples, and single failed scrapes;
- the labelled incidents of `INCIDENTS`, mostly on the last two days (0-based days 13-14).

Pure code: `plan()` is the schedule (what happens when), `generate()` turns it into a `History`
plus the labelled `Incident`s, `write(dir)` is the only I/O. Deterministic per seed (string seeds
through `random.Random`, so `PYTHONHASHSEED` does not matter). Histograms are sampled per minute as
a multinomial (sequential binomials) over the latency CDF at vLLM's real bucket bounds, so bucket
counts, `_count` and `_sum` agree.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from statistics import NormalDist

import yaml

from inferwatch.backtest.history import History, series_key
from inferwatch.backtest.score import Incident

# vLLM's bucket bounds (vllm/v1/metrics/loggers.py), rendered as vLLM renders them (str(float)).
TTFT_BOUNDS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
               40.0, 80.0, 160.0, 640.0, 2560.0)
ITL_BOUNDS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0,
              80.0)

START = datetime(2026, 3, 5, tzinfo=UTC).timestamp()  # a Thursday, 00:00 UTC
DAY = 86400
MINUTE = 60
PEAK_RHO = 0.55  # per-replica utilisation at the usual weekday peak
TRAFFIC_PEAK_FACTOR = 1.6  # the traffic_peak incident: this times the usual weekday peak
TTFT_SLA, ITL_SLA = 2.0, 0.2  # the shipped default SLAs (p95), which the normal fleet stays well under
JOB = "vllm"
REASONS = ("stop", "length", "abort", "error")
LENGTH_RATIO = 0.08  # share of requests that stop at max_tokens
ERROR_RATIO = 0.0005
RHO_CAP = 0.985  # the queue formula diverges at 1; a replica past this is simply very slow


@dataclass(frozen=True)
class Model:
    """One served model. Capacity follows from the peak: `peak_rate / replicas / PEAK_RHO` per replica."""

    name: str
    replicas: int
    peak_rate: float  # req/s of the whole model at the usual weekday peak
    night_ratio: float  # night rate / peak rate
    prefill_median: float  # seconds: TTFT without queueing (lognormal median)
    prefill_sigma: float
    queue_service: float  # seconds: M/M/1 service time of the admission queue (wait mean S*rho/(1-rho))
    itl_median: float  # seconds per output token at an empty batch
    prompt_tokens: int  # mean per request
    output_tokens: int  # mean per request
    abort_ratio: float  # share of requests the client aborts, at low load (rises a little with load)
    kv_slots: int  # concurrent requests that fill one replica's KV cache

    @property
    def capacity(self) -> float:
        """Requests/s one replica serves at rho = 1."""
        return self.peak_rate / self.replicas / PEAK_RHO

    def instances(self) -> list[str]:
        return [f"{self.name}-{i}:8000" for i in range(self.replicas)]


MODELS = (
    Model("llama-70b", 3, 20.0, 0.08, 0.22, 0.45, 0.030, 0.030, 900, 220, 0.010, 160),
    Model("qwen-14b", 2, 8.0, 0.10, 0.12, 0.45, 0.035, 0.018, 600, 160, 0.015, 48),
    Model("phi-mini", 1, 1.2, 0.10, 0.07, 0.50, 0.025, 0.012, 400, 120, 0.012, 24),
)
BIG, MEDIUM, SMALL = (m.name for m in MODELS)

LATENCY = "LLM(TimeToFirstToken|InterTokenLatency)AboveBaseline"
# (kind, model, day from the end (-2 = the day before last), start "HH:MM", minutes, replica, expect, forbid)
INCIDENTS: tuple[tuple[str, str, int, str, int, int | None, str, str | None], ...] = (
    ("error_burst", MEDIUM, -2, "10:00", 15, None, "LLMErrorRatioAnomalous", None),
    ("target_down", BIG, -2, "10:30", 20, 1, "LLMEngineTargetDown", None),
    ("itl_regression", SMALL, -2, "11:00", 90, None, "LLMInterTokenLatencyAboveBaseline", None),
    ("kv_saturation", MEDIUM, -2, "13:00", 30, None, "LLMKVCacheSaturat.*", None),
    ("traffic_peak", BIG, -2, "14:00", 75, None, "LLMCapacityExceeded", LATENCY),
    ("ttft_regression", BIG, -1, "09:30", 90, None, "LLMTimeToFirstTokenAboveBaseline", None),
    ("engine_restart", BIG, -1, "13:30", 3, 2, "LLMEngineRestarted|LLMEngineTargetDown", None),
    ("sla_breach", BIG, -1, "16:00", 30, None, "LLMTimeToFirstTokenSLABreach", None),
    ("abort_burst", SMALL, -1, "14:00", 15, None, "LLMErrorRatioAnomalous", None),
    ("series_absent", SMALL, -1, "20:00", 0, None, "LLMModelSeriesAbsent", None),  # 0 = to the end
)
SLA_BREACH_FACTOR = 3.0  # sla_breach: TTFT times this (at a time of day where that is above the SLA)
ERROR_BURST_RATIO, ABORT_BURST_RATIO = 0.05, 0.25
# A rolling deploy at night restarts the big model's replicas one by one (counters reset, one missed
# scrape each): labelled, because it is a restart, and nothing but restart alerts may fire for it.
DEPLOY = (8, "02:00", 6)  # day, first restart, minutes between replicas
DEPLOY_FORBID = "LLM(TimeToFirstToken|InterTokenLatency)(AboveBaseline|SLABreach)|LLMErrorRatioAnomalous"
# Legitimate, unlabelled traffic peaks: (model, day, start, minutes, load factor).
LEGIT_PEAKS = (
    (BIG, 5, "15:00", 60, 1.3),  # a Tuesday afternoon
    (MEDIUM, 9, "11:00", 40, 1.8),  # a Saturday spike
    (SMALL, 8, "13:00", 60, 1.3),  # a Friday lunchtime
)
# Prometheus-side gaps (every series, `up` too): (day, start, minutes); the second is on a Monday peak.
PROMETHEUS_GAPS = ((6, "03:12", 5), (11, "15:40", 7))
FAILED_SCRAPES_PER_WEEK = 4


@dataclass(frozen=True)
class Window:
    start: float  # unix seconds, inclusive
    end: float  # unix seconds, exclusive

    def steps(self, start: float, step: float) -> range:
        return range(max(0, math.ceil((self.start - start) / step)), max(0, math.ceil((self.end - start) / step)))


@dataclass(frozen=True)
class Event:
    """Something the generator does to the fleet: an incident's cause or a piece of normal life."""

    kind: str
    model: str
    window: Window
    replica: int | None = None  # None: every replica of the model
    factor: float = 1.0


@dataclass
class Plan:
    """What happens when. `incidents` are the labels; `events` all that the generator does."""

    days: int
    seed: int
    start: float
    step: float
    incidents: list[Incident] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    @property
    def end(self) -> float:
        return self.start + self.days * DAY

    def of(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.kind == kind]


def _at(start: float, day: int, hhmm: str) -> float:
    hours, minutes = (int(x) for x in hhmm.split(":"))
    return start + day * DAY + hours * 3600 + minutes * 60


def plan(days: int = 15, seed: int = 15, start: float = START, step: float = 60) -> Plan:
    """The schedule for `days` days: incidents on the last two days, normal-life events before them.

    Normal-life events that would fall on the incident days (or past the end) are left out, so a
    short run (tests use 2-3 days) keeps every incident and stays scoreable.
    """
    if days < 2:
        raise ValueError("days must be >= 2 (the incidents take the last two days)")
    result = Plan(days, seed, start, step)
    end = start + days * DAY
    last_normal_day = days - 3  # the last day without incidents
    for kind, model, from_end, hhmm, minutes, replica, expect, forbid in INCIDENTS:
        t0 = _at(start, days + from_end, hhmm)
        t1 = t0 + minutes * MINUTE if minutes else end
        factor = {"sla_breach": SLA_BREACH_FACTOR, "ttft_regression": 1.5, "itl_regression": 1.5,
                  "error_burst": ERROR_BURST_RATIO, "abort_burst": ABORT_BURST_RATIO,
                  "traffic_peak": TRAFFIC_PEAK_FACTOR}.get(kind, 1.0)
        result.events.append(Event(kind, model, Window(t0, t1), replica, factor))
        labelled_end = min(t1, end - step)  # "to the end" ends at the last sample
        result.incidents.append(Incident(model=model, kind=kind, start=t0, end=labelled_end, expect=expect,
                                         forbid=forbid))
    day, hhmm, gap = DEPLOY
    if day <= last_normal_day:
        t0 = _at(start, day, hhmm)
        for replica in range(MODELS[0].replicas):
            at = t0 + replica * gap * MINUTE
            result.events.append(Event("restart", BIG, Window(at, at + MINUTE), replica))
        t1 = t0 + MODELS[0].replicas * gap * MINUTE
        result.incidents.append(Incident(model=BIG, kind="engine_restart", start=t0, end=t1,
                                         expect="LLMEngineRestarted|LLMEngineTargetDown", forbid=DEPLOY_FORBID))
    for model, day, hhmm, minutes, factor in LEGIT_PEAKS:
        if day <= last_normal_day:
            t0 = _at(start, day, hhmm)
            result.events.append(Event("legit_peak", model, Window(t0, t0 + minutes * MINUTE), None, factor))
    gaps = [g for g in PROMETHEUS_GAPS if g[0] <= last_normal_day] or [(0, "03:12", 5)]
    for day, hhmm, minutes in gaps:
        t0 = _at(start, day, hhmm)
        result.events.append(Event("prometheus_gap", "*", Window(t0, t0 + minutes * MINUTE)))
    _add_failed_scrapes(result, random.Random(f"{seed}:failed-scrapes"))
    result.incidents.sort(key=lambda i: i.start)
    return result


def _add_failed_scrapes(result: Plan, rng: random.Random) -> None:
    """Single failed scrapes at random minutes, away from incidents and gaps (they are not incidents)."""
    busy = [e.window for e in result.events]
    count = max(1, round(result.days * FAILED_SCRAPES_PER_WEEK / 7))
    replicas = [(m.name, r) for m in MODELS for r in range(m.replicas)]
    while count:
        at = result.start + rng.randrange(60, result.days * DAY // MINUTE - 60) * MINUTE
        if any(w.start - 3600 <= at < w.end + 3600 for w in busy):
            continue
        model, replica = rng.choice(replicas)
        window = Window(at, at + MINUTE)
        result.events.append(Event("failed_scrape", model, window, replica))
        busy.append(window)
        count -= 1


# -- sampling -------------------------------------------------------------------------------------

def poisson(rng: random.Random, lam: float) -> int:
    """Knuth below 30, a rounded normal above (exact enough for per-minute counts)."""
    if lam <= 0:
        return 0
    if lam < 30:
        limit, k, p = math.exp(-lam), 0, rng.random()
        while p > limit:
            k += 1
            p *= rng.random()
        return k
    return max(0, round(rng.gauss(lam, math.sqrt(lam))))


def binomial(rng: random.Random, n: int, p: float) -> int:
    """Exact (geometric waiting times) when the rarer outcome is expected < 15 times, else a rounded normal."""
    if n <= 0 or p <= 0.0:
        return 0
    if p >= 1.0:
        return n
    flip = p > 0.5
    q = 1.0 - p if flip else p
    mean = n * q
    if mean < 15:
        log_q, k, position = math.log1p(-q), 0, 0
        while True:
            position += int(math.log(1.0 - rng.random()) / log_q) + 1
            if position > n:
                break
            k += 1
    else:
        k = min(n, max(0, round(rng.gauss(mean, math.sqrt(mean * (1.0 - q))))))
    return n - k if flip else k


def bucket_counts(rng: random.Random, n: int, cdf: Sequence[float]) -> list[int]:
    """Cumulative counts at each bound of `n` observations drawn from `cdf` (a multinomial).

    Buckets expected to get under 1e-6 observations get none, and a bucket holding all but 1e-9
    of what is left gets all of it, without a draw (those are most buckets, so this is the speed).
    """
    out: list[int] = []
    cumulative, remaining, previous = 0, n, 0.0
    for c in cdf:
        if remaining:
            rest = 1.0 - previous
            share = (c - previous) / rest if rest > 1e-12 else 1.0
            if share >= 1.0 - 1e-9:
                take = remaining
            elif share * remaining < 1e-6:
                take = 0
            else:
                take = binomial(rng, remaining, share)
            cumulative += take
            remaining -= take
        previous = c
        out.append(cumulative)
    return out


_NORMAL = NormalDist()
_QUADRATURE = tuple(_NORMAL.inv_cdf((i + 0.5) / 64) for i in range(64))
LONG_PROMPT_SHARE, LONG_PROMPT_FACTOR = 0.04, 3.0  # a tail of long prompts: prefill x3
ITL_SIGMA, STALL_SHARE, STALL_FACTOR = 0.30, 0.03, 4.0  # decode steps stalled behind a chunked prefill


def _lognormal_cdf(x: float, median: float, sigma: float) -> float:
    return 0.5 * (1.0 + math.erf(math.log(x / median) / (sigma * math.sqrt(2.0))))


@functools.lru_cache(maxsize=256)
def _prefill(model: Model, factor: float) -> tuple[tuple[tuple[float, float], ...], tuple[float, ...], float]:
    """The prefill-time mixture: sorted (weight, seconds) quadrature points, the exact CDF at the bounds, the mean."""
    median, sigma = model.prefill_median * factor, model.prefill_sigma
    components = ((1 - LONG_PROMPT_SHARE, median), (LONG_PROMPT_SHARE, median * LONG_PROMPT_FACTOR))
    points = sorted((med * math.exp(sigma * z), share / len(_QUADRATURE)) for share, med in components
                    for z in _QUADRATURE)
    cdf = tuple(sum(share * _lognormal_cdf(x, med, sigma) for share, med in components) for x in TTFT_BOUNDS)
    mean = sum(share * med for share, med in components) * math.exp(sigma * sigma / 2)
    return tuple((w, p) for p, w in points), cdf, mean


@functools.lru_cache(maxsize=8192)
def ttft_distribution(model: Model, rho: float, factor: float = 1.0) -> tuple[tuple[float, ...], float]:
    """(CDF at TTFT_BOUNDS, mean) of TTFT = prefill (lognormal, with a long-prompt tail) + queue wait.

    The wait is M/M/1's: with probability rho a request waits, Exp with mean S / (1 - rho). The
    no-wait part is exact; the wait part is integrated over 64 quantiles of the prefill time,
    in one pass over the sorted points (every exponent <= 0, so nothing overflows).
    `factor` scales the whole distribution (a slower engine: prefill and queue service both).
    """
    rho = min(max(rho, 0.0), RHO_CAP)
    points, no_wait, prefill_mean = _prefill(model, factor)
    wait_mean = model.queue_service * factor / (1.0 - rho)
    cdf, below, decayed, previous, k = [], 0.0, 0.0, 0.0, 0
    for x, plain in zip(TTFT_BOUNDS, no_wait, strict=True):
        decayed *= math.exp(-(x - previous) / wait_mean)  # sum over points below x of w * exp(-(x - p) / m)
        while k < len(points) and points[k][1] < x:
            weight, prefill = points[k]
            below += weight
            decayed += weight * math.exp(-(x - prefill) / wait_mean)
            k += 1
        cdf.append((1.0 - rho) * plain + rho * (below - decayed))
        previous = x
    return tuple(cdf), prefill_mean + rho * wait_mean


@functools.lru_cache(maxsize=8192)
def itl_distribution(median: float) -> tuple[tuple[float, ...], float]:
    """(CDF at ITL_BOUNDS, mean) of one decode step: lognormal, with a few steps stalled by a prefill."""
    components = ((1 - STALL_SHARE, median, ITL_SIGMA), (STALL_SHARE, median * STALL_FACTOR, 0.5))
    cdf = tuple(sum(share * _lognormal_cdf(x, med, s) for share, med, s in components) for x in ITL_BOUNDS)
    mean = sum(share * med * math.exp(s * s / 2) for share, med, s in components)
    return cdf, mean


def bucket_quantile(q: float, bounds: Sequence[float], cumulative: Sequence[float]) -> float:
    """Prometheus' histogram_quantile on classic buckets (linear within the bucket; +Inf = total)."""
    total = cumulative[-1] if len(cumulative) > len(bounds) else None
    if total is None:
        raise ValueError("cumulative must include the +Inf bucket")
    if total <= 0:
        return math.nan
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in zip(bounds, cumulative, strict=False):
        if count >= rank:
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return bounds[-1]


# -- traffic --------------------------------------------------------------------------------------

def _daily_shape(hour: float) -> float:
    """0 at night, 1 at the afternoon peak: business hours with a mid-afternoon bump."""
    rise = 1.0 / (1.0 + math.exp(-(hour - 8.5) / 1.1))
    fall = 1.0 / (1.0 + math.exp(-(21.0 - hour) / 1.4))
    return rise * fall * (1.0 + 0.08 * math.exp(-(((hour - 15.0) / 2.5) ** 2)))


_SHAPE_PEAK = max(_daily_shape(h / 60) for h in range(24 * 60))
WEEKEND_LEVEL = {5: 0.55, 6: 0.48}  # Saturday, Sunday: peak level relative to a weekday


def usual_rate(model: Model, t: float) -> float:
    """The model's expected request rate at time t, before day-to-day drift and noise."""
    moment = datetime.fromtimestamp(t, UTC)
    hour = moment.hour + moment.minute / 60 + moment.second / 3600
    level = WEEKEND_LEVEL.get(moment.weekday(), 1.0)
    shape = _daily_shape(hour) / _SHAPE_PEAK
    return model.peak_rate * (model.night_ratio + (1.0 - model.night_ratio) * level * shape)


def _rates(model: Model, result: Plan, steps: int) -> list[float]:
    """Per-step request rate of the model: usual rate x daily drift x AR(1) noise x events."""
    rng = random.Random(f"{result.seed}:rate:{model.name}")
    day_factor = [math.exp(rng.gauss(0.0, 0.04)) for _ in range(result.days + 1)]
    noise, rates = 0.0, []
    alpha = math.exp(-result.step / 2400)  # ~40-minute correlation
    for i in range(steps):
        t = result.start + i * result.step
        noise = alpha * noise + math.sqrt(1 - alpha * alpha) * rng.gauss(0.0, 0.03)
        rates.append(usual_rate(model, t) * day_factor[int((t - result.start) // DAY)] * math.exp(noise))
    for event in result.events:
        if event.model != model.name:
            continue
        if event.kind == "legit_peak":
            for i, weight in _ramped(event.window, result, ramp=5 * MINUTE):
                rates[i] *= 1.0 + (event.factor - 1.0) * weight
        elif event.kind == "traffic_peak":
            target = event.factor * model.peak_rate
            for i, weight in _ramped(event.window, result, ramp=5 * MINUTE):
                jitter = math.exp(rng.gauss(0.0, 0.01))
                rates[i] = (1 - weight) * rates[i] + weight * target * jitter
    return rates


def _ramped(window: Window, result: Plan, ramp: float) -> list[tuple[int, float]]:
    """(step, weight) over the window, the weight ramping 0 -> 1 -> 0 over `ramp` seconds at each end."""
    out = []
    for i in window.steps(result.start, result.step):
        t = result.start + i * result.step
        weight = min(1.0, (t - window.start + result.step) / ramp, (window.end - t) / ramp)
        out.append((i, max(0.0, weight)))
    return out


# -- the fleet ------------------------------------------------------------------------------------

UP, SCRAPE_FAILED, DOWN, GONE = 0, 1, 2, 3  # replica state per step


@dataclass
class _Effects:
    """Per-step multipliers and overrides of one model, built from the plan's events."""

    ttft: list[float]
    itl: list[float]
    error: list[float | None]
    abort: list[float | None]
    kv_phase: list[float]  # 0..1: how far into a KV-cache saturation
    kv_elapsed: list[float]  # 0..1: share of the saturation window elapsed


def _effects(model: Model, result: Plan, steps: int) -> _Effects:
    fx = _Effects([1.0] * steps, [1.0] * steps, [None] * steps, [None] * steps, [0.0] * steps, [0.0] * steps)
    for event in result.events:
        if event.model != model.name:
            continue
        span = event.window.steps(result.start, result.step)
        for i in span:
            if i >= steps:
                break
            if event.kind in ("ttft_regression", "sla_breach"):
                fx.ttft[i] = event.factor
            elif event.kind == "itl_regression":
                fx.itl[i] = event.factor
            elif event.kind == "error_burst":
                fx.error[i] = event.factor
            elif event.kind == "abort_burst":
                fx.abort[i] = event.factor
            elif event.kind == "kv_saturation":  # full within 3 minutes, then the queue keeps growing
                fx.kv_phase[i] = min(1.0, (i - span.start + 1) * result.step / (3 * MINUTE))
                fx.kv_elapsed[i] = (i - span.start) / len(span)
    return fx


def _states(model: Model, result: Plan, steps: int) -> list[list[int]]:
    """Per replica, per step: UP, SCRAPE_FAILED (serving, not scraped), DOWN (not serving), GONE (removed)."""
    states = [[UP] * steps for _ in range(model.replicas)]
    for event in result.events:
        if event.model != model.name:
            continue
        state = {"target_down": SCRAPE_FAILED, "engine_restart": DOWN, "restart": DOWN, "failed_scrape": SCRAPE_FAILED,
                 "series_absent": GONE}.get(event.kind)
        if state is None:
            continue
        replicas = range(model.replicas) if event.replica is None else [event.replica]
        for r in replicas:
            for i in event.window.steps(result.start, result.step):
                if i < steps:
                    states[r][i] = state
    return states


class _Replica:
    """One vLLM replica's cumulative counters and its series (one list per series, None = no sample)."""

    def __init__(self, model: Model, index: int, steps: int, rng: random.Random, started: float):
        self.model, self.rng = model, rng
        self.instance = f"{model.name}-{index}:8000"
        self.process_start = started
        labels = {"engine": "0", "instance": self.instance, "job": JOB, "model_name": model.name}
        target = {"instance": self.instance, "job": JOB}

        def key(name: str, **extra: str) -> str:
            return series_key(name, {**labels, **extra})

        ttft, itl = "vllm:time_to_first_token_seconds", "vllm:inter_token_latency_seconds"
        names = ([key(f"{ttft}_bucket", le=str(b)) for b in (*TTFT_BOUNDS, "+Inf")]
                 + [key(f"{ttft}_{s}") for s in ("sum", "count")]
                 + [key(f"{itl}_bucket", le=str(b)) for b in (*ITL_BOUNDS, "+Inf")]
                 + [key(f"{itl}_{s}") for s in ("sum", "count")]
                 + [key("vllm:request_success_total", finished_reason=r) for r in REASONS]
                 + [key(f"vllm:{n}") for n in ("prompt_tokens_total", "generation_tokens_total",
                                               "num_preemptions_total", "num_requests_running",
                                               "num_requests_waiting", "kv_cache_usage_perc")]
                 + [series_key("process_start_time_seconds", target), series_key("up", target)])
        self.names = names
        self.columns: list[list[float | None]] = [[None] * steps for _ in names]
        self.counters = [0.0] * (len(names) - 5)  # everything before the three gauges, process start and up
        self.warm_start()

    def warm_start(self) -> None:
        """Counters as if the process had served a day of typical traffic (they never start at 0)."""
        n = round(self.model.peak_rate / self.model.replicas * 0.4 * DAY)
        cdf, mean = ttft_distribution(self.model, 0.25)
        itl_cdf, itl_mean = itl_distribution(self.model.itl_median)
        tokens = n * self.model.output_tokens
        stops = n - round(n * (ERROR_RATIO + self.model.abort_ratio + LENGTH_RATIO))
        values = ([round(n * c) for c in cdf] + [n, n * mean, n]
                  + [round((tokens - n) * c) for c in itl_cdf] + [tokens - n, (tokens - n) * itl_mean, tokens - n]
                  + [stops, round(n * LENGTH_RATIO), round(n * self.model.abort_ratio), round(n * ERROR_RATIO)]
                  + [n * self.model.prompt_tokens, tokens, 3])
        self.counters = [float(v) for v in values]

    def reset(self, t: float) -> None:
        """A restart: every counter from 0, a new process start time (the engine took ~40 s to load)."""
        self.counters = [0.0] * len(self.counters)
        self.process_start = t - 40.0


def _simulate_minute(replica: _Replica, rate: float, dt: float, ttft_factor: float, itl_factor: float,
                     error: float | None, abort: float | None, kv_phase: float, kv_elapsed: float) -> list[float]:
    """Advance one replica by one step at `rate` req/s; return the gauge values (running, waiting, kv)."""
    model, rng, c = replica.model, replica.rng, replica.counters
    rho = rate / model.capacity
    saturation_factor = 1.0 + 0.8 * kv_phase  # a full KV cache makes requests wait for blocks
    cdf, ttft_mean = ttft_distribution(model, round(min(rho, RHO_CAP) / 2, 3) * 2,
                                       round(ttft_factor * saturation_factor, 2))
    n = poisson(rng, rate * dt)
    counts = bucket_counts(rng, n, cdf)
    nb = len(TTFT_BOUNDS)
    for k in range(nb):
        c[k] += counts[k]
    c[nb] += n
    c[nb + 1] += _noisy_sum(rng, n, ttft_mean, 0.8)
    c[nb + 2] += n
    # ITL: one observation per output token after the first; decode slows a little as the batch grows.
    slots = model.kv_slots
    running_mean = rate * _e2e(model, rho, ttft_mean)
    kv_mean = min(1.0, running_mean / slots)
    kv_mean = max(kv_mean, kv_phase * 0.985)
    itl_median = round(model.itl_median * itl_factor * (1.0 + 0.45 * kv_mean), 4)
    itl_cdf, itl_mean = itl_distribution(itl_median)
    tokens = max(n, round(n * model.output_tokens + rng.gauss(0.0, 1.0) * math.sqrt(n) * model.output_tokens * 0.4))
    observations = tokens - n
    itl_counts = bucket_counts(rng, observations, itl_cdf)
    base = nb + 3
    ni = len(ITL_BOUNDS)
    for k in range(ni):
        c[base + k] += itl_counts[k]
    c[base + ni] += observations
    c[base + ni + 1] += _noisy_sum(rng, observations, itl_mean, 0.4)
    c[base + ni + 2] += observations
    # Finished requests by reason (aborts rise a little with load: users give up on slow answers).
    base += ni + 3
    error_ratio = ERROR_RATIO if error is None else error
    abort_ratio = model.abort_ratio * (1.0 + min(rho, 1.0)) if abort is None else abort
    errors = binomial(rng, n, error_ratio)
    aborts = binomial(rng, n - errors, abort_ratio / (1.0 - error_ratio))
    lengths = binomial(rng, n - errors - aborts, LENGTH_RATIO)
    c[base] += n - errors - aborts - lengths
    c[base + 1] += lengths
    c[base + 2] += aborts
    c[base + 3] += errors
    c[base + 4] += max(0, round(n * model.prompt_tokens + rng.gauss(0.0, 1.0) * math.sqrt(n) * model.prompt_tokens))
    c[base + 5] += tokens
    preemption_rate = 1e-5 + (8.0 * (kv_mean - 0.93) / 0.07 if kv_mean > 0.93 else 0.0)
    c[base + 6] += poisson(rng, preemption_rate * dt)
    running = poisson(rng, running_mean)
    queue_length = rate * rho * model.queue_service * ttft_factor / (1.0 - min(rho, RHO_CAP))
    queue_length += kv_phase * (3.0 + 40.0 * kv_elapsed)
    waiting = poisson(rng, queue_length)
    kv = min(1.0, max(running / slots, kv_phase * (0.96 + 0.04 * rng.random())))
    return [float(running), float(waiting), round(kv, 4)]


def steady_state(model: Model, rho: float, minutes: int, seed: int = 0, ttft_factor: float = 1.0) -> list[int]:
    """TTFT bucket counts (cumulative, with +Inf) of one replica held at utilisation `rho` for `minutes`.

    The same per-minute code path as the fleet, without the daily cycle: what the queue model does
    to the histogram at a given load (tests and docs use it to show latency rising with load).
    """
    replica = _Replica(model, 0, 1, random.Random(f"{seed}:steady:{model.name}:{rho}"), 0.0)
    replica.counters = [0.0] * len(replica.counters)
    for _ in range(minutes):
        _simulate_minute(replica, rho * model.capacity, MINUTE, ttft_factor, 1.0, None, None, 0.0, 0.0)
    return [round(v) for v in replica.counters[:len(TTFT_BOUNDS) + 1]]


def _e2e(model: Model, rho: float, ttft_mean: float | None = None) -> float:
    """Mean end-to-end latency: TTFT plus the decode of the mean output."""
    if ttft_mean is None:
        ttft_mean = ttft_distribution(model, rho)[1]
    return ttft_mean + model.output_tokens * model.itl_median * 1.2


def _noisy_sum(rng: random.Random, n: int, mean: float, cv: float) -> float:
    """Sum of n observations with this mean: the mean times n, with the noise of a sum."""
    if n <= 0:
        return 0.0
    return max(0.0, n * mean + rng.gauss(0.0, 1.0) * math.sqrt(n) * mean * cv)


def _run_model(model: Model, result: Plan, steps: int, gap: list[bool]) -> dict[str, list[float | None]]:
    rates = _rates(model, result, steps)
    fx = _effects(model, result, steps)
    states = _states(model, result, steps)
    serving = [sum(1 for s in states if s[i] in (UP, SCRAPE_FAILED)) for i in range(steps)]
    series: dict[str, list[float | None]] = {}
    for r in range(model.replicas):
        rng = random.Random(f"{result.seed}:replica:{model.name}:{r}")
        replica = _Replica(model, r, steps, rng, result.start - rng.uniform(1.5, 6.0) * DAY)
        _run_replica(replica, rates, fx, states[r], serving, gap, result)
        series.update(zip(replica.names, replica.columns, strict=True))
    return series


def _run_replica(replica: _Replica, rates: list[float], fx: _Effects, state: list[int], serving: list[int],
                 gap: list[bool], result: Plan) -> None:
    columns, counters = replica.columns, replica.counters
    n_counters = len(counters)
    up_col, start_col = columns[-1], columns[-2]
    gauge_cols = columns[n_counters:n_counters + 3]
    restarting = False
    for i, s in enumerate(state):
        t = result.start + i * result.step
        if s in (DOWN, GONE):
            restarting = restarting or s == DOWN
            if s == DOWN and not gap[i]:
                up_col[i] = 0.0
            continue
        if restarting:
            replica.reset(t)
            counters = replica.counters
            restarting = False
        gauges = _simulate_minute(replica, rates[i] / max(1, serving[i]), result.step, fx.ttft[i], fx.itl[i],
                                  fx.error[i], fx.abort[i], fx.kv_phase[i], fx.kv_elapsed[i])
        if gap[i]:
            continue
        if s == SCRAPE_FAILED:
            up_col[i] = 0.0
            continue
        for k in range(n_counters):
            columns[k][i] = counters[k]
        for col, value in zip(gauge_cols, gauges, strict=True):
            col[i] = value
        start_col[i] = replica.process_start
        up_col[i] = 1.0


def generate(days: int = 15, seed: int = 15, step: float = 60, start: float = START,
             models: Sequence[Model] = MODELS) -> tuple[History, list[Incident]]:
    """The fleet's raw series (promtool series syntax keys) and its labelled incidents.

    `models` picks a subset (each replica has its own random stream, so a model's series do not
    depend on which others are generated); the incidents are always the whole fleet's.
    """
    result = plan(days, seed, start, step)
    return synthesise(result, models), list(result.incidents)


def synthesise(result: Plan, models: Sequence[Model] = MODELS) -> History:
    """Run the fleet (or some of its models) through a plan."""
    steps = int(result.days * DAY // result.step)
    gap = [False] * steps
    for event in result.of("prometheus_gap"):
        for i in event.window.steps(result.start, result.step):
            if i < steps:
                gap[i] = True
    series: dict[str, list[float | None]] = {}
    for model in models:
        series.update(_run_model(model, result, steps, gap))
    return History(start=result.start, step=result.step, series=series)


def incidents_yaml(incidents: Sequence[Incident]) -> str:
    """The incidents file `inferwatch rules backtest --incidents` reads (times in RFC 3339)."""
    def stamp(t: float) -> str:
        return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    rows = []
    for incident in incidents:
        row = {"model": incident.model, "kind": incident.kind, "start": stamp(incident.start),
               "end": stamp(incident.end)}
        row.update({k: v for k, v in (("expect", incident.expect), ("forbid", incident.forbid)) if v})
        rows.append(row)
    return yaml.safe_dump(rows, sort_keys=False)


def write(directory: str | Path, days: int = 15, seed: int = 15) -> tuple[Path, Path]:
    """Generate and save `history.json.gz` and `incidents.yaml` in `directory`; return both paths."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    history, incidents = generate(days=days, seed=seed)
    history_path, incidents_path = folder / "history.json.gz", folder / "incidents.yaml"
    history.save(history_path)
    incidents_path.write_text(incidents_yaml(incidents))
    return history_path, incidents_path
