"""Replay rule files over a History with promtool's own rule engine, and report what fires.

`replay` writes a `promtool test rules` file whose input series are the History and which
expects *no* alert at every evaluation; promtool then lists every alert that does fire as a
failure, and those failures become `Episode`s. Using promtool (not a PromQL re-implementation)
means the backtest evaluates exactly what Prometheus would: the same functions, staleness,
`for:` handling and label templating.

Facts about promtool 2.42 this relies on (found by experiment):

- A failing alert check is printed on stderr as
  `    alertname: NAME, time: 1d1h, ` then `exp:[], `, `got:[`, and per alert `0:`,
  `Labels:{alertname="X", a="b"}` (Go-quoted values) and `Annotations:{...}`; times are Go
  `model.Duration` text since promtool's time 0. Only *firing* alerts are listed (pending ones
  are not). A rule evaluation error is `    rule: NAME, time: T, err: ...` and stops the test.
- Groups run one after the other at each step, in an order that is *random per run* (a Go map,
  sorted by `group_eval_order`, where unlisted groups all tie): a recording group may run before
  or after the alert group reading it, which moves an alert by one interval from run to run.
  The replay therefore always sets `group_eval_order` to file order (recording rules first, as
  shipped), i.e. every alert sees the freshest recordings. Live Prometheus runs groups
  concurrently at fixed per-group phase offsets, so a live alert can be up to one evaluation
  interval per recording hop later than the replay says.
- promtool evaluates every group at every `evaluation_interval` and ignores a group's own
  `interval:` (a `5m` group that records `time()` is fresh at every 1-minute step). The replay
  therefore evaluates such groups more often than Prometheus does; for the shipped rules
  (`inferwatch.adaptive.seasonal.rules`, read through `last_over_time(...[10m])`) this only
  makes the baseline up to 5 minutes fresher.
- The values notation knows `stale` (a staleness marker: the series is gone at once, as when a
  scraped series disappears), `_` and `_xN` (N missing samples: note `_x3` is three blanks while
  `1x3` is four values), `a+bxN` (N+1 values by repeated float addition) and `Inf`/`NaN`
  (but not `Infx2`).
- promtool's clock starts at the Unix epoch. Times are mapped back to the History's; series
  whose values are Unix timestamps (`*_timestamp_seconds`, `*_start_time_seconds`) are shifted
  by the same amount so `time() - x` means what it meant live. When the rules use time-of-day
  functions (`hour()`, `day_of_week()`, ...) the replay starts at the preceding UTC midnight
  (empty samples before the History) so `hour()` and `minute()` see the real time of day
  (not the weekday, month or year: promtool's calendar starts on Thursday 1970-01-01).
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from inferwatch.backtest import BacktestError
from inferwatch.backtest.history import History, Progress, format_value, series_name

PROMTOOL = "promtool"
GENERATED = frozenset({"ALERTS", "ALERTS_FOR_STATE"})  # series the rule engine itself writes
TIMESTAMP_SUFFIXES = ("_timestamp_seconds", "_start_time_seconds")
CALENDAR_FUNCTIONS = frozenset({"hour", "minute", "day_of_week", "day_of_month", "day_of_year", "days_in_month",
                                "month", "year"})
DAY = 86_400


@dataclass(frozen=True)
class Episode:
    """One alert label set firing over consecutive evaluations."""

    alertname: str
    labels: tuple[tuple[str, str], ...]  # sorted alert labels incl. severity, without alertname (no annotations)
    start: float  # unix seconds of the first firing evaluation
    end: float  # unix seconds of the last firing evaluation + interval

    def label(self, name: str) -> str | None:
        return dict(self.labels).get(name)

    @property
    def seconds(self) -> float:
        return self.end - self.start


# -- PromQL name analysis -----------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<comment>\#[^\n]*)
  | (?P<duration>(?:\d+(?:ms|[smhdwy]))+(?![a-zA-Z0-9_:]))
  | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<space>\s+)
  | (?P<punct>.)
""", re.VERBOSE)
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan", "group_left", "group_right"})
_LABEL_LISTS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
_AGGREGATIONS = frozenset({"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk",
                           "topk", "quantile"})  # `sum by (x) (...)`: not followed by `(` directly
