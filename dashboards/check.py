"""Import checks for a dashboard's JSON: what Grafana 11/12 needs to open it cleanly.

Pure (no grafanalib, no Grafana): `inferwatch dashboards build` refuses to write a dashboard that
fails them, and the tests run them on the shipped files.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

NATIVE = frozenset({"timeseries", "stat", "gauge", "bargauge", "table", "heatmap", "text", "state-timeline", "row"})
ANGULAR = frozenset({"graph", "singlestat", "table-old", "grafana-piechart-panel", "grafana-worldmap-panel"})
GRID_COLUMNS = 24
# Grafana's own variables, always defined.
BUILTIN_VARIABLES = frozenset({
    "__interval", "__interval_ms", "__rate_interval", "__range", "__range_s", "__range_ms", "__from", "__to",
    "__dashboard", "__org", "__user", "__name", "__field", "__value", "__data", "__series", "__cell",
    "__url_time_range", "timeFilter", "__timeFilter", "__all", "__auto"})
_VARIABLE = re.compile(r"\$\{([A-Za-z0-9_]+)(?:[:.][^}]*)?\}|\$([A-Za-z_][A-Za-z0-9_]*)|\[\[([A-Za-z0-9_]+)\]\]")


def panels(dashboard: dict) -> Iterator[dict]:
    """Every panel, rows' nested panels included."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def variables_used(text: str) -> set[str]:
    return {next(g for g in match.groups() if g) for match in _VARIABLE.finditer(text)}


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def problems(dashboard: dict) -> list[str]:
    """Everything that would make the dashboard import badly or break a convention; [] when fine."""
    found: list[str] = []
    variables = [v.get("name") for v in dashboard.get("templating", {}).get("list", [])]
    if not variables or variables[0] != "datasource":
        found.append("the first variable must be `datasource`")
    if not dashboard.get("uid") or len(dashboard["uid"]) > 40:
        found.append("uid missing or longer than 40 characters")
    defined = set(variables) | BUILTIN_VARIABLES
    ids: set[int] = set()
    cells: dict[tuple[int, int], str] = {}
    for panel in panels(dashboard):
        title = panel.get("title") or f"panel {panel.get('id')}"
        kind = panel.get("type")
        if kind not in NATIVE:
            found.append(f"{title}: panel type {kind!r} is not a native Grafana 11/12 panel"
                         + (" (Angular)" if kind in ANGULAR else ""))
        if not isinstance(panel.get("id"), int) or panel["id"] in ids:
            found.append(f"{title}: panel id {panel.get('id')!r} missing or not unique")
        ids.add(panel.get("id"))
        pos = panel.get("gridPos") or {}
        x, y, w, h = (pos.get(k) for k in ("x", "y", "w", "h"))
        if not all(isinstance(v, int) for v in (x, y, w, h)) or w < 1 or h < 1 or x < 0 or y < 0 \
                or x + w > GRID_COLUMNS:
            found.append(f"{title}: gridPos {pos} is not on the 24-column grid")
        else:
            for cx in range(x, x + w):
                for cy in range(y, y + h):
                    if (cx, cy) in cells:
                        found.append(f"{title}: overlaps {cells[(cx, cy)]}")
                        break
                    cells[(cx, cy)] = title
                else:
                    continue
                break
        if kind == "row":
            continue
        if not (panel.get("description") or "").strip():
            found.append(f"{title}: no description")
        if not panel.get("fieldConfig", {}).get("defaults", {}).get("unit"):
            found.append(f"{title}: no unit")
        if kind != "text" and not panel.get("targets"):
            found.append(f"{title}: no queries")
        for target in panel.get("targets", []):
            source = (target.get("datasource") or {}).get("uid")
            if source != "${datasource}":
                found.append(f"{title}: query {target.get('refId')} does not use the datasource variable")
    for text in _strings({k: v for k, v in dashboard.items() if k != "templating"}):
        for name in variables_used(text) - defined:
            found.append(f"variable ${name} is used but not defined")
    for variable in dashboard.get("templating", {}).get("list", []):
        for name in variables_used(str(variable.get("query", ""))) - defined:
            found.append(f"variable {variable.get('name')}: uses undefined ${name}")
    return sorted(set(found))


_PROMQL_WORDS = frozenset({
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values", "group",
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "offset", "bool", "inf",
    "nan", "le"})
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_NAME = re.compile(r"(?<![A-Za-z0-9_:.])([A-Za-z_:][A-Za-z0-9_:]*)(?![A-Za-z0-9_:]|\s*\()")
_SELECTOR_NAME = re.compile(r'__name__\s*=~?\s*"([^"]+)"')


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (a `{__name__=~"a|b"}` selector counts as a and b)."""
    names = {n for match in _SELECTOR_NAME.finditer(expr) for n in match.group(1).split("|")}
    text = _MATCHERS.sub(" ", _STRING.sub('""', expr.replace("$__rate_interval", "1m")))
    text = _RANGE.sub(" ", _GROUPING.sub(" ", text))
    text = re.sub(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?", "1", text)
    for match in _NAME.finditer(text):
        word = match.group(1)
        if word.lower() not in _PROMQL_WORDS and not re.fullmatch(r"\d[\w.]*", word):
            names.add(word)
    return names


def queries(dashboard: dict) -> Iterator[tuple[str, str]]:
    """(where, expr) for every panel query, variable query and annotation of a dashboard."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield f"{panel.get('title')} / {target.get('refId')}", target.get("expr", "")
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        if variable.get("type") == "query":
            text = query.get("query", "") if isinstance(query, dict) else str(query)
            inner = re.match(r"\s*label_values\((.*),\s*[A-Za-z_]\w*\s*\)\s*$", text)
            if inner:
                yield f"variable {variable['name']}", inner.group(1)
    for annotation in dashboard.get("annotations", {}).get("list", []):
        if annotation.get("expr"):
            yield f"annotation {annotation.get('name')}", annotation["expr"]
