"""The feedback service's counts: what its /metrics shows, bounded in series, thread-safe.

A batch is checked against the cardinality bounds before anything is counted, so it is counted
whole or not at all. Models beyond `max_models` and unlisted categories beyond a score's
`max_categories` reject the batch; versions beyond `max_versions_per_model` count as "other"
(an old model's history is worth less than refusing its feedback).
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from prometheus_client.samples import Exemplar

from inferwatch.config import FeedbackScoreConfig, FeedbackServerConfig
from inferwatch.exporters.feedback.schema import Feedback, Rejected

EXEMPLAR_ID_CHARS = 64  # OpenMetrics caps an exemplar's labels at 128 characters in all
OTHER = "other"


def polarity(score: FeedbackScoreConfig, value: bool | float | str) -> str:
    if score.type == "boolean":
        return "negative" if value == score.negative_value else "positive"
    if score.type == "numeric":
        if score.negative_below is not None and value < score.negative_below:  # type: ignore[operator]
            return "negative"
        if score.positive_from is not None and value >= score.positive_from:  # type: ignore[operator]
            return "positive"
        return "neutral"
    return "negative" if value in score.negative else "positive" if score.categories else "neutral"


def value_label(score: FeedbackScoreConfig, value: bool | float | str) -> str:
    if score.type == "boolean":
        return "true" if value else "false"
    return "numeric" if score.type == "numeric" else str(value)


@dataclass
class Histogram:
    bounds: list[float]
    buckets: list[float]  # per bound, non-cumulative; the last is +Inf
    sum: float = 0.0
    exemplars: dict[int, Exemplar] = field(default_factory=dict)

    @classmethod
    def empty(cls, bounds: Sequence[float]) -> Histogram:
        return cls(list(bounds), [0.0] * (len(bounds) + 1))

    def observe(self, value: float, exemplar: Exemplar) -> None:
        index = bisect.bisect_left(self.bounds, value)  # le: a value equal to a bound falls in its bucket
        self.buckets[index] += 1
        self.sum += value
        self.exemplars[index] = exemplar


@dataclass(frozen=True)
class Accepted:
    """One counted item, with its labels resolved (what the negative store keeps)."""

    feedback: Feedback
    version: str
    polarity: str


Planned = tuple[Feedback, Accepted, tuple, tuple]  # item, its labels, its counter key, its histogram key


class FeedbackCounts:
    def __init__(self, config: FeedbackServerConfig):
        self.config = config
        self.scores = {s.name: s for s in config.scores}
        self.bounds = {s.name: s.histogram_buckets() for s in config.scores if s.type == "numeric"}
        self._lock = threading.Lock()
        self.totals: dict[tuple[str, str, str, str, str], list] = {}  # labels -> [count, exemplar]
        self.histograms: dict[tuple[str, str, str], Histogram] = {}
        self.comments: dict[tuple[str, str, str], float] = {}
        self.last_received: dict[str, float] = {}
        self.categories: dict[str, set[str]] = {s.name: set(s.categories) for s in config.scores}
        self.versions: dict[str, set[str]] = {}

    def plan(self, items: Sequence[Feedback], versions: Sequence[str]) -> list[Planned]:
        """What counting a batch would do (`versions[i]` is item i's resolved version), or Rejected.
        Changes nothing: the caller stores the batch, then `commit`s the plan (one ingest at a time)."""
        with self._lock:
            self._check_bounds(items)
            return [self._plan(item, version) for item, version in zip(items, versions, strict=True)]

    def commit(self, planned: Sequence[Planned], now: float) -> None:
        with self._lock:
            for item, accepted, key, short in planned:  # plain dict updates only: nothing here can fail halfway
                score = self.scores[item.score]
                self.versions[item.model].add(accepted.version)
                if score.type == "categorical":
                    self.categories[score.name].add(str(item.value))
                for sibling in self._siblings(score, short):  # at 0 from the first scrape: increase() sees event 1
                    self.totals.setdefault(sibling, [0.0, None])
                exemplar = Exemplar({"request_id": item.request_id[:EXEMPLAR_ID_CHARS]}, 1.0, now)
                entry = self.totals.setdefault(key, [0.0, None])
                entry[0] += 1
                entry[1] = exemplar
                if score.type == "numeric":
                    histogram = self.histograms.get(short)
                    if histogram is None:
                        histogram = self.histograms[short] = Histogram.empty(self.bounds[score.name])
                    histogram.observe(float(item.value), Exemplar(exemplar.labels, float(item.value), now))
                if item.has_comment:
                    self.comments[short] = self.comments.get(short, 0.0) + 1
                self.last_received[item.model] = now

    @staticmethod
    def _siblings(score: FeedbackScoreConfig, short: tuple[str, str, str]) -> list[tuple[str, str, str, str, str]]:
        """Every (value, polarity) series a score can produce, where the set is known: a model version's
        first negative rating then moves a series that already existed at 0."""
        if score.type == "boolean":
            values: list[bool | float | str] = [True, False]
        elif score.type == "categorical":
            values = list(score.categories)
        else:
            values = [score.min, score.max] + [v for v in (score.negative_below, score.positive_from) if v is not None]
        return [(*short, value_label(score, v), polarity(score, v)) for v in values]

    def _plan(self, item: Feedback, version: str) -> Planned:
        score = self.scores[item.score]
        known = self.versions.setdefault(item.model, set())
        if version not in known and len(known) >= self.config.max_versions_per_model:
            version = OTHER
        side = polarity(score, item.value)
        key = (item.model, version, score.name, value_label(score, item.value), side)
        return item, Accepted(item, version, side), key, (item.model, version, score.name)

    def _check_bounds(self, items: Sequence[Feedback]) -> None:
        models = set(self.versions)
        new_categories: dict[str, set[str]] = {}
        for i, item in enumerate(items):
            if item.model not in models:
                if len(models) >= self.config.max_models:
                    raise Rejected("cardinality", f"feedback[{i}].model: {item.model!r} would be model number "
                                                  f"{len(models) + 1}; max_models is {self.config.max_models}")
                models.add(item.model)
            score = self.scores[item.score]
            if score.type == "categorical" and not score.categories:
                seen = self.categories[score.name] | new_categories.setdefault(score.name, set())
                if item.value not in seen:
                    if len(seen) >= score.max_categories:
                        raise Rejected("cardinality", f"feedback[{i}].value: {str(item.value)[:64]!r} would be "
                                                      f"category number {len(seen) + 1} of score {score.name!r}; "
                                                      f"its max_categories is {score.max_categories}")
                    new_categories[score.name].add(str(item.value))

    def snapshot(self) -> tuple[dict, dict, dict, dict]:
        """Copies for rendering, taken under the lock."""
        with self._lock:
            totals = {k: (v[0], v[1]) for k, v in self.totals.items()}
            histograms = {k: Histogram(h.bounds, list(h.buckets), h.sum, dict(h.exemplars))
                          for k, h in self.histograms.items()}
            return totals, histograms, dict(self.comments), dict(self.last_received)
