"""Per-model sample windows for text drift: sketches per time slot, never text, bounded.

Each model keeps one `WindowSketch` per `slot_seconds` for `retention_seconds`; a window is the
merge of the slots in it, so the current window, the same window a day ago, and a reference
captured from any range still held all come from the same data. A slot's reservoir holds its
share of the window's (`reservoir_size * slot / window`, at least 100), so a merged window holds
about `reservoir_size` vectors. Memory: max_models x slots x (bins + per-slot vectors x 128 bytes),
fixed: with the defaults 16 x 150 x (2 KB + 21 KB), at most about 55 MB.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict

from inferwatch.config import DriftSamplesConfig
from inferwatch.exporters.drift.features import Batch
from inferwatch.exporters.drift.sketch import WindowSketch

DIM = 32
MIN_SLOT_VECTORS = 100


class TooManyModels(Exception):
    """A batch for a model beyond `max_models`."""


class SampleWindows:
    def __init__(self, config: DriftSamplesConfig, dim: int = DIM):
        self.config, self.dim = config, dim
        # A slot's share of the window's vectors, but never under MIN_SLOT_VECTORS: a burst inside
        # one slot still leaves enough for the MMD test.
        share = math.ceil(config.reservoir_size * config.slot_seconds / config.window_seconds)
        self.slot_reservoir = min(config.reservoir_size, max(MIN_SLOT_VECTORS, share))
        self._slots: dict[str, OrderedDict[int, WindowSketch]] = {}
        self._lock = threading.Lock()

    def add(self, model: str, batch: Batch, now: float) -> None:
        slot = int(now // self.config.slot_seconds)
        with self._lock:
            slots = self._slots.get(model)
            if slots is None:
                if len(self._slots) >= self.config.max_models:
                    raise TooManyModels(
                        f"model: {model!r} would be model number {len(self._slots) + 1}; "
                        f"drift_exporter.samples.max_models is {self.config.max_models}"
                    )
                slots = self._slots[model] = OrderedDict()
            sketch = slots.get(slot)
            if sketch is None:
                sketch = slots[slot] = WindowSketch(self.dim, self.slot_reservoir, seed=slot)
            sketch.add(batch)
            self._prune(slots, now)

    def _prune(self, slots: OrderedDict[int, WindowSketch], now: float) -> None:
        oldest = int((now - self.config.retention_seconds) // self.config.slot_seconds)
        for slot in [s for s in slots if s < oldest]:
            del slots[slot]

    def models(self) -> list[str]:
        with self._lock:
            return sorted(self._slots)

    def window(self, model: str, start: float, end: float) -> WindowSketch:
        """The merge of the model's slots that start in [start, end); empty if none."""
        first, last = math.ceil(start / self.config.slot_seconds), math.ceil(end / self.config.slot_seconds)
        with self._lock:
            chosen = [s for slot, s in self._slots.get(model, {}).items() if first <= slot < last]
            merged = WindowSketch(self.dim, self.config.reservoir_size)
            for sketch in chosen:
                merged = merged.merge(sketch)
            return merged
