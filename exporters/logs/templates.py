"""Error lines reduced to templates, and the most frequent templates per source in bounded memory.

`template()` is Drain's preprocessing without its parse tree: the variable parts of a line
(timestamps, the logger prefix, quoted strings, ids, paths, addresses, hex, durations, numbers and
any word holding a digit) are masked, so the same problem at another time, request or rank is
the same text. Masking alone cannot merge two lines differing in a plain word; in practice engine
messages keep their wording and put the variables in numbers, ids and quotes.

`TemplateStore` keeps at most `max_per_source` templates per source with the Space-Saving rule
(Metwally et al. 2005): a new template arriving at a full source replaces the least-counted one
and inherits its count, recorded as `error_bound`, so counts are over-estimates by at most that
much and every template seen more than N/max_per_source times is guaranteed to be kept.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from dataclasses import dataclass

from inferwatch.exporters.logs import privacy

MAX_TEMPLATE_CHARS = 400  # a template is a label-like key: long tails are cut, keeping memory bounded

# The prefixes engines put before the message: compose `name  | `, vLLM `(EngineCore_0 pid=12) `,
# `ERROR 12-02 13:05:01 [engine.py:123] `, TGI `2023-08-17T10:23:27.032737Z ERROR target: `,
# SGLang `[2025-02-21 22:59:28 TP0] `, torch `[rank0]:[E1202 13:05:01.123 ProcessGroupNCCL.cpp:607] `.
_PREFIX = re.compile(
    r"(?:[\w.-]+\s+\|\s)?\s*(?:\([^()]{0,80}\)\s)?(?:\[rank\d+\]:)?"
    r"(?:\d{4}-\d\d-\d\d[T ][\d:.,]+Z?\s+|\[\d{4}-\d\d-\d\d [\d:.,]+(?: [\w ]+)?\]\s)?"
    r"(?:(?:DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL)(?::?\s+\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? \[[^\]]*\] "
    r"|:\s+| (?:[\w:-]+: )+| ))?"
)
_MASKS = (
    (re.compile(r"\b\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?Z?|\b\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?"), "<time>"),
    (re.compile(r"""(?<!\w)'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|`[^`]*`"""), "<str>"),
    (re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"), "<id>"),
    (re.compile(r"\b(?:cmpl|chatcmpl|req|resp|embd|batch|tok|run)-[\w-]+"), "<id>"),
    (re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b|\[[0-9a-fA-F:]*::[0-9a-fA-F:]*\](?::\d+)?"), "<ip>"),
    (re.compile(r"\b[a-z][a-z0-9+.-]*://\S+"), "<url>"),
    (re.compile(r"(?<![\w/<>])(?:[A-Za-z]:)?(?:/[\w.@+~%-]+)+/?"), "<path>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b|\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{8,}\b"), "<hex>"),
    (re.compile(r"\b\d+(?:\.\d+)?\s?(?:ms|us|µs|ns|s|sec|secs|seconds|min|mins|minutes|h|hours)\b"), "<dur>"),
    (re.compile(r"(?<![\w<])[-+]?\d+(?:[.,]\d+)*(?:[eE][-+]?\d+)?%?(?![\w>])"), "<num>"),
    (re.compile(r"\b[A-Za-z_]*\d[\w]*\b"), "<*>"),
    (re.compile(r"\s+"), " "),
)


def template(line: str) -> str:
    """The line with its variable parts masked and its prefix stripped; prompt text never survives."""
    line = privacy.redact(line)[0]
    line = line[_PREFIX.match(line).end():]
    for pattern, mask in _MASKS:
        line = pattern.sub(mask, line)
    return line.strip()[:MAX_TEMPLATE_CHARS]


@dataclass
class TemplateStats:
    template: str
    klass: str
    severity: str
    count: int
    first_seen: float
    last_seen: float
    new_in_version: str | None = None
    error_bound: int = 0  # Space-Saving: count may over-estimate by this much (inherited on eviction)


@dataclass
class _Source:
    templates: dict[str, TemplateStats] = dataclasses.field(default_factory=dict)
    version: str | None = None
    changed: bool = False  # the current version replaced an earlier one


class TemplateStore:
    """Top templates per source with counts, first/last seen and "new since the version changed"."""

    def __init__(self, max_per_source: int = 200):
        if max_per_source < 1:
            raise ValueError("max_per_source must be at least 1")
        self.max_per_source = max_per_source
        self._sources: dict[str, _Source] = {}
        self._lock = threading.Lock()

    def set_version(self, source: str, version: str, at: float) -> None:
        """The model version `source` serves; a change makes templates first seen afterwards new in it.

        `at` is when the version was observed; templates are judged by when they are first added,
        so a caller should set the version before feeding lines logged after it.
        """
        with self._lock:
            state = self._sources.setdefault(source, _Source())
            if state.version is not None and version != state.version:
                state.changed = True
            state.version = version

    def add(self, source: str, template: str, klass: str, severity: str, now: float) -> tuple[TemplateStats, bool]:
        """Count one occurrence: (a copy of the template's stats, whether the store had not held it)."""
        with self._lock:
            state = self._sources.setdefault(source, _Source())
            stats = state.templates.get(template)
            if stats is not None:
                stats.count += 1
                stats.last_seen = now
                stats.klass, stats.severity = klass, severity
                return dataclasses.replace(stats), False
            floor = 0
            if len(state.templates) >= self.max_per_source:
                victim = min(state.templates.values(), key=lambda s: (s.count, s.last_seen))
                del state.templates[victim.template]
                floor = victim.count
            stats = TemplateStats(template, klass, severity, floor + 1, now, now,
                                  state.version if state.changed else None, floor)
            state.templates[template] = stats
            return dataclasses.replace(stats), True

    def top(self, source: str | None = None, n: int = 20) -> list[TemplateStats]:
        """The n most counted templates of one source (or of all), most counted first."""
        with self._lock:
            if source is None:
                pool = [s for state in self._sources.values() for s in state.templates.values()]
            else:
                state = self._sources.get(source)
                pool = list(state.templates.values()) if state else []
            ranked = sorted(pool, key=lambda s: (-s.count, s.first_seen, s.template))[:n]
            return [dataclasses.replace(s) for s in ranked]

    def snapshot(self) -> dict:
        """JSON-able `{source: [stats, ...]}`, most counted first (what `/errors` serves)."""
        with self._lock:
            names = sorted(self._sources)
        return {name: [dataclasses.asdict(s) for s in self.top(name, self.max_per_source)] for name in names}

    def size(self, source: str) -> int:
        with self._lock:
            state = self._sources.get(source)
            return len(state.templates) if state else 0
