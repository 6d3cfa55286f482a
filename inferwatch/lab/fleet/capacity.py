"""What one replica sustains within the TTFT SLO: the `capacityPerReplica` an operator would set from a load
test, found by bisection on single-replica simulations with Poisson arrivals and the trace's token lengths."""

from __future__ import annotations

import numpy as np

from inferwatch.lab.fleet.calibration import Curve
from inferwatch.lab.fleet.demand import Demand, Envelope, Trace
from inferwatch.lab.fleet.simulator import simulate


def poisson_demand(trace: Trace, rate: float, seconds: float, seed: int, max_model_len: int | None) -> Demand:
    rng = np.random.default_rng(seed)
    n = int(rate * seconds * 1.2) + 10
    times = np.cumsum(rng.exponential(1.0 / rate, n))
    times = times[times < seconds]
    pick = rng.integers(len(trace.prompts), size=len(times))
    prompts, outputs = trace.prompts[pick].copy(), trace.outputs[pick].copy()
    if max_model_len:
        outputs = np.minimum(outputs, max(1, max_model_len // 4))
        prompts = np.clip(prompts, 1, max_model_len - outputs)
    return Demand(times, prompts, outputs, seconds / 86400.0, rate, Envelope(), trace.name)


def capacity_at_slo(trace: Trace, curve: Curve, ttft_slo: float, quantile: float = 0.99, seconds: float = 3600.0,
                    seed: int = 0, iterations: int = 10) -> float:
    """The highest Poisson rate (requests/s) at which one replica keeps the TTFT `quantile` within the SLO."""
    def ok(rate: float) -> bool:
        demand = poisson_demand(trace, rate, seconds, seed, curve.max_model_len)
        result = simulate(demand, lambda *_: None, curve, 0.0, 0.0, seconds, ttft_slo, initial=1, tick=60.0)
        return result.ttft_quantile(quantile) <= ttft_slo

    lo, hi = 0.0, 1.0
    while ok(hi):
        lo, hi = hi, hi * 2
        if hi > 1e4:
            return hi
    for _ in range(iterations):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo
