"""Bounded-memory summaries of a window of samples, mergeable and saveable as JSON.

Why fixed bin edges: a reference window captured last week and the current one must be binned the
same way to be compared or merged, so the edges are constants of this module, not fitted to data.
A window holds one count array per feature, capped category counts and a fixed-size reservoir of
shape vectors: its memory does not grow with the number of samples.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from inferwatch.exporters.drift.features import CATEGORICAL_FEATURES, CATEGORY_VALUES, NUMERIC_FEATURES, OTHER, Batch
from inferwatch.exporters.drift.stats import THRESHOLDS, Score, compare_bins, mmd2

FORMAT_VERSION = 1
MAX_CATEGORIES = 32  # distinct values kept per categorical feature, "other" included
MIN_VECTORS = 50  # per side, for the embedding test


def _log_edges(top: int) -> np.ndarray:
    """0, 1, 2, 4, ..., top: one bin per power of two, so lengths from 1 to `top` share the resolution."""
    return np.array([0.0, *(2.0**i for i in range(int(math.log2(top)) + 1))])


_RATIO_EDGES = np.linspace(0.0, 1.0, 21)
EDGES: dict[str, np.ndarray] = {
    "prompt_chars": _log_edges(65536),
    "prompt_words": _log_edges(16384),
    "prompt_lines": _log_edges(4096),
    "prompt_non_ascii_ratio": _RATIO_EDGES,
    "prompt_digit_ratio": _RATIO_EDGES,
    "prompt_upper_ratio": _RATIO_EDGES,
    "prompt_whitespace_ratio": _RATIO_EDGES,
    "prompt_code_blocks": _log_edges(64),
    "response_chars": _log_edges(65536),
    "response_words": _log_edges(16384),
    "response_lines": _log_edges(4096),
    "response_non_ascii_ratio": _RATIO_EDGES,
    "response_code_blocks": _log_edges(64),
}
assert set(EDGES) == set(NUMERIC_FEATURES)


def bin_counts(feature: str, values: np.ndarray) -> np.ndarray:
    """Counts of the finite values per bin of EDGES[feature]; values outside go to the outer bins."""
    edges = EDGES[feature]
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    index = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)
    return np.bincount(index, minlength=len(edges) - 1).astype(np.int64)


class Reservoir:
    """A uniform sample of at most `size` vectors out of all `seen` (Algorithm R, seeded)."""

    def __init__(self, size: int = 1000, dim: int = 32, seed: int = 0):
        if size < 1 or dim < 1:
            raise ValueError("reservoir size and dim must be >= 1")
        self.size, self.dim, self.seed = size, dim, seed
        self.seen = 0
        self._filled = 0  # min(seen, size), except after merging two reservoirs that held fewer than size together
        self._buffer = np.zeros((size, dim), dtype=np.float32)
        self._rng = np.random.default_rng(seed)

    @property
    def vectors(self) -> np.ndarray:
        """The kept vectors, (at most size, dim); a view, do not modify."""
        return self._buffer[: self._filled]

    def add(self, vectors: np.ndarray) -> None:
        """Offer vectors in order; rows with any NaN are not samples (no embedding) and are skipped."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.size == 0:
            return
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"expected vectors of shape (n, {self.dim}), got {vectors.shape}")
        vectors = vectors[~np.isnan(vectors).any(axis=1)]
        if not len(vectors):
            return
        room = min(self.size - self._filled, len(vectors))  # free slots are filled first (t < size in Algorithm R)
        self._buffer[self._filled : self._filled + room] = vectors[:room]
        self._filled += room
        if room < len(vectors):
            t = self.seen + np.arange(room, len(vectors), dtype=np.int64)  # 0-based positions in the stream
            slots = self._rng.integers(0, t + 1)  # item t replaces slot j when j < size
            keep = slots < self.size
            slots, items = slots[keep], vectors[room:][keep]
            # Several items may hit one slot: the last one wins, as in the sequential algorithm.
            _, last = np.unique(slots[::-1], return_index=True)
            last = len(slots) - 1 - last
            self._buffer[slots[last]] = items[last]
        self.seen += len(vectors)

    def merge(self, other: Reservoir) -> Reservoir:
        """A reservoir for the union: each side contributes in proportion to how many vectors it has seen."""
        if other.dim != self.dim:
            raise ValueError(f"cannot merge reservoirs of dim {self.dim} and {other.dim}")
        out = Reservoir(self.size, self.dim, self.seed + 1 + self.seen + other.seen)
        a, b = self.vectors, other.vectors
        total = self.seen + other.seen
        if total == 0:
            return out
        keep = min(self.size, len(a) + len(b))
        if self.seen == len(a) and other.seen == len(b) and keep == len(a) + len(b):
            chosen = np.concatenate([a, b])  # nothing was dropped on either side: the union itself
        else:
            from_a = round(keep * self.seen / total)
            from_a = min(max(from_a, keep - len(b)), len(a))
            rng = out._rng
            chosen = np.concatenate(
                [
                    a[rng.choice(len(a), from_a, replace=False)],
                    b[rng.choice(len(b), keep - from_a, replace=False)],
                ]
            )
            chosen = chosen[rng.permutation(len(chosen))]
        out._buffer[: len(chosen)] = chosen
        out._filled, out.seen = len(chosen), total
        return out

    @classmethod
    def restore(cls, size: int, dim: int, seed: int, seen: int, vectors: np.ndarray) -> Reservoir:
        """Rebuild from saved state; the generator restarts from (seed, seen), deterministically."""
        out = cls(size, dim, seed)
        out._buffer[: len(vectors)] = vectors
        out._filled, out.seen = len(vectors), seen
        out._rng = np.random.default_rng([seed, seen])
        return out


def _merge_category(into: dict[str, int], value: str, count: int) -> None:
    if value in into or len(into) < MAX_CATEGORIES - 1 or (value == OTHER and len(into) < MAX_CATEGORIES):
        into[value] = into.get(value, 0) + count
    else:
        into[OTHER] = into.get(OTHER, 0) + count


class WindowSketch:
    """Everything drift needs to know about a window of samples, in fixed-size arrays."""

    def __init__(self, dim: int = 32, reservoir_size: int = 1000, seed: int = 0):
        self.dim = dim
        self.count = 0
        self.counts: dict[str, np.ndarray] = {f: np.zeros(len(EDGES[f]) - 1, dtype=np.int64) for f in NUMERIC_FEATURES}
        self.categories: dict[str, dict[str, int]] = {f: {} for f in CATEGORICAL_FEATURES}
        self.reservoir = Reservoir(reservoir_size, dim, seed)

    @property
    def vectors(self) -> np.ndarray:
        return self.reservoir.vectors

    def add(self, batch: Batch) -> None:
        n = len(batch)
        for feature, values in batch.numeric.items():
            if feature not in self.counts:
                raise ValueError(f"unknown numeric feature {feature!r}")
            if len(values) != n:
                raise ValueError(f"{feature}: {len(values)} values for {n} samples")
            self.counts[feature] += bin_counts(feature, values)
        for feature, labels in batch.categorical.items():
            if feature not in self.categories:
                raise ValueError(f"unknown categorical feature {feature!r}")
            tally: dict[str, int] = {}
            for label in labels:
                if label:
                    tally[label] = tally.get(label, 0) + 1
            for label, count in tally.items():
                _merge_category(self.categories[feature], label, count)
        self.reservoir.add(batch.vectors)
        self.count += n

    def merge(self, other: WindowSketch) -> WindowSketch:
        """A new sketch of both windows; neither input changes."""
        if other.dim != self.dim:
            raise ValueError(f"cannot merge sketches of dim {self.dim} and {other.dim}")
        out = WindowSketch(self.dim, self.reservoir.size, self.reservoir.seed)
        out.count = self.count + other.count
        out.counts = {f: self.counts[f] + other.counts[f] for f in NUMERIC_FEATURES}
        for feature in CATEGORICAL_FEATURES:
            merged = dict(self.categories[feature])
            for label, count in other.categories[feature].items():
                _merge_category(merged, label, count)
            out.categories[feature] = merged
        out.reservoir = self.reservoir.merge(other.reservoir)
        return out

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types only; vectors are float32 values, so a round trip is exact."""
        return {
            "version": FORMAT_VERSION,
            "dim": self.dim,
            "count": self.count,
            "edges": {f: EDGES[f].tolist() for f in NUMERIC_FEATURES},
            "counts": {f: self.counts[f].tolist() for f in NUMERIC_FEATURES},
            "categories": {f: dict(sorted(c.items())) for f, c in self.categories.items()},
            "reservoir": {
                "size": self.reservoir.size,
                "seed": self.reservoir.seed,
                "seen": self.reservoir.seen,
                "vectors": self.reservoir.vectors.tolist(),
            },
        }

    @classmethod
    def from_json(cls, data: dict) -> WindowSketch:
        """Validate and load; any problem raises ValueError("<dotted key>: <problem>")."""
        return _load(data)


def _mapping(value: object, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{key}: expected an object")
    return value


def _int(value: object, key: str, minimum: int = 0) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key}: expected an integer")
    if value < minimum:
        raise ValueError(f"{key}: must be >= {minimum}")
    return value


def _exact_keys(value: Mapping[str, Any], expected: tuple[str, ...] | set[str], key: str) -> None:
    missing = [k for k in expected if k not in value]
    if missing:
        raise ValueError(f"{key}.{missing[0]}: missing")
    extra = [k for k in value if k not in expected]
    if extra:
        raise ValueError(f"{key}.{str(extra[0])[:64]}: unknown key")


def _load(data: object) -> WindowSketch:
    top = _mapping(data, "sketch")
    _exact_keys(top, ("version", "dim", "count", "edges", "counts", "categories", "reservoir"), "sketch")
    if top["version"] != FORMAT_VERSION:
        raise ValueError(f"version: unsupported sketch format {top['version']!r} (expected {FORMAT_VERSION})")
    dim = _int(top["dim"], "dim", 1)
    count = _int(top["count"], "count")
    edges = _mapping(top["edges"], "edges")
    _exact_keys(edges, NUMERIC_FEATURES, "edges")
    for feature in NUMERIC_FEATURES:
        saved = edges[feature]
        if (
            not isinstance(saved, list)
            or len(saved) != len(EDGES[feature])
            or not all(isinstance(e, int | float) and not isinstance(e, bool) for e in saved)
        ):
            raise ValueError(f"edges.{feature}: expected a list of {len(EDGES[feature])} numbers")
        if not np.array_equal(np.asarray(saved, dtype=float), EDGES[feature]):
            raise ValueError(f"edges.{feature}: bin edges differ from this version's; the window is not comparable")
    counts_in = _mapping(top["counts"], "counts")
    _exact_keys(counts_in, NUMERIC_FEATURES, "counts")
    counts: dict[str, np.ndarray] = {}
    for feature in NUMERIC_FEATURES:
        values, bins = counts_in[feature], len(EDGES[feature]) - 1
        key = f"counts.{feature}"
        if not isinstance(values, list) or len(values) != bins:
            raise ValueError(f"{key}: expected a list of {bins} counts")
        counts[feature] = np.array([_int(v, f"{key}[{i}]") for i, v in enumerate(values)], dtype=np.int64)
        if counts[feature].sum() > count:
            raise ValueError(f"{key}: holds {counts[feature].sum()} samples, more than count ({count})")
    categories_in = _mapping(top["categories"], "categories")
    _exact_keys(categories_in, CATEGORICAL_FEATURES, "categories")
    categories: dict[str, dict[str, int]] = {}
    for feature in CATEGORICAL_FEATURES:
        labels = _mapping(categories_in[feature], f"categories.{feature}")
        if len(labels) > MAX_CATEGORIES:
            raise ValueError(f"categories.{feature}: more than {MAX_CATEGORIES} values")
        for label in labels:
            if label not in CATEGORY_VALUES[feature]:
                raise ValueError(f"categories.{feature}: unknown value {str(label)[:64]!r}")
        categories[feature] = {label: _int(c, f"categories.{feature}.{label}") for label, c in labels.items()}
    res = _mapping(top["reservoir"], "reservoir")
    _exact_keys(res, ("size", "seed", "seen", "vectors"), "reservoir")
    size, seed, seen = _int(res["size"], "reservoir.size", 1), _int(res["seed"], "reservoir.seed"), 0
    seen = _int(res["seen"], "reservoir.seen")
    rows = res["vectors"]
    if not isinstance(rows, list) or len(rows) > min(seen, size):
        raise ValueError(f"reservoir.vectors: expected a list of at most min(seen, size) = {min(seen, size)} vectors")
    vectors = np.zeros((len(rows), dim), dtype=np.float32)
    for i, row in enumerate(rows):
        key = f"reservoir.vectors[{i}]"
        if not isinstance(row, list) or len(row) != dim:
            raise ValueError(f"{key}: expected a list of {dim} numbers (dim)")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in row):
            raise ValueError(f"{key}: expected numbers")
        vectors[i] = row
        if not np.all(np.isfinite(vectors[i])):
            raise ValueError(f"{key}: values must be finite")
    sketch = WindowSketch(dim, size, seed)
    sketch.count, sketch.counts, sketch.categories = count, counts, categories
    sketch.reservoir = Reservoir.restore(size, dim, seed, seen, vectors)
    return sketch


def compare(
    reference: WindowSketch, current: WindowSketch, thresholds: Mapping[str, float] = THRESHOLDS
) -> list[Score]:
    """Every test that has data on both sides: three per numeric and categorical feature, MMD on the vectors."""
    scores: list[Score] = []
    for feature in NUMERIC_FEATURES:
        scores += compare_bins(feature, reference.counts[feature], current.counts[feature], thresholds)
    for feature in CATEGORICAL_FEATURES:
        ref, cur = reference.categories.get(feature, {}), current.categories.get(feature, {})
        labels = sorted(set(ref) | set(cur))
        if labels:
            ref_counts, cur_counts = [ref.get(x, 0) for x in labels], [cur.get(x, 0) for x in labels]
            scores += compare_bins(feature, ref_counts, cur_counts, thresholds)
    if len(reference.vectors) >= MIN_VECTORS and len(current.vectors) >= MIN_VECTORS:
        value = mmd2(reference.vectors, current.vectors)
        scores.append(Score("embedding", "mmd", value, value >= thresholds["mmd"]))
    return scores
