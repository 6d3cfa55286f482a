"""Backfill days of history into a Prometheus data directory with `promtool`, for benchmarks.

Rule groups that read `offset 1w`, `[30d]` or `[1d]` windows cost nothing on a fresh server (the
windows are empty), so a benchmark without history only gives a lower bound for them. This module
writes OpenMetrics text (`# TYPE` lines, samples with unix-second timestamps, `# EOF`) one file
per UTC day, series after series and each series in time order, and turns every file into
blocks with `promtool tsdb create-blocks-from openmetrics --max-block-duration=24h` (no block
crosses a UTC midnight; promtool 2.42 still cuts a day into 6-18 h blocks):

- one file per aligned day, because promtool re-reads the whole file for every block it cuts
  and keeps one block's samples in memory (a file spanning two aligned days is parsed three times);
- files are written while earlier days are still being converted (promtool is the slow part:
  ~5 us per sample on this machine, Python ~1 us per line), at most `workers` promtools at once,
  and each file is deleted as soon as its block exists (a day of the benchmark fleet at 1-minute
  resolution is ~8 GB of text).
"""

from __future__ import annotations

import math
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

DAY = 86400
PROMTOOL_BIN = "promtool"


@dataclass(frozen=True)
class Series:
    """One series with a value that is a linear function of time: `slope * elapsed + const`.

    Counters grow linearly (a constant request rate), gauges have slope 0, so the live exposition
    and the backfilled history are the same function and join without a counter reset."""

    family: str  # the OpenMetrics family (histogram base name, counter name without `_total`)
    kind: str  # OpenMetrics type: counter, gauge, histogram, unknown
    name: str  # the sample's metric name
    labels: str  # `a="1",b="2"` without braces, as exposed
    slope: float
    const: float = 0.0
    digits: int = 1

    def value(self, elapsed: float) -> float:
        return self.slope * elapsed + self.const

    def exposition_line(self, elapsed: float) -> str:
        return f"{self.name}{{{self.labels}}} {self.value(elapsed):.{self.digits}f}"


@dataclass(frozen=True)
class RecordedSeries:
    """A recorded series as the live rules produce it: its labels, its value now, and how often
    its group evaluates (the history's resolution, so windows read as many points as in
    production)."""

    name: str
    labels: dict[str, str]
    value: float
    interval: int


def recorded_names(rule_files: Iterable[str | Path], default_interval: int) -> dict[str, int]:
    """Every `record:` name in the rule files -> its group's evaluation interval in seconds.

    Read from the files, not from a list, so the backfill follows whatever the rules record."""
    names: dict[str, int] = {}
    for path in rule_files:
        for group in (yaml.safe_load(Path(path).read_text()) or {}).get("groups", []):
            interval = parse_duration(group["interval"]) if group.get("interval") else default_interval
            for rule in group.get("rules", []):
                if "record" in rule:
                    names[rule["record"]] = interval
    return names


