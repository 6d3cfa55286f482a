"""The scaler's decision core: KEDA metadata -> `Policy`, Prometheus signals -> `Decision`.

Pure (no I/O, stdlib only) and stateless: several scaler replicas answer KEDA round-robin, so everything a
decision needs, scale-down stabilisation included, is recomputed from the demand history in `Signals`. The gRPC
server and the fleet simulator (`benchmarks/autoscaling.py`) call the same `decide`.

Sizing: demand forecast at now + pod start-up (the larger of a linear trend and level-matched "same time
yesterday / last week"), held at the peak demand of the stabilisation window, times (1 + headroom), divided by
the capacity per replica. Two guards then add replicas on evidence that the forecast is short: a TTFT
error-budget burn (`slo_guard`) and KV-cache or queue pressure (`pressure_guard`). They count from the ready
replicas, so pods already starting are not asked for again at every poll.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

from . import forecast

#: KEDA's own trigger keys, forwarded in scalerMetadata; not ours to judge.
KEDA_KEYS = frozenset({"scalerAddress", "enableTLS", "unsafeSsl", "caCert", "tlsClientCert", "tlsClientKey"})

#: Every reason `decide` can give (a closed set: it is a metric label).
REASONS = ("forecast", "slo_guard", "pressure_guard", "min", "max", "idle")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


class PolicyError(ValueError):
    """A metadata key at fault; `str()` is `key: message`."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


class NoData(ValueError):
    """A signal decide() cannot do without is missing; the server answers an error so KEDA's fallback applies."""


@dataclass(frozen=True)
class Policy:
    """One model's scaling policy. Metadata keys are the camelCase of the field names (snake_case works too)."""

    model: str
    demand: str = "requests"
    demand_query: str | None = None
    capacity_per_replica: float | None = None
    startup_seconds: float = 180.0
    trend_window_seconds: float = 600.0
    seasonal: tuple[str, ...] = ("1d", "1w")
    headroom: float = 0.25  # chosen on the tuning scenarios of benchmarks/autoscaling.py
    min_replicas: int = 0
    max_replicas: int = 100
    scale_down_stabilisation_seconds: float = 600.0
    ttft_slo_seconds: float = 1.0
    burn_rate_threshold: float = 6.0
    guard_step: float = 0.25
    kv_cache_threshold: float = 0.9
    waiting_threshold: float = 5.0
    idle_demand: float = 0.0
    seasonal_ratio_clip: float = 2.0
    seasonal_peak_window_seconds: float = 120.0
    sample_step_seconds: float = 15.0
    deployment: str | None = None
    namespace: str | None = None

    @property
    def seasonal_seconds(self) -> tuple[float, ...]:
        return tuple(parse_duration(s) for s in self.seasonal)

    @property
    def history_seconds(self) -> float:
        """How far back `Signals.demand` must reach."""
        return max(self.trend_window_seconds, self.scale_down_stabilisation_seconds)


@dataclass(frozen=True)
class Signals:
    """Everything decide() needs, fetched from Prometheus (scaler/signals.py) or built by the simulator."""

    now: float
    demand: Sequence[tuple[float, float]]
    seasonal: Mapping[str, Sequence[tuple[float, float]]]
    capacity_history: float | None
    ttft_burn_rate: float | None
    kv_cache_usage: float | None
    waiting_per_replica: float | None
    replicas: float
    replicas_ready: float


@dataclass(frozen=True)
class Decision:
    desired: float
    active: bool
    forecast: float
    capacity: float
    reason: str


