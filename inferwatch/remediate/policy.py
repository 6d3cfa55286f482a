"""When an allow-listed action may run: once per notification, at most N an hour, not again too soon.

Alertmanager re-sends a firing group every repeat_interval (and on every group change), so the
same alert reaches us many times; only the first may act (idempotency key: action, fingerprint,
status, startsAt). An action that does reach its target must not flap it: a per-action sliding
hour caps runs, and a cool-down keeps the same action off the same alert labels for a while.
Everything is in memory and bounded; a restart forgets the keys (the cool-downs too). Pure: the
clock is passed in, so tests drive time by hand.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

MAX_KEYS = 10_000  # idempotency keys remembered (LRU)
MAX_COOLDOWNS = 10_000  # (action, labels) cool-downs remembered
HOUR = 3600.0

DUPLICATE, RATE_LIMITED, COOLDOWN = "duplicate", "rate_limited", "cooldown"
PRECONDITION_FAILED = "precondition_failed"  # decided at run time (dispatch), counted with the others
SKIP_REASONS = (DUPLICATE, RATE_LIMITED, COOLDOWN, PRECONDITION_FAILED)

Key = tuple[str, str, str, str]  # action, fingerprint, status, startsAt


@dataclass(frozen=True)
class Limits:
    max_per_hour: int
    cooldown_seconds: float
    ignore_labels: frozenset[str] = frozenset()


def idempotency_key(action: str, fingerprint: str, status: str, starts_at: str) -> Key:
    return action, fingerprint, status, starts_at


def cooldown_group(labels: Mapping[str, str], ignore: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """The alert's identity for cool-down: its labels without the volatile ones (a new pod is the same outage)."""
    skip = set(ignore)
    return tuple(sorted((k, v) for k, v in labels.items() if k not in skip))


class Policy:
    """Admits or skips (action, alert) pairs. Thread-safe; `clock` returns seconds (monotonic)."""

    def __init__(self, limits: Mapping[str, Limits], clock: Callable[[], float] = time.monotonic,
                 max_keys: int = MAX_KEYS, max_cooldowns: int = MAX_COOLDOWNS):
        self.limits = dict(limits)
        self.clock = clock
        self.max_keys, self.max_cooldowns = max_keys, max_cooldowns
        self._lock = threading.Lock()
        self._seen: collections.OrderedDict[Key, None] = collections.OrderedDict()
        self._runs: dict[str, collections.deque[float]] = {name: collections.deque() for name in self.limits}
        self._cooldowns: collections.OrderedDict[tuple[str, tuple], float] = collections.OrderedDict()

    def admit(self, key: Key, labels: Mapping[str, str]) -> str | None:
        """None: the action may run now (and is recorded as run); else the skip reason.

        Only an admitted run records its key, so an alert skipped for rate or cool-down is
        reconsidered when Alertmanager re-sends it after the limit has passed.
        """
        action = key[0]
        limits = self.limits[action]
        group = (action, cooldown_group(labels, limits.ignore_labels))
        with self._lock:
            now = self.clock()
            if key in self._seen:
                self._seen.move_to_end(key)
                return DUPLICATE
            last = self._cooldowns.get(group)
            if last is not None and now - last < limits.cooldown_seconds:
                return COOLDOWN
            runs = self._runs[action]
            while runs and now - runs[0] >= HOUR:
                runs.popleft()
            if len(runs) >= limits.max_per_hour:
                return RATE_LIMITED
            runs.append(now)
            self._remember(key)
            if limits.cooldown_seconds > 0:
                self._cooldowns[group] = now
                self._cooldowns.move_to_end(group)
                while len(self._cooldowns) > self.max_cooldowns:
                    self._cooldowns.popitem(last=False)
            return None

    def _remember(self, key: Key) -> None:
        self._seen[key] = None
        while len(self._seen) > self.max_keys:
            self._seen.popitem(last=False)
