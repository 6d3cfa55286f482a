"""Run a dashboard's queries against a Prometheus the way Grafana would, without Grafana.

Used by `inferwatch dashboards preview` and by the tests that prove no panel is dead. Grafana's
rules, as its Prometheus data source applies them:
- variables resolve in order; `label_values(selector, label)` asks `/api/v1/label/<label>/values`;
  All is the variable's `allValue` (else every value); several values become `(a|b)`, regex-escaped;
- `$__interval` is the range over the panel's max data points, at least the scrape interval;
  `$__rate_interval` is max(`$__interval` + scrape interval, 4 x scrape interval);
- `{{label}}` in a legend is the series' label value; an empty legend is the series' labels.
"""

from __future__ import annotations

import math
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field

from inferwatch.dashboards.check import panels
from inferwatch.kit.prometheus import PrometheusAPI as Prometheus

_LABEL_VALUES = re.compile(
    r"^\s*label_values\(\s*(?:(?P<selector>.+?)\s*,\s*)?(?P<label>[A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$")
_LEGEND = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_REGEX_SPECIAL = re.compile(r"([\\^$.|?*+()\[\]{}])")


@dataclass(frozen=True)
class Result:
    """One query's answer: Prometheus' `result` list (range: `values`, instant: `value`)."""

    ref: str
    expr: str
    series: list[dict]
    error: str = ""


def regex_escape(value: str) -> str:
    return _REGEX_SPECIAL.sub(r"\\\1", value)


def format_values(values: list[str]) -> str:
    """Grafana's Prometheus formatting of a multi-value variable."""
    if len(values) == 1:
        return regex_escape(values[0])
    return "(" + "|".join(regex_escape(v) for v in values) + ")"


def substitute(text: str, values: dict[str, str]) -> str:
    """`$name`, `${name}`, `${name:queryparam}` and `[[name]]`, longest names first (`$model` before `$mod`)."""
    for name in sorted(values, key=len, reverse=True):
        value = values[name]
        text = text.replace(f"${{{name}:queryparam}}", f"var-{name}={urllib.parse.quote(value)}")
        text = text.replace(f"${{{name}}}", value).replace(f"[[{name}]]", value)
        text = re.sub(rf"\${re.escape(name)}(?![A-Za-z0-9_])", lambda _m, v=value: v, text)
    return text


def duration(seconds: float) -> str:
    return f"{max(1, round(seconds))}s"


@dataclass
class Context:
    """One evaluation: the time range, the scrape interval and the variables resolved so far."""

    start: float
    end: float
    scrape_interval: float = 15.0
    max_points: int = 100
    values: dict[str, str] = field(default_factory=dict)
    options: dict[str, list[str]] = field(default_factory=dict)  # query variables' values, for tests

    def interval(self, max_points: int | None = None) -> float:
        return max(self.scrape_interval, (self.end - self.start) / (max_points or self.max_points))

    def builtins(self, max_points: int | None = None) -> dict[str, str]:
        interval = self.interval(max_points)
        return {"__interval": duration(interval), "__interval_ms": str(round(interval * 1000)),
                "__rate_interval": duration(max(interval + self.scrape_interval, 4 * self.scrape_interval)),
                "__range": duration(self.end - self.start), "__range_s": str(round(self.end - self.start)),
                "__range_ms": str(round((self.end - self.start) * 1000))}

    def expand(self, text: str, max_points: int | None = None) -> str:
        return substitute(text, {**self.builtins(max_points), **self.values})


def resolve_variables(dashboard: dict, prometheus: Prometheus, context: Context) -> Context:
    """Every variable's value as Grafana would pick it on load (its default, else its first value)."""
    for variable in dashboard.get("templating", {}).get("list", []):
        name, kind = variable["name"], variable.get("type", "query")
        current = (variable.get("current") or {}).get("value")
        chosen = current if isinstance(current, list) else [current] if current not in (None, "") else []
        if kind == "datasource":
            continue
        if kind in ("constant", "textbox"):
            context.values[name] = str(variable.get("query", ""))
            continue
        if kind == "custom":
            options = [o.strip() for o in str(variable.get("query", "")).split(",") if o.strip()]
        elif kind == "query":
            query = variable.get("query")
            query = query.get("query", "") if isinstance(query, dict) else str(query)
            match = _LABEL_VALUES.match(context.expand(query))
            if not match:
                raise ValueError(f"variable {name}: only label_values(...) queries are supported, got {query!r}")
            options = prometheus.label_values(match["label"], match["selector"], context.start, context.end)
        else:
            raise ValueError(f"variable {name}: type {kind!r} is not supported")
        context.options[name] = options
        if variable.get("includeAll") and (not chosen or chosen == ["$__all"] or "$__all" in chosen):
            context.values[name] = variable.get("allValue") or format_values(options or [""])
        else:
            picked = [v for v in chosen if v in options] or options[:1]
            context.values[name] = format_values(picked) if picked else ""
    return context


def legend(template: str, labels: dict[str, str]) -> str:
    if not template or template == "__auto":
        shown = {k: v for k, v in labels.items() if k != "__name__"}
        name = labels.get("__name__", "")
        if not shown:
            return name or "value"
        return name + "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(shown.items())) + "}"
    return _LEGEND.sub(lambda m: labels.get(m.group(1), ""), template)


def run_panel(panel: dict, prometheus: Prometheus, context: Context) -> list[Result]:
    """Every query of one panel with the variables substituted: instant at the end, else over the range."""
    results = []
    max_points = panel.get("maxDataPoints") or context.max_points
    step = context.interval(max_points)
    for target in panel.get("targets", []):
        if target.get("hide"):
            continue
        expr = context.expand(target.get("expr", ""), max_points)
        try:
            if target.get("instant"):
                series = prometheus.query(expr, context.end)
            else:
                series = prometheus.query_range(expr, context.start, context.end, step)
            results.append(Result(target.get("refId", ""), expr, series))
        except Exception as exc:  # reported per query; the rest of the panel still runs
            results.append(Result(target.get("refId", ""), expr, [], f"{type(exc).__name__}: {exc}"))
    return results


def run_annotations(dashboard: dict, prometheus: Prometheus, context: Context) -> list[Result]:
    results = []
    for annotation in dashboard.get("annotations", {}).get("list", []):
        if annotation.get("builtIn") or not annotation.get("expr"):
            continue
        expr = context.expand(annotation["expr"])
        try:
            results.append(Result(annotation["name"], expr,
                                  prometheus.query_range(expr, context.start, context.end, context.interval())))
        except Exception as exc:
            results.append(Result(annotation["name"], expr, [], f"{type(exc).__name__}: {exc}"))
    return results


def has_data(results: list[Result]) -> bool:
    """True when some query returned a series with at least one finite value."""
    def finite(series: dict) -> bool:
        points = series.get("values") or ([series["value"]] if "value" in series else [])
        return any(math.isfinite(float(v)) for _, v in points)

    return any(finite(s) for r in results for s in r.series)


def run_dashboard(dashboard: dict, prometheus: Prometheus, context: Context,
                  on_panel: Callable[[dict, list[Result]], None] | None = None) -> dict[int, list[Result]]:
    """panel id -> its results, rows skipped."""
    out: dict[int, list[Result]] = {}
    for panel in panels(dashboard):
        if panel.get("type") in ("row", "text"):
            continue
        out[panel["id"]] = run_panel(panel, prometheus, context)
        if on_panel:
            on_panel(panel, out[panel["id"]])
    return out
