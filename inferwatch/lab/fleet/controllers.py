"""Controllers for the fleet simulator: this scaler (through `scaler.policy.decide` and KEDA/HPA actuation),
production-stack's KEDA rule, ENOVA's rules and static provisioning.

Each is called at every tick with what Prometheus would hold at that moment and returns the replica count it
asks for (None: leave it). The predictive one builds the very `Signals` the gRPC server fetches: demand is
completions per second over the last minute (`queries()["demand"]`), scraped every tick; before the simulated
window it is the offered demand (what a fleet that kept up would have recorded), so the seasonal lookbacks
have a week of history.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from inferwatch.lab.fleet.simulator import Fleet, Observation
from inferwatch.scaler import baselines
from inferwatch.scaler.policy import Policy, Signals, decide


class Predictive:
    name = "inferwatch scaler"

    def __init__(self, policy: Policy, history: Sequence[float], history_start: float, tick: float,
                 ttft_objective: float, max_replicas: int) -> None:
        self.policy, self.tick, self.objective = policy, tick, ttft_objective
        self.rates = list(history)
        self.t0 = history_start
        self.warm = len(self.rates)
        self.hpa = baselines.HpaWindow(max(policy.min_replicas, 1), max_replicas)
        self.reasons: Counter[str] = Counter()
        self.window = max(1, round(60.0 / tick))
        self.burn_ticks = max(1, round(300.0 / tick))

    def _samples(self, lo: int, hi: int) -> list[tuple[float, float]]:
        lo, hi = max(0, lo), min(hi, len(self.rates) - 1)
        return [(self.t0 + g * self.tick, self.rates[g]) for g in range(lo, hi + 1)]

    def signals(self, k: int, now: float, obs: Observation) -> Signals:
        done = obs.completions[max(0, k - self.window):k]
        if k >= self.window:
            self.rates.append(sum(done) / (self.window * self.tick))
        else:  # the first minute: part history, part completions
            older = self.rates[self.warm + k - self.window:self.warm] if self.warm else []
            self.rates.append((sum(done) + sum(older) * self.tick) / (self.window * self.tick))
        g = len(self.rates) - 1
        p, step = self.policy, self.tick
        demand = self._samples(g - round(p.history_seconds / step), g)
        seasonal = {}
        for name, seconds in zip(p.seasonal, p.seasonal_seconds, strict=True):
            back = g - round(seconds / step)
            seasonal[name] = self._samples(back - round(p.trend_window_seconds / step),
                                           back + round(p.startup_seconds / step))
        events = sum(obs.ttft_events[max(0, k - self.burn_ticks):k])
        misses = sum(obs.ttft_misses[max(0, k - self.burn_ticks):k])
        burn = misses / events / (1.0 - self.objective) if events else None
        ready = obs.ready[k]
        return Signals(now=now, demand=demand, seasonal=seasonal, capacity_history=None, ttft_burn_rate=burn,
                       kv_cache_usage=obs.kv_usage[k] if ready else None,
                       waiting_per_replica=obs.waiting[k] / ready if ready else None,
                       replicas=float(obs.total[k]), replicas_ready=float(ready))

    def __call__(self, k: int, now: float, obs: Observation, fleet: Fleet) -> int | None:
        decision = decide(self.policy, self.signals(k, now, obs))
        self.reasons[decision.reason] += 1
        if not decision.active and self.policy.min_replicas == 0:
            return 0
        rec = baselines.hpa_recommend(decision.desired, 1.0, fleet.total)
        return self.hpa.apply(now, rec, fleet.total)


class ProductionStack:
    name = "production-stack (waiting > 5)"

    def __init__(self, max_replicas: int) -> None:
        self.hpa = baselines.HpaWindow(1, max_replicas)

    def __call__(self, k: int, now: float, obs: Observation, fleet: Fleet) -> int | None:
        metric, target = baselines.production_stack_metric(obs.waiting[k])
        return self.hpa.apply(now, baselines.hpa_recommend(metric, target, fleet.total), fleet.total)


class Enova:
    name = "ENOVA rules"

    def __init__(self, max_replicas: int, tick: float,
                 pending_threshold: float = baselines.ENOVA_PENDING_THRESHOLD) -> None:
        self.max_replicas, self.tick, self.pending_threshold = max_replicas, tick, pending_threshold
        if pending_threshold != baselines.ENOVA_PENDING_THRESHOLD:
            self.name = f"ENOVA rules, pending >= {pending_threshold:g}"
        self.every = max(1, round(baselines.ENOVA_INTERVAL_SECONDS / tick))
        self.per_minute = max(1, round(60.0 / tick))

    def __call__(self, k: int, now: float, obs: Observation, fleet: Fleet) -> int | None:
        m, w = baselines.ENOVA_WINDOW_MINUTES, self.per_minute
        if k % self.every or k < m * w:
            return None
        buckets = [range(k - (m - b) * w, k - (m - b - 1) * w) for b in range(m)]
        pending = [obs.waiting[bucket[-1]] for bucket in buckets]
        new = [float(sum(obs.arrivals[j] for j in bucket)) for bucket in buckets]
        success = [float(sum(obs.completions[j] for j in bucket)) for bucket in buckets]
        running = [sum(obs.running[j] / obs.ready[j] for j in bucket if obs.ready[j]) / w for bucket in buckets]
        kv = [sum(obs.kv_usage[j] for j in bucket) / w for bucket in buckets]
        return baselines.enova_decide(fleet.total, self.max_replicas, pending, new, success, running, kv,
                                      obs.curve.max_num_seqs, self.pending_threshold)


class Static:
    name = "static-peak"

    def __init__(self, replicas: int) -> None:
        self.replicas = replicas

    def __call__(self, k: int, now: float, obs: Observation, fleet: Fleet) -> int | None:
        return self.replicas if k == 0 else None