_CLOSE = {"(": ")", "[": "]", "{": "}"}


@dataclass(frozen=True)
class Names:
    """What an expression reads: metric names, functions, and whether a selector has no fixed name."""

    metrics: frozenset[str]
    functions: frozenset[str]
    nameless: bool  # e.g. {__name__=~"vllm:.*"}: could read any series
    window: float = 0.0  # the longest range selector, seconds (`[30d]`): what an evaluation reads back


def expr_names(expr: str) -> Names:
    """Metric names an expression selects (not functions, keywords, label names, strings or durations)."""
    tokens = [(m.lastgroup, m.group()) for m in _TOKEN.finditer(expr) if m.lastgroup not in ("space", "comment")]
    metrics: set[str] = set()
    functions: set[str] = set()
    nameless, window = False, 0.0
    i, named_before = 0, False
    while i < len(tokens):
        kind, text = tokens[i]
        following = tokens[i + 1][1] if i + 1 < len(tokens) else ""
        if text in ("[", "{"):  # a range/subquery duration, or a selector's label matchers
            end = _closing(tokens, i)
            if text == "[" and i + 1 < end and tokens[i + 1][0] == "duration":
                window = max(window, parse_duration(tokens[i + 1][1]))
            if text == "{":
                inner = tokens[i + 1:end]
                fixed = [_unquote(inner[k + 2][1]) for k in range(len(inner) - 2)
                         if inner[k][1] == "__name__" and inner[k + 1][1] == "=" and inner[k + 2][0] == "string"]
                metrics.update(fixed)
                nameless = nameless or not (named_before or fixed)
            i, named_before = end + 1, False
            continue
        named_before = False
        if kind == "ident":
            if text in _LABEL_LISTS and following == "(":
                i = _closing(tokens, i + 1) + 1
                continue
            if following == "(" or text in _AGGREGATIONS:
                functions.add(text)
            elif text.lower() not in _KEYWORDS and text not in _LABEL_LISTS:
                metrics.add(text)
                named_before = True
        i += 1
    return Names(frozenset(metrics), frozenset(functions), nameless, window)


def _closing(tokens: list[tuple[str | None, str]], i: int) -> int:
    """Index of the bracket closing the one at `i` (strings are single tokens, so never confused)."""
    opening, depth = tokens[i][1], 0
    for j in range(i, len(tokens)):
        if tokens[j][1] == opening:
            depth += 1
        elif tokens[j][1] == _CLOSE[opening]:
            depth -= 1
            if depth == 0:
                return j
    return len(tokens) - 1


def _unquote(text: str) -> str:
    if text.startswith("`"):
        return text[1:-1]
    return _go_unquote(text[1:-1])


_GO_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\", '"': '"',
               "'": "'"}
_GO_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3}|.)")


def _go_unquote(body: str) -> str:
    """The inside of a Go double-quoted string (strconv.Quote output, as promtool prints labels)."""

    def one(match: re.Match) -> str:
        code = match.group(1)
        if code[0] in "xuU":
            return chr(int(code[1:], 16))
        if code[0].isdigit():
            return chr(int(code, 8))
        return _GO_ESCAPES.get(code, code)

    return _GO_ESCAPE.sub(one, body)


# -- rule files ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Rule:
    file: int  # index of its rule file (promtool orders groups by file, then within the file)
    group: int  # index of its group in `Rules.groups`
    rule: dict[str, Any]
    reads: Names

    @property
    def alert(self) -> str | None:
        return self.rule.get("alert")

    @property
    def record(self) -> str | None:
        return self.rule.get("record")