def parse_duration(text: str) -> int:
    """A Prometheus duration (`15s`, `5m`, `1h30m`) in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": DAY, "w": 7 * DAY, "y": 365 * DAY}
    total, number = 0.0, ""
    i = 0
    while i < len(text):
        if text[i].isdigit():
            number += text[i]
            i += 1
            continue
        unit = "ms" if text[i:i + 2] == "ms" else text[i]
        total += int(number) * units[unit]
        number = ""
        i += len(unit)
    if number:
        raise ValueError(f"duration {text!r} has no unit")
    return int(total)


def day_ranges(start: int, end: int) -> Iterator[tuple[int, int]]:
    """[start, end) cut at UTC midnights: promtool aligns blocks to multiples of the block size."""
    t = start
    while t < end:
        stop = min(end, (t // DAY + 1) * DAY)
        yield t, stop
        t = stop


def _format_number(value: float, digits: int) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return f"{value:.{digits}f}"


def diurnal(t: int) -> float:
    """A daily cycle (+-10 %) with a little deterministic jitter (+-1 %): recorded history that
    varies like a real fleet's (the seasonal baselines see a shape, chunks do not compress to
    nothing) but is reproducible."""
    jitter = ((t * 2654435761) % 1000) / 1000 - 0.5
    return 1 + 0.1 * math.sin(2 * math.pi * t / DAY) + 0.02 * jitter


@dataclass
class DayWriter:
    """Writes one day's OpenMetrics file: raw series at `raw_step`, recorded series at their
    group's interval, with extra labels (`job`, `instance`) that a scrape would have added."""

    raw: list[tuple[Series, str]]  # series, its full label text for history (job, instance added)
    recorded: list[RecordedSeries]
    raw_step: int
    origin: float  # the exposition's time origin: elapsed = t - origin

    def write(self, path: Path, start: int, end: int) -> int:
        """Write [start, end) to `path`; return the number of samples."""
        samples = 0
        with path.open("w", buffering=1 << 22) as out:
            first = -(-start // self.raw_step) * self.raw_step
            stamps = list(range(first, end, self.raw_step))
            stamp_text = [str(t) for t in stamps]
            elapsed = [t - self.origin for t in stamps]
            family = None
            for series, labels in self.raw:
                if series.family != family:
                    family = series.family
                    out.write(f"# TYPE {family} {series.kind}\n")
                prefix = f"{series.name}{{{labels}}} "
                if series.slope == 0:
                    value = _format_number(series.const, series.digits)
                    out.write("".join([f"{prefix}{value} {t}\n" for t in stamp_text]))
                else:
                    slope, const, spec = series.slope, series.const, f".{series.digits}f"
                    out.write("".join([f"{prefix}{slope * e + const:{spec}} {t}\n"
                                       for e, t in zip(elapsed, stamp_text, strict=True)]))
                samples += len(stamps)
            for record in sorted(self.recorded, key=lambda r: r.name):
                if record.name != family:
                    family = record.name
                    out.write(f"# TYPE {family} gauge\n")
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(record.labels.items()))
                prefix = f"{record.name}{{{labels}}} "
                first = -(-start // record.interval) * record.interval
                lines = [f"{prefix}{_format_number(record.value * diurnal(t), 6)} {t}\n"
                         for t in range(first, end, record.interval)]
                out.write("".join(lines))
                samples += len(lines)
            out.write("# EOF\n")
        return samples


@dataclass
class BackfillReport:
    days: int
    samples: int = 0
    write_seconds: float = 0.0  # Python time spent writing text
    wall_seconds: float = 0.0  # start to the last block
    blocks: list[str] = field(default_factory=list)


def backfill(data_dir: Path, scratch: Path, writer: DayWriter, start: int, end: int, workers: int = 2,
             log: Callable[[str], None] = print) -> BackfillReport:
    """Write [start, end) day by day and convert each day into a block under `data_dir`.

    promtool runs as separate processes (at most `workers`), so writing day N+1 overlaps
    converting day N; each text file is deleted once its block is written."""
    data_dir.mkdir(parents=True, exist_ok=True)
    scratch.mkdir(parents=True, exist_ok=True)
    ranges = list(day_ranges(start, end))
    report = BackfillReport(days=len(ranges))
    began = time.monotonic()
    running: list[tuple[subprocess.Popen, Path]] = []

    def reap(block_until: int) -> None:
        while len(running) > block_until:
            proc, path = running.pop(0)
            out, _ = proc.communicate()
            path.unlink(missing_ok=True)
            if proc.returncode != 0:
                raise RuntimeError(f"promtool failed on {path.name}: {out.decode()[-2000:]}")
            report.blocks += [line.split()[0] for line in out.decode().splitlines()[1:] if line.strip()]

    try:
        for day_start, day_end in ranges:
            path = scratch / f"history-{day_start}.om"
            written = time.monotonic()
            report.samples += writer.write(path, day_start, day_end)
            report.write_seconds += time.monotonic() - written
            log(f"  wrote {path.name} ({path.stat().st_size / 1e9:.1f} GB, "
                f"{time.monotonic() - began:.0f} s since start); converting")
            reap(workers - 1)
            running.append((subprocess.Popen(
                [PROMTOOL_BIN, "tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=24h",
                 str(path), str(data_dir)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT), path))
        reap(0)
    finally:
        for proc, path in running:
            proc.kill()
            proc.wait()
            path.unlink(missing_ok=True)
    report.wall_seconds = time.monotonic() - began
    return report
