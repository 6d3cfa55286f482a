"""Distribution distances on binned data, with Evidently 0.7's semantics re-implemented in numpy.

Why binned: the exporter keeps fixed-bucket histograms per feature (and Prometheus histograms are
buckets already), never raw values, so every test here takes two count vectors over the same bins.
Evidently's conventions are kept so its documented default thresholds mean the same thing here:
empty shares become 0.0001 for PSI and Jensen-Shannon, JS is scipy's distance (natural log), and
MMD is the unbiased MMD^2 with an RBF kernel whose width is the median pairwise distance.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

METHODS = ("psi", "jensenshannon", "ks")
EMBEDDING_METHOD = "mmd"
# Evidently's defaults. psi/jensenshannon/mmd drift when score >= threshold; ks when its p-value <= threshold.
THRESHOLDS: dict[str, float] = {"psi": 0.1, "jensenshannon": 0.1, "ks": 0.05, "mmd": 0.015}

EMPTY_SHARE = 0.0001  # Evidently's replacement for an empty bin's share (get_binned_data)


@dataclass(frozen=True)
class Score:
    feature: str
    method: str
    score: float
    drifted: bool


def _counts(values: Sequence[float], name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a flat sequence of bin counts")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: bin counts must be finite numbers (got NaN or inf)")
    if np.any(arr < 0):
        raise ValueError(f"{name}: bin counts must not be negative")
    return arr


def _pair(reference: Sequence[float], current: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    ref, cur = _counts(reference, "reference"), _counts(current, "current")
    if ref.shape != cur.shape:
        raise ValueError(f"reference has {ref.size} bins, current has {cur.size}: they must share the same bins")
    if ref.size == 0:
        raise ValueError("no bins to compare")
    if ref.sum() <= 0 or cur.sum() <= 0:
        raise ValueError("both distributions need at least one count")
    return ref, cur


def _shares(counts: np.ndarray) -> np.ndarray:
    shares = counts / counts.sum()
    shares[shares == 0] = EMPTY_SHARE
    return shares


def buckets_from_cumulative(bounds: Sequence[float], cumulative: Sequence[float]) -> list[float]:
    """Per-bucket counts from a Prometheus histogram's cumulative `_bucket` values (sorted by `le`).

    The values usually come from `increase()`, so they are extrapolated floats and can dip slightly
    between neighbouring buckets; each per-bucket count is clamped at 0 rather than rejected.
    """
    le = np.asarray(bounds, dtype=float)
    cum = np.asarray(cumulative, dtype=float)
    if le.ndim != 1 or cum.ndim != 1 or le.size != cum.size:
        raise ValueError(f"bounds and cumulative must be flat and of equal length (got {le.size} and {cum.size})")
    if le.size == 0:
        raise ValueError("a histogram needs at least the +Inf bucket")
    if np.any(np.isnan(le)):
        raise ValueError("bounds: NaN bucket bound")
    if not np.isposinf(le[-1]):
        raise ValueError("bounds: the last bucket bound must be +Inf")
    if np.any(np.diff(le) <= 0):
        raise ValueError("bounds: bucket bounds must be strictly ascending")
    if not np.all(np.isfinite(cum)):
        raise ValueError("cumulative: bucket values must be finite (got NaN or inf)")
    return np.maximum(np.diff(cum, prepend=0.0), 0.0).tolist()


def psi(reference: Sequence[float], current: Sequence[float]) -> float:
    """Population Stability Index: sum((cur - ref) * ln(cur / ref)) over shares, empty shares 0.0001."""
    ref, cur = (_shares(c) for c in _pair(reference, current))
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def jensenshannon(reference: Sequence[float], current: Sequence[float]) -> float:
    """Jensen-Shannon distance (sqrt of the divergence, natural log), as scipy computes it on Evidently's shares."""
    ref, cur = (_shares(c) for c in _pair(reference, current))
    p, q = ref / ref.sum(), cur / cur.sum()  # scipy renormalises after the 0.0001 floor
    m = (p + q) / 2.0
    divergence = (np.sum(p * np.log(p / m)) + np.sum(q * np.log(q / m))) / 2.0
    return float(math.sqrt(max(divergence, 0.0)))