def parse_duration(text: str) -> float:
    """"90", "90s", "15m", "1h", "1d", "1w" -> seconds. Raises ValueError."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"not a duration: {text[:80]!r} (e.g. 180s, 15m, 1d)")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2) or "s"]


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


_FIELDS = {f.name: f for f in fields(Policy)}
_ALIASES = {**{name: name for name in _FIELDS}, **{_camel(name): name for name in _FIELDS}}
_DURATIONS = {"startup_seconds", "trend_window_seconds", "scale_down_stabilisation_seconds", "ttft_slo_seconds",
              "seasonal_peak_window_seconds", "sample_step_seconds"}
_INTS = {"min_replicas", "max_replicas"}
_STRINGS = {"model", "demand", "demand_query", "deployment", "namespace"}


def parse_policy(metadata: Mapping[str, str], named: Mapping[str, Mapping[str, str]] | None = None) -> Policy:
    """KEDA scalerMetadata (all strings) -> Policy; key `policy` picks a named policy, inline keys override it.

    Unknown or malformed keys raise PolicyError naming the key as written.
    """
    values: dict[str, object] = {}
    where: dict[str, str] = {}
    name = metadata.get("policy")
    if name is not None:
        policies = named or {}
        if name not in policies:
            known = ", ".join(sorted(policies)) or "none defined"
            raise PolicyError("policy", f"no policy named {name[:80]!r} ({known})")
        _collect(policies[name], values, where, f" in policy {name!r}")
    inline = {k: v for k, v in metadata.items() if k not in KEDA_KEYS and k != "policy"}
    _collect(inline, values, where, "")
    if "model" not in values:
        raise PolicyError("model", "required (the vLLM model_name label value)")
    policy = Policy(**values)  # type: ignore[arg-type]
    _check(policy, where)
    return policy


def _collect(raw: Mapping[str, object], values: dict[str, object], where: dict[str, str], ctx: str) -> None:
    seen: dict[str, str] = {}
    for key, text in raw.items():
        field = _ALIASES.get(key)
        if field is None:
            raise PolicyError(key, f"unknown key{ctx}")
        if field in seen:
            raise PolicyError(key, f"given twice{ctx} (also as {seen[field]!r})")
        seen[field] = key
        values[field] = _convert(key, field, text, ctx)
        where[field] = key


def _convert(key: str, field: str, raw: object, ctx: str) -> object:
    if field == "seasonal":
        items = raw if isinstance(raw, list | tuple) else str(raw).split(",")
        out = tuple(str(s).strip() for s in items if str(s).strip())
        for item in out:
            try:
                if parse_duration(item) <= 0:
                    raise ValueError("must be positive")
            except ValueError as exc:
                raise PolicyError(key, f"{exc}{ctx}") from None
        return out
    text = str(raw).strip()
    if field in _STRINGS:
        if not text:
            raise PolicyError(key, f"must not be empty{ctx}")
        return text
    try:
        if field in _DURATIONS:
            value = parse_duration(text)
        elif field in _INTS:
            value = int(text)
        else:
            value = float(text)
    except ValueError:
        kind = "a duration (e.g. 180s)" if field in _DURATIONS else "an integer" if field in _INTS else "a number"
        raise PolicyError(key, f"must be {kind}, got {text[:80]!r}{ctx}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise PolicyError(key, f"must be finite, got {text[:80]!r}{ctx}")
    return value


def _check(p: Policy, where: Mapping[str, str]) -> None:
    def fail(field: str, message: str) -> None:
        raise PolicyError(where.get(field, _camel(field)), message)

    if p.demand not in ("requests", "tokens"):
        fail("demand", f"must be 'requests' or 'tokens', got {p.demand[:80]!r}")
    if p.capacity_per_replica is not None and p.capacity_per_replica <= 0:
        fail("capacity_per_replica", "must be > 0")
    if p.demand == "tokens" and p.capacity_per_replica is None:
        fail("capacity_per_replica", "required when demand is 'tokens' (no learned token capacity is recorded)")
    for field in ("startup_seconds", "trend_window_seconds", "ttft_slo_seconds", "seasonal_peak_window_seconds",
                  "sample_step_seconds"):
        if getattr(p, field) <= 0:
            fail(field, "must be > 0")
    for field in ("headroom", "scale_down_stabilisation_seconds", "guard_step", "idle_demand"):
        if getattr(p, field) < 0:
            fail(field, "must be >= 0")
    if p.min_replicas < 0:
        fail("min_replicas", "must be >= 0")
    if p.max_replicas < max(1, p.min_replicas):
        fail("max_replicas", f"must be >= 1 and >= minReplicas ({p.min_replicas})")
    if p.burn_rate_threshold <= 0:
        fail("burn_rate_threshold", "must be > 0")
    if not 0 < p.kv_cache_threshold <= 1:
        fail("kv_cache_threshold", "must be in (0, 1]")
    if p.waiting_threshold <= 0:
        fail("waiting_threshold", "must be > 0")
    if p.seasonal_ratio_clip < 1:
        fail("seasonal_ratio_clip", "must be >= 1")


def forecast_demand(policy: Policy, signals: Signals) -> tuple[float, float]:
    """(forecast at now+startup, demand to size for) from the signals; raises NoData without demand samples.

    The sizing demand is the forecast held at the peak demand of the stabilisation window, which is how a
    stateless scaler delays scale-down: the history it needs is in every call's Signals.
    """
    demand = forecast.clean(signals.demand)
    if not demand:
        if signals.replicas > 0:
            raise NoData(f"no demand samples for model {policy.model!r}")
        # Scaled to zero, vLLM's series are gone: nothing served is a known 0, not a missing signal.
        demand = [(signals.now, 0.0)]
    now, horizon = signals.now, policy.startup_seconds
    candidates = []
    trend = forecast.trend_forecast(demand, now, horizon, policy.trend_window_seconds)
    if trend is not None:
        candidates.append(trend)
    seasonal = []
    for lookback, seconds in zip(policy.seasonal, policy.seasonal_seconds, strict=True):
        history = forecast.clean(signals.seasonal.get(lookback, ()))
        value = forecast.seasonal_forecast(history, demand, now, seconds, horizon, policy.trend_window_seconds,
                                           policy.seasonal_peak_window_seconds, policy.seasonal_ratio_clip)
        if value is not None:
            seasonal.append(value)
    if seasonal:
        candidates.append(sum(seasonal) / len(seasonal))
    if not candidates:
        # Samples exist but none inside the trend window: the newest one is all we know.
        candidates.append(max(0.0, demand[-1][1]))
    predicted = max(candidates)
    held = forecast.recent_peak(demand, now, policy.scale_down_stabilisation_seconds)
    return predicted, max(predicted, held if held is not None else 0.0)


def capacity(policy: Policy, signals: Signals) -> float:
    """Demand one replica serves within the TTFT SLO: the static value, else the learned one."""
    value = policy.capacity_per_replica
    if value is None:
        value = signals.capacity_history
    if value is None or not math.isfinite(value) or value <= 0:
        raise NoData(f"no capacity per replica for model {policy.model!r}: set capacityPerReplica or keep "
                     "model_name:llm_requests_per_replica:handled_max1w recorded")
    return value


def decide(policy: Policy, signals: Signals) -> Decision:
    """Desired (fractional) replicas and activity for one model; raises NoData rather than guess."""
    cap = capacity(policy, signals)
    predicted, sizing = forecast_demand(policy, signals)
    desired = sizing * (1.0 + policy.headroom) / cap
    reason = "forecast"

    step_target = max(signals.replicas_ready * (1.0 + policy.guard_step), signals.replicas_ready + 1.0)
    burning = signals.ttft_burn_rate is not None and signals.ttft_burn_rate >= policy.burn_rate_threshold
    pressed = ((signals.kv_cache_usage is not None and signals.kv_cache_usage >= policy.kv_cache_threshold)
               or (signals.waiting_per_replica is not None
                   and signals.waiting_per_replica >= policy.waiting_threshold))
    if (burning or pressed) and step_target > desired:
        desired = step_target
        reason = "slo_guard" if burning else "pressure_guard"

    active = sizing > policy.idle_demand or policy.min_replicas > 0
    if not active:
        return Decision(desired=float(policy.min_replicas), active=False, forecast=predicted, capacity=cap,
                        reason="idle")
    if desired < policy.min_replicas:
        desired, reason = float(policy.min_replicas), "min"
    if desired > policy.max_replicas:
        desired, reason = float(policy.max_replicas), "max"
    return Decision(desired=desired, active=True, forecast=predicted, capacity=cap, reason=reason)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def queries(policy: Policy) -> dict[str, str]:
    """The PromQL behind each Signals field, so signals.py and the docs agree.

    `demand` is queried as a range over `history_seconds` at `sample_step_seconds`, and again for each seasonal
    lookback over [now-lookback-trend_window, now-lookback+startup]. Demand is completions per second over one
    minute (vLLM counts a request when it finishes; a 5-minute rate would lag the start-up horizon itself).
    `capacity_history` is absent when demand is tokens (capacityPerReplica is then required).
    `replicas` counts starting pods only when `deployment` is set (kube-state-metrics); otherwise it equals
    the ready count and the guards cannot tell that pods are already starting.
    """
    sel = f'model_name="{_label(policy.model)}"'
    if policy.demand_query:
        demand = policy.demand_query
    elif policy.demand == "tokens":
        demand = (f"sum(rate(vllm:prompt_tokens_total{{{sel}}}[1m])) + "
                  f"sum(rate(vllm:generation_tokens_total{{{sel}}}[1m]))")
    else:
        demand = f"sum(rate(vllm:request_success_total{{{sel}}}[1m]))"
    ready = f"count(vllm:num_requests_running{{{sel}}})"
    out = {
        "demand": demand,
        "ttft_burn_rate": (f"max(model_name:llm_slo_ttft_errors_per_events:ratio_rate5m{{{sel}}}) / "
                           f"(1 - max(model_name:llm_slo_ttft:objective_ratio{{{sel}}}))"),
        "kv_cache_usage": f"avg(vllm:kv_cache_usage_perc{{{sel}}})",
        "waiting_per_replica": f"sum(vllm:num_requests_waiting{{{sel}}}) / {ready}",
        "replicas_ready": ready,
        "replicas": ready,
    }
    if policy.demand == "requests":
        out["capacity_history"] = f"max(model_name:llm_requests_per_replica:handled_max1w{{{sel}}})"
    if policy.deployment:
        kube = f'deployment="{_label(policy.deployment)}"'
        if policy.namespace:
            kube += f',namespace="{_label(policy.namespace)}"'
        out["replicas"] = f"sum(kube_deployment_status_replicas{{{kube}}})"
    return out
