"""One drift run: every model's current window against its reference, for both sources.

- histogram source: each configured length histogram (from Prometheus), current window vs the
  same window `reference_offset_seconds` ago, or the model's pinned reference;
- samples source: the sketches of `POST /v1/samples`, current window vs the same window
  `samples.reference_offset_seconds` ago (if still held), or the pinned reference.
A window with fewer than `min_samples` requests is counted but not scored. Pure of scheduling:
the collector's thread calls `run(now)` and keeps the last `Outcome`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from inferwatch.config import DriftExporterConfig
from inferwatch.exporters.drift.histograms import Distribution, HistogramSource, aligned, feature_name
from inferwatch.exporters.drift.references import Reference, ReferenceError, ReferenceStore
from inferwatch.exporters.drift.samples import SampleWindows
from inferwatch.exporters.drift.sketch import WindowSketch, compare
from inferwatch.exporters.drift.stats import compare_bins
from inferwatch.kit.httpclient import FetchError

log = logging.getLogger(__name__)

OFFSET = "offset"  # the reference_info value when no reference is pinned


@dataclass(frozen=True)
class Result:
    model: str
    source: str  # histogram | samples
    feature: str
    method: str
    score: float
    drifted: bool


@dataclass
class Outcome:
    results: list[Result] = field(default_factory=list)
    samples: dict[tuple[str, str, str, str], float] = field(default_factory=dict)  # (model, source, feature, window)
    references: dict[str, str] = field(default_factory=dict)  # model -> pinned name or OFFSET
    reference_errors: dict[str, str] = field(default_factory=dict)  # reference name -> problem
    prometheus_up: bool | None = None  # None: no Prometheus configured
    errors: list[tuple[str, Exception]] = field(default_factory=list)  # (stage, error) for self-metrics


class DriftJob:
    def __init__(self, config: DriftExporterConfig, windows: SampleWindows):
        self.config, self.windows = config, windows
        self.thresholds = vars(config.thresholds)
        self.source = (
            HistogramSource(
                config.prometheus_url,
                config.model_label,
                config.selector,
                config.query_timeout_seconds,
                config.max_models,
            )
            if config.prometheus_url
            else None
        )
        self.store = ReferenceStore(config.references_dir) if config.references_dir else None
        self._signature: tuple | None = None
        self._pins: dict[str, str] = {}
        self._loaded: dict[str, Reference] = {}
        self._errors: dict[str, str] = {}

    def run(self, now: float) -> Outcome:
        outcome = Outcome()
        self._load_references(outcome)
        if self.source is not None:
            self._histograms(now, outcome)
        self._samples(now, outcome)
        return outcome

    def _load_references(self, outcome: Outcome) -> None:
        if self.store is None:
            return
        signature = self.store.signature()
        if signature != self._signature:
            self._signature, self._loaded, self._errors = signature, {}, {}
            try:
                self._pins = self.store.pins()
            except ReferenceError as exc:
                self._pins, self._errors["pins"] = {}, str(exc)
            for name in sorted(set(self._pins.values())):
                try:
                    self._loaded[name] = self.store.load(name)
                except ReferenceError as exc:
                    self._errors[name] = str(exc)
                    log.error("drift reference %s cannot be used: %s", name, exc)
        outcome.reference_errors = dict(self._errors)

    def _pinned(self, model: str) -> Reference | bool | None:
        """The model's pinned reference, None if it has none, False if its reference is broken."""
        name = self._pins.get(model)
        if name is None:
            return None
        return self._loaded.get(name, False)

    def _histograms(self, now: float, outcome: Outcome) -> None:
        assert self.source is not None
        config = self.config
        try:
            for histogram in config.histograms:
                feature = feature_name(histogram)
                current = self.source.distributions(histogram, config.window_seconds, now, config.models or None)
                lagged = self.source.distributions(
                    histogram, config.window_seconds, now - config.reference_offset_seconds, list(current) or None
                )
                for model, cur in current.items():
                    pinned = self._pinned(model)
                    outcome.references[model] = self._pins.get(model, OFFSET)
                    if pinned is False:
                        continue
                    ref = pinned.histograms.get(model, {}).get(feature) if pinned else lagged.get(model)
                    self._score(outcome, model, "histogram", feature, cur, ref)
            outcome.prometheus_up = True
        except FetchError as exc:
            outcome.prometheus_up = False
            outcome.errors.append(("query", exc))
            log.warning("drift: Prometheus query failed: %s", exc)

    def _score(
        self, outcome: Outcome, model: str, source: str, feature: str, cur: Distribution, ref: Distribution | None
    ) -> None:
        outcome.samples[(model, source, feature, "current")] = cur.total
        outcome.samples[(model, source, feature, "reference")] = ref.total if ref else 0.0
        if ref is None or min(cur.total, ref.total) < self.config.min_samples:
            return
        ref, cur = aligned(ref, cur)
        for score in compare_bins(feature, ref.counts, cur.counts, self.thresholds):
            outcome.results.append(Result(model, source, feature, score.method, score.score, score.drifted))

    def _samples(self, now: float, outcome: Outcome) -> None:
        samples = self.config.samples
        for model in self.windows.models():
            current = self.windows.window(model, now - samples.window_seconds, now)
            pinned = self._pinned(model)
            outcome.references.setdefault(model, self._pins.get(model, OFFSET))
            if pinned is False:
                continue
            if pinned:
                stored = pinned.samples.get(model)
                reference = WindowSketch.from_json(stored) if stored is not None else None
            else:
                end = now - samples.reference_offset_seconds
                reference = self.windows.window(model, end - samples.window_seconds, end)
            self._compare_sketches(outcome, model, current, reference)

    def _compare_sketches(
        self, outcome: Outcome, model: str, current: WindowSketch, reference: WindowSketch | None
    ) -> None:
        """Scores for the features both windows hold at least `min_samples` values of."""
        reference = reference or WindowSketch(current.dim)
        sides = {"current": current, "reference": reference}
        held: dict[str, dict[str, float]] = {}
        for window, sketch in sides.items():
            held[window] = {feature: float(bins.sum()) for feature, bins in sketch.counts.items()}
            held[window].update({f: float(sum(c.values())) for f, c in sketch.categories.items() if c})
            held[window]["embedding"] = float(sketch.reservoir.seen)
        for feature in held["current"].keys() | held["reference"].keys():
            for window in sides:
                outcome.samples[(model, "samples", feature, window)] = held[window].get(feature, 0.0)
        enough = {f for f in held["current"]
                  if min(held["current"][f], held["reference"].get(f, 0.0)) >= self.config.min_samples}
        if not enough:
            return
        for score in compare(reference, current, self.thresholds):
            if score.feature in enough:
                outcome.results.append(Result(model, "samples", score.feature, score.method, score.score,
                                              score.drifted))
