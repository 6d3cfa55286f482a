"""Raw series on a fixed time grid (`History`), saved as JSON and fetched from a Prometheus.

A History is what a backtest replays: every series sampled at `start + i * step`, `None` where
the series had no sample. The synthetic traffic generator writes one; `fetch` reads one from a
user's Prometheus through `query_range`, so it works with anything that speaks the Prometheus HTTP
API (Prometheus, Thanos, Mimir).
"""

from __future__ import annotations

import datetime
import gzip
import json
import math
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inferwatch.backtest import BacktestError

Progress = Callable[[int, int], None]  # (done, total) units of work
MAX_POINTS_PER_QUERY = 11_000  # Prometheus refuses a query_range with more points per series
DEFAULT_MAX_SAMPLES = 5_000_000
DEFAULT_CHUNK_SECONDS = 86_400.0
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|$)')
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n", "t": "\t", "r": "\r"}


def series_key(name: str, labels: dict[str, str]) -> str:
    """`name{a="b",...}` (labels sorted): promtool's input-series syntax and an OpenMetrics sample name."""
    if not labels:
        return name
    body = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    return f"{name}{{{body}}}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def parse_series_key(key: str) -> tuple[str, dict[str, str]]:
    """The metric name and labels of a `series_key` (ValueError when it is not one)."""
    match = _NAME.match(key)
    if not match:
        raise ValueError(f"not a series: {key[:80]!r}")
    name, rest = match.group(), key[match.end():]
    if not rest:
        return name, {}
    if not (rest.startswith("{") and rest.endswith("}")):
        raise ValueError(f"not a series: {key[:80]!r}")
    body, labels, pos = rest[1:-1], {}, 0
    while pos < len(body):
        item = _LABEL.match(body, pos)
        if not item:
            raise ValueError(f"bad labels in series {key[:80]!r}")
        labels[item.group(1)] = re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), item.group(2))
        pos = item.end()
    return name, labels


def series_name(key: str) -> str:
    """The metric name of a series key (its text up to the first `{`)."""
    return key.split("{", 1)[0].strip()


