"""A Policy's `Signals`, read from Prometheus: range queries for the demand history and each seasonal lookback,
instant queries for the rest, all at once under one deadline.

Failures are raised, never papered over with a zero, so the gRPC server answers an error and KEDA's fallback
applies: `PrometheusUnavailable` (no answer in time, refused, 5xx), `QueryRefused` (Prometheus rejected a query:
usually a bad `demandQuery`), `policy.NoData` (the demand query returned nothing, or several series; nothing
is a known 0 only for a `deployment` that kube-state-metrics reports at 0 replicas). The other
signals are optional: an empty answer is None (`replicas`/`replicas_ready` 0), as `policy.decide` expects.
"""

from __future__ import annotations

import concurrent.futures
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from inferwatch.kit.httpclient import FetchError
from inferwatch.kit.prometheus import PrometheusAPI, QueryError
from inferwatch.kit.workers import DaemonExecutor

from .policy import NoData, Policy, Signals, queries

#: The stages a query can fail in: the Signals fields plus one per seasonal lookback (`seasonal`).
STAGES = ("demand", "seasonal", "capacity_history", "ttft_burn_rate", "kv_cache_usage", "waiting_per_replica",
          "replicas", "replicas_ready")
#: Why a query failed (a closed set: a metric label). FetchError's reasons, plus Prometheus' own refusals.
FAILURES = ("timeout", "refused", "http_4xx", "http_5xx", "malformed", "too_large", "redirect", "error",
            "rejected", "no_data", "many_series")
MAX_RANGE_POINTS = 11_000  # Prometheus refuses a range query with more points per series


class SignalError(Exception):
    """A query that gave no usable answer; `stage` and `reason` are label values (STAGES, FAILURES)."""

    def __init__(self, stage: str, reason: str, message: str):
        super().__init__(message)
        self.stage, self.reason = stage, reason


class PrometheusUnavailable(SignalError):
    """Prometheus did not answer (in time, at all, or with a server error)."""


class QueryRefused(SignalError):
    """Prometheus answered that a query is wrong (a bad demandQuery, too many points)."""


class NoDemand(NoData, SignalError):
    """The demand query returned nothing, or more than one series: sizing from it would be a guess."""

    def __init__(self, stage: str, reason: str, message: str):
        SignalError.__init__(self, stage, reason, message)


@dataclass(frozen=True)
class Query:
    stage: str  # STAGES
    field: str  # the Signals field (seasonal: "seasonal:<lookback>")
    expr: str
    start: float | None = None  # a range query when set
    end: float | None = None  # the evaluation time of an instant query
    step: float | None = None


Observer = Callable[[str, str | None], None]  # (stage, failure reason or None on success)


def plan(policy: Policy, now: float) -> list[Query]:
    """Every query one decision needs, as of `now`."""
    exprs = queries(policy)
    step = policy.sample_step_seconds
    out = [Query("demand", "demand", exprs["demand"], now - policy.history_seconds, now, step)]
    for lookback, seconds in zip(policy.seasonal, policy.seasonal_seconds, strict=True):
        then = now - seconds
        out.append(Query("seasonal", f"seasonal:{lookback}", exprs["demand"],
                         then - policy.trend_window_seconds, then + policy.startup_seconds, step))
    out += [Query(name, name, expr, end=now) for name, expr in exprs.items() if name != "demand"]
    for query in out:
        if query.step is not None and (query.end - query.start) / query.step > MAX_RANGE_POINTS:  # type: ignore[operator]
            raise QueryRefused(query.stage, "rejected", f"{query.field}: {(query.end - query.start):g} s at "  # type: ignore[operator]
                               f"sampleStepSeconds {query.step:g} s is more than {MAX_RANGE_POINTS} points")
    return out