@dataclass
class Rules:
    """The groups of some rule files, and every rule with what it reads, in evaluation order."""

    files: list[str]
    groups: list[dict[str, Any]]  # each without its rules (name, interval, ...)
    rules: list[_Rule]

    def alerts(self) -> list[int]:
        return [i for i, r in enumerate(self.rules) if r.alert]

    def closure(self, roots: Iterable[int]) -> set[int]:
        """Rules `roots` need: themselves and, transitively, every rule recording a name they read."""
        recorders: dict[str, list[int]] = {}
        for i, r in enumerate(self.rules):
            if r.record:
                recorders.setdefault(r.record, []).append(i)
        included = set(roots)
        stack = list(included)
        while stack:
            for name in self.rules[stack.pop()].reads.metrics:
                for j in recorders.get(name, ()):
                    if j not in included:
                        included.add(j)
                        stack.append(j)
        return included


def load_rules(rule_files: Iterable[str | Path], alerts: Iterable[str] | None = None) -> Rules:
    """Every rule of the files in order; with `alerts`, other alert rules are left out."""
    wanted = None if alerts is None else set(alerts)
    files: list[str] = []
    groups: list[dict[str, Any]] = []
    rules: list[_Rule] = []
    for index, path in enumerate(rule_files):
        files.append(str(path))
        try:
            document = yaml.safe_load(Path(path).read_text()) or {}
        except OSError as exc:
            raise BacktestError(f"cannot read rule file {path}: {exc.strerror or exc}") from None
        except yaml.YAMLError as exc:
            raise BacktestError(f"{path}: not YAML: {str(exc).splitlines()[0]}") from None
        if not isinstance(document, dict) or not isinstance(document.get("groups", []), list):
            raise BacktestError(f"{path}: not a Prometheus rule file (no `groups:` list)")
        for group in document.get("groups") or []:
            if not isinstance(group, dict) or not isinstance(group.get("rules"), list):
                raise BacktestError(f"{path}: group {str(group)[:60]} has no `rules:` list")
            groups.append({k: v for k, v in group.items() if k != "rules"})
            for rule in group["rules"]:
                if not isinstance(rule, dict) or not ("alert" in rule or "record" in rule):
                    raise BacktestError(f"{path}: group {group.get('name')}: {str(rule)[:60]} is not a rule")
                if "alert" in rule and wanted is not None and rule["alert"] not in wanted:
                    continue
                rules.append(_Rule(index, len(groups) - 1, rule, expr_names(str(rule.get("expr", "")))))
    return Rules(files, groups, rules)


def required_series(rule_files: Iterable[str | Path], alerts: Iterable[str] | None = None) -> list[str]:
    """Raw metric names the rules read and no rule records (what a backtest must fetch).

    With `alerts`, only what those alerts read, directly or through recording rules.
    """
    rules = load_rules(rule_files, alerts)
    chosen = [rules.rules[i] for i in (rules.closure(rules.alerts()) if alerts is not None else
                                       range(len(rules.rules)))]
    recorded = {r.record for r in chosen if r.record}
    read = frozenset().union(*(r.reads.metrics for r in chosen))
    return sorted(read - recorded - GENERATED)


@dataclass
class _Job:
    owned: list[int]  # alert rules this run checks
    rules: set[int]  # every rule it evaluates (owned + what they need)