def format_value(value: float, infinity: str = "+Inf") -> str:
    """Shortest exact text of a float (Go's ParseFloat reads it back bit for bit)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return infinity if value > 0 else "-Inf"
    return repr(float(value))


@dataclass
class History:
    """Raw series on one time grid: sample i of every series is at `start + i * step`."""

    start: float  # unix seconds of sample 0
    step: float  # seconds between samples
    series: dict[str, list[float | None]] = field(default_factory=dict)  # series_key -> values, None = no sample

    def __post_init__(self) -> None:
        if not (self.step > 0 and math.isfinite(self.step)):
            raise ValueError(f"step must be a positive number of seconds, got {self.step!r}")
        lengths = {len(v) for v in self.series.values()}
        if len(lengths) > 1:
            raise ValueError(f"every series needs the same number of samples, got lengths {sorted(lengths)}")

    def steps(self) -> int:
        """Samples per series (the grid's length)."""
        return len(next(iter(self.series.values()))) if self.series else 0

    def end(self) -> float:
        """Unix seconds of the last sample (inclusive end of the grid)."""
        return self.start + (max(self.steps(), 1) - 1) * self.step

    def times(self) -> list[float]:
        return [self.start + i * self.step for i in range(self.steps())]

    def samples(self) -> int:
        return sum(v is not None for values in self.series.values() for v in values)

    def names(self) -> set[str]:
        return {series_name(key) for key in self.series}

    # -- files --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "step": self.step, "series": self.series}

    def save(self, path: str | Path) -> None:
        """JSON, gzip-compressed when the name ends in .gz. NaN/Inf are written as JSON's extensions."""
        text = json.dumps(self.to_dict(), separators=(",", ":"))
        if str(path).endswith(".gz"):
            with gzip.open(path, "wt", encoding="utf-8") as handle:
                handle.write(text)
        else:
            Path(path).write_text(text)

    @classmethod
    def load(cls, path: str | Path) -> History:
        """A saved History; a missing or malformed file is a BacktestError naming the file."""
        try:
            if str(path).endswith(".gz"):
                with gzip.open(path, "rt", encoding="utf-8") as handle:
                    data = json.load(handle)
            else:
                data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise BacktestError(f"{path}: file not found") from None
        except (OSError, EOFError, UnicodeDecodeError, ValueError) as exc:
            raise BacktestError(f"{path}: not a saved history ({type(exc).__name__}: {str(exc)[:120]})") from None
        try:
            series = {str(k): [None if v is None else float(v) for v in values]
                      for k, values in data["series"].items()}
            for key in series:
                parse_series_key(key)
            return cls(float(data["start"]), float(data["step"]), series)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise BacktestError(f"{path}: not a saved history ({type(exc).__name__}: {str(exc)[:120]})") from None

    def to_openmetrics(self) -> str:
        """OpenMetrics text for `promtool tsdb create-blocks-from openmetrics` (ends with `# EOF`).

        Missing samples are left out. Backfilled blocks carry no staleness markers, so a series
        that stops stays visible for the 5-minute lookback after its last sample (a scraped one
        goes stale at once); types are not declared (backfill does not need them).
        """
        lines = []
        for key in sorted(self.series):
            for i, value in enumerate(self.series[key]):
                if value is not None:
                    lines.append(f"{key} {format_value(value)} {_timestamp(self.start + i * self.step)}")
        lines.append("# EOF")
        return "\n".join(lines) + "\n"


def _timestamp(t: float) -> str:
    return str(int(t)) if float(t).is_integer() else f"{t:.3f}"


def iso(t: float) -> str:
    """RFC 3339 in UTC, to the second."""
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- reading from Prometheus ------------------------------------------------------------------

def normalise_match(match: str | None) -> str | None:
    """`{job="vllm"}` or `job="vllm"` -> `job="vllm"` (the inside of a selector's braces)."""
    if match is None:
        return None
    inner = match.strip()
    if inner.startswith("{") and inner.endswith("}"):
        inner = inner[1:-1].strip()
    if not inner or (_NAME.fullmatch(inner.split("{", 1)[0].strip()) and "{" in inner):
        raise BacktestError(f"--match wants label matchers such as '{{job=\"vllm\"}}', got {match[:80]!r}")
    return inner


def selector(name: str, match: str | None) -> str:
    return f"{name}{{{match}}}" if match else name


class _Api:
    """POSTs to a Prometheus HTTP API; every failure is one BacktestError line naming the URL."""

    def __init__(self, url: str, timeout: float):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise BacktestError(f"--prometheus wants an http(s) URL such as http://localhost:9090, got {url[:80]!r}")
        self.url, self.timeout = url.rstrip("/"), timeout

    def call(self, path: str, params: list[tuple[str, Any]]) -> Any:
        body = urllib.parse.urlencode(params).encode()
        request = urllib.request.Request(f"{self.url}/api/v1/{path}", data=body,
                                         headers={"Content-Type": "application/x-www-form-urlencoded"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            error = _error_of(raw)
            if error:
                raise BacktestError(f"Prometheus at {self.url} refused {path}: {error[:300]}") from None
            raise BacktestError(f"{self.url} answered HTTP {exc.code} to /api/v1/{path}: is it a Prometheus "
                                "(or Thanos/Mimir query) URL?") from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            text = getattr(reason, "strerror", None) or str(reason)
            raise BacktestError(f"cannot reach Prometheus at {self.url}: {text}") from None
        except TimeoutError:
            raise BacktestError(f"Prometheus at {self.url} did not answer /api/v1/{path} within "
                                f"{self.timeout:g} s") from None
        except OSError as exc:
            raise BacktestError(f"cannot reach Prometheus at {self.url}: {exc.strerror or exc}") from None
        try:
            answer = json.loads(raw)
        except ValueError:
            raise BacktestError(f"{self.url}/api/v1/{path} did not answer JSON: is it a Prometheus URL?") from None
        if not isinstance(answer, dict) or answer.get("status") != "success":
            raise BacktestError(f"Prometheus at {self.url} failed {path}: {_error_of(raw) or str(answer)[:300]}")
        return answer["data"]


def _error_of(raw: bytes) -> str | None:
    try:
        answer = json.loads(raw)
    except ValueError:
        return None
    return answer.get("error") if isinstance(answer, dict) else None


def fetch(url: str, start: float, end: float, step: float, names: Iterable[str], match: str | None = None,
          max_samples: int = DEFAULT_MAX_SAMPLES, chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
          progress: Progress | None = None, timeout: float = 120.0, parallel: int = 4) -> History:
    """The series `names` (each `name{match}`) between `start` and `end` on a `step` grid.

    First asks `/api/v1/series` which series exist, and stops before fetching anything when
    series x steps exceeds `max_samples`; then reads each name with `query_range` in chunks of
    `chunk_seconds`. Resolution caveats: `query_range` returns the latest raw sample at or before
    each grid point (within the 5-minute lookback, stale-aware), so the replay sees the series
    resampled to `step`. Rates over the replayed counters then differ slightly from what the
    live rule saw (fewer points, other extrapolation), a counter reset between two grid points
    is only seen as a drop, a spike shorter than `step` can vanish, and a grid coarser than the
    scrape interval delays `for:` clauses by up to one step. Pick `step` near the scrape interval.
    """
    if not (math.isfinite(start) and math.isfinite(end)) or end < start:
        raise BacktestError(f"the range ends before it starts ({iso(start)} .. {iso(end)})")
    if not step > 0:
        raise BacktestError(f"the step must be positive, got {step!r}")
    api = _Api(url, timeout)
    match = normalise_match(match)
    names = sorted(set(names))
    if not names:
        raise BacktestError("the rules read no raw series: nothing to fetch")
    steps = int((end - start) // step) + 1
    span = f"between {iso(start)} and {iso(end)}"
    found = _series(api, names, match, start, end)
    if not found:
        if match and _series(api, names, None, start, end):
            raise BacktestError(f"--match {{{match}}} selects none of the series the rules read {span}")
        shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
        raise BacktestError(f"Prometheus at {api.url} has no data for the series the rules read ({shown}) {span}")
    estimate = sum(found.values()) * steps
    if estimate > max_samples:
        raise BacktestError(f"the range holds about {estimate:,} samples ({sum(found.values())} series x {steps} "
                            f"steps), above --max-samples {max_samples:,}: shorten the range, use a longer --step, "
                            "narrow --match or raise --max-samples")
    per_chunk = max(1, min(int(chunk_seconds // step), MAX_POINTS_PER_QUERY))
    chunks = [(i, min(i + per_chunk, steps) - 1) for i in range(0, steps, per_chunk)]
    jobs = [(name, first, last) for name in sorted(found) for first, last in chunks]
    series: dict[str, list[float | None]] = {}
    taken = 0
    if progress:
        progress(0, len(jobs))
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        futures = [pool.submit(api.call, "query_range", [
            ("query", selector(name, match)), ("start", _timestamp(start + first * step)),
            ("end", _timestamp(start + last * step)), ("step", repr(float(step)))]) for name, first, last in jobs]
        try:
            for done, future in enumerate(as_completed(futures), 1):
                for item in future.result()["result"]:
                    labels = dict(item["metric"])
                    key = series_key(labels.pop("__name__", ""), labels)
                    values = series.setdefault(key, [None] * steps)
                    for t, text in item["values"]:
                        index = round((float(t) - start) / step)
                        if 0 <= index < steps:
                            values[index] = float(text)
                            taken += 1
                if taken > max_samples:
                    raise BacktestError(f"more than --max-samples {max_samples:,} samples in the range (series churn "
                                        "beyond the estimate): shorten the range, use a longer --step or narrow "
                                        "--match")
                if progress:
                    progress(done, len(jobs))
        finally:
            for future in futures:
                future.cancel()
    series = {k: v for k, v in sorted(series.items()) if any(x is not None for x in v) and not k.startswith("{")}
    if not series:
        raise BacktestError(f"Prometheus at {api.url} has no samples of the series the rules read {span}")
    return History(start, step, series)


def _series(api: _Api, names: list[str], match: str | None, start: float, end: float) -> dict[str, int]:
    """Metric name -> number of series `/api/v1/series` knows in the range (names without any left out)."""
    params: list[tuple[str, Any]] = [("match[]", selector(name, match)) for name in names]
    params += [("start", _timestamp(start)), ("end", _timestamp(end))]
    counts: dict[str, int] = {}
    for labels in api.call("series", params):
        name = labels.get("__name__", "")
        counts[name] = counts.get(name, 0) + 1
    return counts