def kolmogorov_q(x: float) -> float:
    """Q_KS(x) = 2 * sum_{j>=1} (-1)^(j-1) exp(-2 j^2 x^2) (Numerical Recipes' probks), clamped to [0, 1]."""
    if x < 0.2:
        return 1.0  # 1 - Q(0.2) < 1e-12, and the series converges slowly there
    a2 = -2.0 * x * x
    fac, total, previous = 2.0, 0.0, 0.0
    for j in range(1, 101):
        term = fac * math.exp(a2 * j * j)
        total += term
        if abs(term) <= 0.001 * previous or abs(term) <= 1e-8 * total:
            return min(max(total, 0.0), 1.0)
        fac, previous = -fac, abs(term)
    return 1.0  # no convergence: x is so small that Q is 1 to any precision that matters


def ks(reference: Sequence[float], current: Sequence[float]) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov on binned data: (statistic, asymptotic p-value).

    The statistic is the largest gap between the two binned CDFs, checked only at bin edges, so on
    coarse bins it is a lower bound of the unbinned KS statistic and the p-value an upper bound:
    conservative (drift is reported less often, never more). n and m are the sample counts.
    """
    ref, cur = _pair(reference, current)
    n, m = float(ref.sum()), float(cur.sum())
    statistic = float(np.max(np.abs(np.cumsum(ref) / n - np.cumsum(cur) / m)))
    en = math.sqrt(n * m / (n + m))
    return statistic, kolmogorov_q((en + 0.12 + 0.11 / en) * statistic)


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances; rounding noise of the expansion (identical rows) is set to exactly 0."""
    na, nb = (a * a).sum(1)[:, None], (b * b).sum(1)[None, :]
    d = na + nb - 2.0 * (a @ b.T)
    d[d <= 1e-9 * (na + nb)] = 0.0
    return d


def mmd2(x: np.ndarray, y: np.ndarray, max_samples: int = 1000, seed: int = 0) -> float:
    """Unbiased MMD^2 with an RBF kernel, gamma = 1 / median(pairwise distance)^2 (Evidently's `mmd()`).

    As in Evidently, the median is over the distances between the reference and the current rows, and
    a negative estimate is reported as 0. Unlike Evidently, each side is first subsampled to at most
    `max_samples` rows (seeded) so the kernel matrices stay small: 10k vs 10k costs the same as 1k vs 1k.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"mmd2 needs two 2-D arrays with the same number of columns (got {x.shape} and {y.shape})")
    if len(x) < 2 or len(y) < 2:
        return 0.0
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("mmd2: vectors must be finite")
    rng = np.random.default_rng(seed)
    if len(x) > max_samples:
        x = x[rng.choice(len(x), max_samples, replace=False)]
    if len(y) > max_samples:
        y = y[rng.choice(len(y), max_samples, replace=False)]
    dxy = _sq_dists(x, y)
    median = float(np.median(np.sqrt(dxy)))
    if median == 0.0:
        positive = dxy[dxy > 0]
        if positive.size == 0:
            return 0.0  # every row identical on both sides
        median = float(np.median(np.sqrt(positive)))
    gamma = 1.0 / (median * median)
    m, n = len(x), len(y)
    kxx = np.exp(-gamma * _sq_dists(x, x))
    kyy = np.exp(-gamma * _sq_dists(y, y))
    value = (
        (kxx.sum() - np.trace(kxx)) / (m * (m - 1.0))
        + (kyy.sum() - np.trace(kyy)) / (n * (n - 1.0))
        - 2.0 * np.exp(-gamma * dxy).mean()
    )
    return max(float(value), 0.0)


def compare_bins(
    feature: str,
    reference: Sequence[float],
    current: Sequence[float],
    thresholds: Mapping[str, float] = THRESHOLDS,
) -> list[Score]:
    """The three binned tests for one feature; [] when either side has no data to compare."""
    ref, cur = _counts(reference, "reference"), _counts(current, "current")
    if ref.shape != cur.shape:
        raise ValueError(f"{feature}: reference has {ref.size} bins, current has {cur.size}")
    if ref.sum() <= 0 or cur.sum() <= 0:
        return []
    psi_value = psi(ref, cur)
    js_value = jensenshannon(ref, cur)
    statistic, p_value = ks(ref, cur)
    return [
        Score(feature, "psi", psi_value, psi_value >= thresholds["psi"]),
        Score(feature, "jensenshannon", js_value, js_value >= thresholds["jensenshannon"]),
        Score(feature, "ks", statistic, p_value <= thresholds["ks"]),
    ]