def plan(rules: Rules, jobs: int, span: float = 86_400.0) -> list[_Job]:
    """Alert rules split over `jobs` runs, balanced by rules evaluated; each keeps only what it needs.

    Rules interact only through the series they record (a later rule of a group sees what an
    earlier one recorded at the same step; groups run in file order). A run holding some alert
    rules and, in their original groups and order, just the recording rules they transitively
    read therefore computes what a run of all the files does, and promtool's cost is per rule
    evaluated, so leaving the rest out is what makes a replay fast. A rule's cost is taken as 1
    plus its longest range window (up to the replayed `span`) per 6 hours: an `avg_over_time(x[30d])`
    reads every sample so far at every step.
    """
    owners = rules.alerts()
    if not owners:
        return []
    if any(r.reads.metrics & GENERATED or r.reads.nameless for r in rules.rules):
        jobs = 1  # something reads ALERTS, or any series: keep everything together
        needs = {i: set(range(len(rules.rules))) for i in owners}
    else:
        needs = {i: rules.closure([i]) for i in owners}
    weight = [1 + min(r.reads.window, span) / 21_600 for r in rules.rules]

    def cost(members: set[int]) -> float:
        return sum(weight[j] for j in members)

    runs = [_Job([], set()) for _ in range(max(1, min(jobs, len(owners))))]
    for i in sorted(owners, key=lambda i: (-cost(needs[i]), i)):
        # the run that ends up cheapest; on a tie the one that already computes most of what it needs
        best = min(runs, key=lambda r: (cost(r.rules | needs[i]), cost(needs[i] - r.rules)))
        best.owned.append(i)
        best.rules |= needs[i]
    return [r for r in runs if r.owned]


# -- promtool input -------------------------------------------------------------------------------

def values_text(values: Sequence[float | None]) -> str:
    """promtool's values notation, compressed: runs `vxN`, steps `a+bxN`, `_xN`; `stale` where a series stops."""
    out: list[str] = []
    i, n = 0, len(values)
    while i < n:
        v = values[i]
        if v is None:
            j = i
            while j < n and values[j] is None:
                j += 1
            blanks = j - i
            if i > 0:  # the first missing point after a sample: a staleness marker, as a live scrape writes
                out.append("stale")
                blanks -= 1
            if blanks:
                out.append("_" if blanks == 1 else f"_x{blanks}")
            i = j
            continue
        if not math.isfinite(v):
            out.append(format_value(v, infinity="Inf"))
            i += 1
            continue
        j, delta = i, 0.0
        following = values[i + 1] if i + 1 < n else None
        if following is not None and math.isfinite(following):
            delta, current = following - v, v
            while j + 1 < n and values[j + 1] is not None and current + delta == values[j + 1]:
                current += delta  # the same float additions promtool makes
                j += 1
            if delta != 0 and j - i < 2:  # a two-value step is no shorter written out
                j = i
        if j == i:
            out.append(format_value(v))
        elif delta == 0:
            out.append(f"{format_value(v)}x{j - i}")
        else:
            sign = "+" if delta > 0 else "-"
            out.append(f"{format_value(v)}{sign}{format_value(abs(delta))}x{j - i}")
        i = j + 1
    return " ".join(out)


