"""Pure demand forecasting for the scaler: a linear trend and a level-matched seasonal lookback.

Everything works on `(unix ts, value)` samples as a Prometheus range query returns them. No state is
kept between calls (several scaler replicas answer KEDA), and nothing here does I/O, so the simulator
and the gRPC server run the very same maths.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Samples = Sequence[tuple[float, float]]


def clean(samples: Samples) -> list[tuple[float, float]]:
    """Samples with finite time and value, in time order (Prometheus gives NaN for a 0/0 rate)."""
    out = [(float(t), float(v)) for t, v in samples if math.isfinite(t) and math.isfinite(v)]
    out.sort(key=lambda s: s[0])
    return out


def window(samples: Samples, start: float, end: float) -> list[float]:
    """Values of the samples with start <= t <= end."""
    return [v for t, v in samples if start <= t <= end]


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def linear_fit(samples: Samples) -> tuple[float, float, float]:
    """Least-squares line through the samples: (slope per second, value at the mean time, mean time).

    One sample, or samples all at the same time, give slope 0.
    """
    if not samples:
        raise ValueError("linear_fit needs at least one sample")
    n = len(samples)
    t_mean = sum(t for t, _ in samples) / n
    v_mean = sum(v for _, v in samples) / n
    sxx = sum((t - t_mean) ** 2 for t, _ in samples)
    if sxx <= 0.0:
        return 0.0, v_mean, t_mean
    sxy = sum((t - t_mean) * (v - v_mean) for t, v in samples)
    return sxy / sxx, v_mean, t_mean


def trend_forecast(samples: Samples, now: float, horizon: float, trend_window: float) -> float | None:
    """The demand at now+horizon on the straight line fitted to the last trend_window; never negative.

    None when the window holds no sample. A line, not a higher-order fit: the horizon (pod start-up) is a few
    minutes, over which LLM demand ramps are close to linear, and a line extrapolates noise the least.
    """
    recent = [(t, v) for t, v in samples if now - trend_window <= t <= now]
    if not recent:
        return None
    slope, level, t_mean = linear_fit(recent)
    return max(0.0, level + slope * (now + horizon - t_mean))


def seasonal_forecast(history: Samples, current: Samples, now: float, lookback: float, horizon: float,
                      trend_window: float, peak_window: float, ratio_clip: float) -> float | None:
    """The demand one lookback ago at the forecast time, scaled by how today compares with then.

    `history` covers [now-lookback-trend_window, now-lookback+horizon]. The level then is the mean over
    [now-lookback-trend_window, now-lookback], the level now the mean of `current` over the same-length window;
    their ratio (clipped to [1/ratio_clip, ratio_clip], so one odd day cannot blow the forecast up) multiplies
    the highest value of the peak_window ending at now-lookback+horizon. None without usable history (nothing
then + horizon, or nothing now).
    """
    then = now - lookback
    before = mean(window(history, then - trend_window, then))
    ahead = window(history, then + horizon - peak_window, then + horizon)
    level_now = mean(window(current, now - trend_window, now))
    if not ahead or level_now is None:
        return None
    if before is None:
        # No samples then but some after: the series did not exist yet, as when a deployment scaled to zero
        # has no pods to report. Read it as no traffic (it errs towards more replicas, never fewer).
        before = 0.0
    if before <= 0.0:
        # Nothing then: a multiplicative match is undefined; fall back to an additive one.
        return max(0.0, max(ahead) + level_now - before)
    ratio = min(max(level_now / before, 1.0 / ratio_clip), ratio_clip)
    return max(0.0, max(ahead) * ratio)


def recent_peak(samples: Samples, now: float, span: float) -> float | None:
    """The highest demand of the last `span` seconds: what a stateless scale-down stabilisation holds on to."""
    values = window(samples, now - span, now)
    return max(values) if values else None