class SignalReader:
    """Runs a decision's queries concurrently on daemon threads, under one deadline per decision."""

    def __init__(self, workers: int = 8):
        self._pool = DaemonExecutor(workers, "scaler-query")

    def close(self) -> None:
        self._pool.shutdown()

    def read(self, policy: Policy, url: str, timeout: float, now: float,
             observe: Observer | None = None) -> Signals:
        observe = observe or (lambda stage, failure: None)
        deadline = time.monotonic() + timeout
        api = PrometheusAPI(url, timeout=timeout)
        planned = plan(policy, now)
        futures = {self._pool.submit(_run, api, q): q for q in planned}
        _, pending = concurrent.futures.wait(futures, timeout=max(0.0, deadline - time.monotonic()))
        for future in pending:
            future.cancel()
        answers: dict[str, Any] = {}
        first_error: SignalError | None = None
        for future, query in futures.items():
            if future in pending:
                error: SignalError = PrometheusUnavailable(
                    query.stage, "timeout", f"Prometheus did not answer {query.field} within {timeout:g} s")
            else:
                try:
                    answers[query.field] = future.result()
                    observe(query.stage, None)
                    continue
                except SignalError as exc:
                    error = exc
            observe(query.stage, error.reason)
            # The demand is what sizing needs; report its failure first, as it names the likely culprit.
            if first_error is None or (query.stage == "demand" and first_error.stage != "demand"):
                first_error = error
        if first_error is not None:
            raise first_error
        return _signals(policy, now, answers)


def _run(api: PrometheusAPI, query: Query) -> list[dict]:
    try:
        if query.step is None:
            return api.query(query.expr, at=query.end)
        return api.query_range(query.expr, query.start, query.end, query.step)  # type: ignore[arg-type]
    except FetchError as exc:
        if exc.reason == "http_4xx":  # 400 bad_data, 422 execution: the query is at fault, not Prometheus
            raise QueryRefused(query.stage, "http_4xx", f"Prometheus refused the {query.field} query "
                               f"{_short(query.expr)}: {exc.detail}") from None
        reason = exc.reason if exc.reason in FAILURES else "error"
        raise PrometheusUnavailable(query.stage, reason, f"Prometheus at {api.url} unavailable ({query.field} query): "
                                    f"{exc.reason}") from None
    except QueryError as exc:
        raise QueryRefused(query.stage, "rejected", f"{query.field}: {exc}") from None


def _signals(policy: Policy, now: float, answers: dict[str, Any]) -> Signals:
    demand_series = answers["demand"]
    replicas = _scalar(answers.get("replicas"))
    # At zero pods vLLM's series are gone, so the demand query is empty. That is a known 0 only when
    # kube-state-metrics says the deployment has 0 replicas; any other empty answer (a wrong model name,
    # a lost scrape) stays an error, never a silent scale-to-zero.
    scaled_to_zero = bool(policy.deployment) and replicas == 0.0
    if not demand_series and not scaled_to_zero:
        hint = "" if policy.deployment else " (set `deployment` so a deployment scaled to zero is recognised)"
        raise NoDemand("demand", "no_data", f"the demand query returned no data for model {policy.model!r} "
                       f"(query {_short(queries(policy)['demand'])}): refusing to guess{hint}")
    if len(demand_series) > 1:
        raise NoDemand("demand", "many_series", f"the demand query returned {len(demand_series)} series; it must "
                       "return one (aggregate it, e.g. sum(...))")
    seasonal = {}
    for lookback in policy.seasonal:
        series = answers[f"seasonal:{lookback}"]
        seasonal[lookback] = _points(series[0]) if len(series) == 1 else []
    return Signals(
        now=now,
        demand=_points(demand_series[0]) if demand_series else [],
        seasonal=seasonal,
        capacity_history=_scalar(answers.get("capacity_history")),
        ttft_burn_rate=_scalar(answers.get("ttft_burn_rate")),
        kv_cache_usage=_scalar(answers.get("kv_cache_usage")),
        waiting_per_replica=_scalar(answers.get("waiting_per_replica")),
        replicas=replicas or 0.0,
        replicas_ready=_scalar(answers.get("replicas_ready")) or 0.0,
    )


def _points(series: dict) -> list[tuple[float, float]]:
    return [(float(t), float(v)) for t, v in series.get("values", [])]


def _scalar(result: list[dict] | None) -> float | None:
    """The largest finite value of an instant vector (the queries aggregate to one series), None if empty."""
    values = [float(s["value"][1]) for s in result or ()]
    finite = [v for v in values if math.isfinite(v)]
    return max(finite) if finite else None


def _short(expr: str, limit: int = 160) -> str:
    return expr if len(expr) <= limit else expr[: limit - 3] + "..."