def duration(seconds: float) -> str:
    """A promtool/Prometheus duration for a whole number of milliseconds."""
    ms = round(seconds * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


_DURATION_PART = re.compile(r"(\d+)(ms|y|w|d|h|m|s)")
_UNIT = {"y": 365 * DAY, "w": 7 * DAY, "d": DAY, "h": 3600, "m": 60, "s": 1, "ms": 0.001}


def parse_duration(text: str) -> float:
    """Go `model.Duration` text (`1d1h30m`, `0s`, `1m30s`) in seconds."""
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(a + b for a, b in parts) != text:
        raise ValueError(f"not a duration: {text!r}")
    return sum(int(a) * _UNIT[b] for a, b in parts)


def _is_timestamp(name: str) -> bool:
    return name.endswith(TIMESTAMP_SUFFIXES)


# -- running promtool and reading its failures ----------------------------------------------------

_ALERT_LINE = re.compile(r"^\s*alertname: (\S+), time: (\S+),\s*$")
_LABELS_LINE = re.compile(r"^\s*Labels:\{(.*)\},?\s*$")
_ERROR_LINE = re.compile(r"^\s*rule: (.*?), time: (\S+), err: (.*)$")
_LABEL_ITEM = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
# (`},` ends every alert's last line but the last one's when several fire at once)
_KNOWN_LINE = re.compile(r"^\s*(Unit Testing:.*|FAILED:|SUCCESS|exp:\[\],?|got:\[|\d+:|Annotations:\{.*\},?|\]|)\s*$")


def parse_failures(output: str) -> list[tuple[str, float, dict[str, str]]]:
    """(alertname, promtool seconds, labels) of every firing alert promtool reports as unexpected."""
    firing: list[tuple[str, float, dict[str, str]]] = []
    current: tuple[str, float] | None = None
    for line in output.splitlines():
        if m := _ALERT_LINE.match(line):
            current = (m.group(1), parse_duration(m.group(2)))
        elif m := _LABELS_LINE.match(line):
            if current is None:
                raise BacktestError(f"unexpected promtool output: {line.strip()[:200]}")
            labels = {k: _go_unquote(v) for k, v in _LABEL_ITEM.findall(m.group(1))}
            firing.append((current[0], current[1], labels))
        elif m := _ERROR_LINE.match(line):
            raise BacktestError(f"rule {m.group(1)} failed to evaluate at replay time {m.group(2)}: "
                                f"{m.group(3)[:300]}")
        elif not _KNOWN_LINE.match(line):
            raise BacktestError(f"promtool failed: {line.strip()[:300]}")
    return firing


def episodes_from(firing: Iterable[tuple[str, float, dict[str, str]]], interval: float, base: float) -> list[Episode]:
    """Consecutive firing evaluations of one alert label set merged; times moved to unix seconds."""
    times: dict[tuple[str, tuple[tuple[str, str], ...]], set[float]] = {}
    for name, t, labels in firing:
        key = (name, tuple(sorted((k, v) for k, v in labels.items() if k != "alertname")))
        times.setdefault(key, set()).add(t)
    episodes = []
    for (name, labels), seen in times.items():
        ordered = sorted(seen)
        first = previous = ordered[0]
        for t in ordered[1:]:
            if t - previous > interval * 1.5:
                episodes.append(Episode(name, labels, base + first, base + previous + interval))
                first = t
            previous = t
        episodes.append(Episode(name, labels, base + first, base + previous + interval))
    return sorted(episodes, key=lambda e: (e.start, e.alertname, e.labels))


def replay(rule_files: Sequence[str | Path], history: History, interval: float | None = None,
           alerts: Iterable[str] | None = None, jobs: int = 2, workdir: str | Path | None = None,
           progress: Progress | None = None, timeout: float = 3600.0) -> list[Episode]:
    """Every alert episode the rules produce over `history`, evaluated every `interval` (default: its step).

    Only the recording rules the alerts transitively read are evaluated (promtool's cost is per
    rule and step). `jobs` > 1 runs promtool processes in parallel, each on a share of the alert
    rules with just the recording rules (and input series) they need; the result equals a single
    run. Splitting pays only with idle CPUs: shared recording rules are evaluated in every run
    that needs them.
    `workdir` keeps the generated test and rule files (default: a temporary directory).
    """
    if shutil.which(PROMTOOL) is None:
        raise BacktestError("promtool is not on PATH (Debian/Ubuntu: apt install prometheus; or the "
                            "Prometheus release tarball)")
    interval = float(interval or history.step)
    if history.steps() == 0:
        raise BacktestError("the history holds no series")
    rules = load_rules(rule_files, alerts)
    runs = plan(rules, jobs, history.steps() * history.step)
    if not runs:
        return []
    calendar = any(r.reads.functions & CALENDAR_FUNCTIONS for r in rules.rules)
    pad_steps = _pad_steps(history, interval) if calendar else 0
    base = history.start - pad_steps * history.step
    last = (pad_steps + history.steps() - 1) * history.step
    first_eval = math.ceil(pad_steps * history.step / interval - 1e-9)
    evals = [k * interval for k in range(first_eval, int(last // interval + 1e-9) + 1)]
    series_text = {key: (f"_x{pad_steps} " if pad_steps else "")
                   + values_text([None if v is None else v - base for v in values] if _is_timestamp(series_name(key))
                                 else values) for key, values in history.series.items()}
    temporary = tempfile.TemporaryDirectory(prefix="inferwatch-backtest-") if workdir is None else None
    folder = Path(workdir or temporary.name)  # type: ignore[union-attr]
    folder.mkdir(parents=True, exist_ok=True)
    try:
        processes = [_start(folder, k, run, rules, series_text, history.step, interval, evals)
                     for k, run in enumerate(runs)]
        outputs = _wait(processes, progress, timeout)
    finally:
        if temporary is not None:
            temporary.cleanup()
    firing = [item for output in outputs for item in parse_failures(output)]
    return episodes_from(firing, interval, base)


def _pad_steps(history: History, interval: float) -> int:
    """Empty steps before the History so the replay starts at UTC midnight (on a whole interval)."""
    steps = int((history.start % DAY) // history.step)
    while steps > 0 and not float(steps * history.step / interval).is_integer():
        steps -= 1
    return steps


def _start(folder: Path, k: int, run: _Job, rules: Rules, series_text: dict[str, str], step: float,
           interval: float, evals: list[float]) -> tuple[subprocess.Popen, Path]:
    paths: list[str] = []
    order: dict[str, None] = {}
    for index, source in enumerate(rules.files):
        kept: dict[int, list[dict[str, Any]]] = {}
        for i in sorted(run.rules):  # rules are in file, group and rule order
            rule = rules.rules[i]
            if rule.file == index and (rule.record or i in run.owned):
                # annotations are not part of an episode: without them promtool prints less and renders nothing
                kept.setdefault(rule.group, []).append({k: v for k, v in rule.rule.items() if k != "annotations"})
        order.update((str(rules.groups[g].get("name")), None) for g in kept)
        if kept:
            path = folder / f"job{k}-file{index}-{Path(source).stem}.json"
            path.write_text(json.dumps({"groups": [{**rules.groups[g], "rules": r} for g, r in kept.items()]}))
            paths.append(path.name)
    chosen = [rules.rules[i] for i in run.rules]
    everything = any(r.reads.nameless for r in chosen)
    reads = frozenset().union(*(r.reads.metrics for r in chosen))
    names = sorted({rules.rules[i].alert or "" for i in run.owned})
    test = {
        "rule_files": paths,
        "evaluation_interval": duration(interval),
        "group_eval_order": list(order),  # without it promtool's order is a Go map's: random per run
        "tests": [{
            "interval": duration(step),
            "input_series": [{"series": key, "values": text} for key, text in series_text.items()
                             if everything or series_name(key) in reads],
            "alert_rule_test": [{"eval_time": duration(t), "alertname": name, "exp_alerts": []}
                                for t in evals for name in names],
        }],
    }
    test_path = folder / f"job{k}-test.json"
    test_path.write_text(json.dumps(test))  # JSON is YAML, and much faster to write and to read
    output = folder / f"job{k}-output.txt"
    with output.open("w") as handle:
        process = subprocess.Popen([PROMTOOL, "test", "rules", test_path.name], cwd=folder, stdout=handle,
                                   stderr=subprocess.STDOUT)
    return process, output


def _wait(processes: list[tuple[subprocess.Popen, Path]], progress: Progress | None, timeout: float) -> list[str]:
    """Each run's output once all have finished (a run that fails for another reason than alerts raises)."""
    deadline = time.monotonic() + timeout
    done: set[int] = set()
    try:
        if progress:
            progress(0, len(processes))
        while len(done) < len(processes):
            for k, (process, _) in enumerate(processes):
                if k not in done and process.poll() is not None:
                    done.add(k)
                    if progress:
                        progress(len(done), len(processes))
            if len(done) < len(processes):
                if time.monotonic() > deadline:
                    raise BacktestError(f"promtool did not finish the replay within {timeout:g} s")
                time.sleep(0.05)
    finally:
        for process, _ in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    outputs = []
    for process, path in processes:
        text = path.read_text(errors="replace")
        if process.returncode not in (0, 1):
            raise BacktestError(f"promtool exited with {process.returncode}: {text.strip()[-300:]}")
        outputs.append(text)
    return outputs

