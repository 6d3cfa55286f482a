"""Builds `promtool test rules` files: a normal week with daily and weekly patterns, plus faults.

Time 0 is a Monday 00:00. Days 5 and 6 are the weekend (lower traffic, lower latency peaks).
Faults start on day 7 (the second Monday), when a full week of history exists.
Also: expected alerts from a rendered alerts file, per-area subsets of the rule files, and
promtool runs in the background.
"""

from __future__ import annotations

import json
import math
import random
import re
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path

import yaml

MINUTE = 60
HOUR = 60 * MINUTE
DAY = 24 * HOUR
DAYS = 8
FAULT_AT = 7 * DAY + 14 * HOUR  # second Monday, 14:00: the daily peak

Series = dict[str, str]  # promtool input series text -> values text


def daily(t: float, night: float, peak: float, weekend_peak: float) -> float:
    """A smooth day: `night` at 03:00, the peak at 15:00; weekends peak lower."""
    day = int(t // DAY)
    top = weekend_peak if day % 7 in (5, 6) else peak
    phase = (t % DAY) / DAY  # 0 = midnight
    shape = (1 - math.cos(2 * math.pi * (phase - 0.125))) / 2  # 0 at 03:00, 1 at 15:00
    return night + (top - night) * shape


def values(fn: Callable[[float], float | None], step: int = MINUTE, end: int = DAYS * DAY, digits: int = 6) -> str:
    """Explicit per-step values; None becomes `_` (no sample)."""
    out = []
    for i in range(end // step + 1):
        v = fn(i * step)
        out.append("_" if v is None else f"{v:.{digits}g}")
    return _compress(out)


def _compress(items: list[str]) -> str:
    """Collapse runs of equal values into promtool's `vxN` notation."""
    out, i = [], 0
    while i < len(items):
        j = i
        while j + 1 < len(items) and items[j + 1] == items[i]:
            j += 1
        run = j - i
        if items[i] == "_":  # `_xN` is N blanks, while `vxN` is N + 1 values
            out.append("_" if run == 0 else f"_x{run + 1}")
        else:
            out.append(items[i] if run == 0 else f"{items[i]}x{run}")
        i = j + 1
    return " ".join(out)


def counter(rate: Callable[[float], float], step: int = MINUTE, end: int = DAYS * DAY) -> str:
    """A counter whose per-second rate follows `rate(t)`."""
    total, out = 0.0, []
    for i in range(end // step + 1):
        out.append(f"{total:.12g}")
        total += rate(i * step) * step
    return " ".join(out)


def noisy(fn: Callable[[float], float], amplitude: float = 0.03, seed: int = 1) -> Callable[[float], float]:
    rng = random.Random(seed)
    cache: dict[float, float] = {}

    def wrapped(t: float) -> float:
        if t not in cache:
            cache[t] = fn(t) * (1 + rng.uniform(-amplitude, amplitude))
        return cache[t]

    return wrapped


def after(t0: float, before: float | None, during: float | None) -> Callable[[float], float | None]:
    return lambda t: during if t >= t0 else before


def at(day: int, hour: float = 0, minute: float = 0) -> str:
    """promtool eval_time as a duration string."""
    total = int(day * DAY + hour * HOUR + minute * MINUTE)
    return f"{total // 60}m"


# -- expected annotations: the rule's own Go templates, rendered the way Prometheus does --------

def go_float(v: float) -> str:
    text = repr(float(v))
    return text[:-2] if text.endswith(".0") else text


def humanize_duration(v: float) -> str:
    if v == 0:
        return "0s"
    if abs(v) >= 1:
        if abs(v) < 60:
            return f"{v:.4g}s"
        raise ValueError("longer durations are not used by these tests")
    prefix = ""
    for p in ("m", "u", "n"):
        if abs(v) >= 1:
            break
        prefix, v = p, v * 1000
    return f"{v:.4g}{prefix}s"


def humanize(v: float) -> str:
    if v == 0 or 1 <= abs(v) < 1000:
        return f"{v:.4g}"
    raise ValueError("SI prefixes are not used by these tests")


FILTERS = {"": go_float, "humanizeDuration": humanize_duration, "humanizePercentage": lambda v: f"{v * 100:.4g}%",
           "humanize": humanize, 'printf "%.3g"': lambda v: f"{v:.3g}",
           'printf "%.0f"': lambda v: f"{v:.0f}"}  # Go's %.3g and %.0f as Python's for plain numbers


def render_template(template: str, labels: dict[str, str], value: float) -> str:

    def one(match: re.Match) -> str:
        expr = match.group(1).strip()
        if expr.startswith("$labels."):
            return labels.get(expr.removeprefix("$labels."), "")
        head, _, fn = (part.strip() for part in expr.partition("|"))
        assert head == "$value", expr
        return FILTERS[fn](value)

    return re.sub(r"\{\{(.*?)\}\}", one, template)


# -- rule files and promtool runs ----------------------------------------------------------------

def alert_rules(text: str) -> dict[str, list[dict]]:
    """Alert name -> its rules (one per severity) in a rendered alerts file."""
    alerts: dict[str, list[dict]] = {}
    for group in yaml.safe_load(text)["groups"]:
        for rule in group["rules"]:
            alerts.setdefault(rule["alert"], []).append(rule)
    return alerts


def expected_alert(alerts: dict[str, list[dict]], name: str, labels: dict[str, str], value: float | None = None,
                   severity: str | None = None) -> dict:
    """The full alert promtool must see: series labels + rule labels, annotations rendered."""
    (rule,) = [r for r in alerts[name] if severity in (None, r["labels"]["severity"])]
    all_labels = {**labels, **rule["labels"]}
    notes = dict(rule["annotations"])
    if "$value" in notes["description"]:
        assert value is not None, f"{name}: its description shows $value, give the expected value"
    notes["description"] = render_template(notes["description"], all_labels, value)
    return {"exp_labels": all_labels, "exp_annotations": notes}


def area(group_name: str) -> str:
    """Every group is named inferwatch.<area>.<...>: the mixin file it comes from."""
    return group_name.split(".")[1]


def rule_subset(files: Iterable[Path], areas: set[str], folder: Path,
                keep: Callable[[str, dict], bool] = lambda group, rule: True) -> list[str]:
    """Copies of rendered rule files holding only the groups of `areas` (and the rules `keep(group
    name, rule)` accepts): promtool evaluates every rule at every step, so leaving out what a test
    does not exercise makes it several times faster."""
    paths = []
    folder.mkdir(parents=True, exist_ok=True)
    for path in files:
        document = yaml.safe_load(Path(path).read_text())
        groups = [{**g, "rules": [r for r in g["rules"] if keep(g["name"], r)]}
                  for g in document["groups"] if area(g["name"]) in areas]
        groups = [g for g in groups if g["rules"]]
        if groups:
            target = folder / Path(path).name
            target.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False, width=10**9))
            paths.append(str(target))
    return paths


class PromtoolRun:
    """`promtool test rules` started in the background, so independent runs share the CPUs."""

    def __init__(self, path: Path, test: dict, timeout: float = 600):
        path.write_text(json.dumps(test, indent=1))  # JSON is YAML, and much faster to write
        self.timeout = timeout
        self.process = subprocess.Popen(["promtool", "test", "rules", str(path)], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)

    def assert_passed(self) -> None:
        stdout, stderr = self.process.communicate(timeout=self.timeout)
        assert self.process.returncode == 0, stdout[-6000:] + stderr[-2000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()


def promtool_test(rule_files: list[str], series: Series, interval: str, alert_checks: list[dict] | None = None,
                  expr_checks: list[dict] | None = None) -> dict:
    test: dict = {"interval": interval, "input_series": [{"series": k, "values": v} for k, v in series.items()]}
    if alert_checks:
        test["alert_rule_test"] = alert_checks
    if expr_checks:
        test["promql_expr_test"] = expr_checks
    # promtool orders groups randomly (a Go map) unless told: file order, as Prometheus reads them,
    # so a recording group always runs before the alerts that read it and results never move a step.
    order = [g["name"] for path in rule_files for g in yaml.safe_load(Path(path).read_text())["groups"]]
    return {"rule_files": rule_files, "evaluation_interval": interval, "group_eval_order": order, "tests": [test]}


def run_promtool(path: Path, test: dict, timeout: float = 600) -> None:
    run = PromtoolRun(path, test, timeout)
    try:
        run.assert_passed()
    finally:
        run.stop()
