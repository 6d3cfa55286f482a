"""Previews: every shipped dashboard's panels queried from a live Prometheus and drawn to one PNG each."""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path

from inferwatch import assets
from inferwatch.dashboards.check import panels
from inferwatch.dashboards.preview import Series, Table, format_value, render_dashboard
from inferwatch.dashboards.queries import (
    Context,
    Prometheus,
    Result,
    has_data,
    legend,
    resolve_variables,
    run_dashboard,
)


def to_series(panel: dict, results: list[Result]) -> list[Series]:
    legends = {t.get("refId"): t.get("legendFormat", "") for t in panel.get("targets", [])}
    out = []
    for result in results:
        for series in result.series:
            points = series.get("values") or ([series["value"]] if "value" in series else [])
            out.append(Series(legend(legends.get(result.ref, ""), series.get("metric", {})), series.get("metric", {}),
                              [float(t) for t, _ in points], [float(v) for _, v in points]))
    return out


def tabulate(panel: dict, results: list[Result]) -> Table:
    """A table panel as Grafana shows it: one row per series, `merge` joining queries on their labels
    (a `Value #<refId>` column each), `organize` dropping and renaming columns, units per column."""
    transformations = {t.get("id"): t.get("options", {}) for t in panel.get("transformations", [])}
    several = len(results) > 1
    rows: dict[tuple, dict[str, float]] = {}
    for result in results:
        column = f"Value #{result.ref}" if several else "Value"
        for series in result.series:
            labels = tuple(sorted((k, v) for k, v in series.get("metric", {}).items() if k != "__name__"))
            key = labels if "merge" in transformations else (*labels, ("#", result.ref))
            point = series.get("value") or series.get("values", [[0, "nan"]])[-1]
            rows.setdefault(key, {})[column] = float(point[1])
    organize = transformations.get("organize", {})
    hidden, renamed = organize.get("excludeByName", {}), organize.get("renameByName", {})
    labels = sorted({k for key in rows for k, _ in key if k != "#"})
    values = sorted({c for row in rows.values() for c in row})
    columns = [c for c in [*labels, *values] if not hidden.get(c)]
    table_rows = []
    for key, row in rows.items():
        cells = dict(key)
        table_rows.append([cells.get(c, "") if c in labels else _cell(panel, c, renamed.get(c, c), row.get(c))
                           for c in columns])
    return Table([renamed.get(c, c) for c in columns], table_rows)


def _cell(panel: dict, column: str, shown: str, value: float | None) -> str:
    if value is None or math.isnan(value):
        return ""
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    unit, decimals = defaults.get("unit") or "short", defaults.get("decimals")
    for override in panel.get("fieldConfig", {}).get("overrides", []):
        matcher = override.get("matcher", {})
        pattern = matcher.get("options", "")
        hit = (matcher.get("id") == "byName" and pattern in (column, shown)) or (
            matcher.get("id") == "byRegexp" and any(re.fullmatch(pattern, n) for n in (column, shown)))
        for prop in override.get("properties", []) if hit else []:
            unit = prop["value"] if prop.get("id") == "unit" else unit
            decimals = prop["value"] if prop.get("id") == "decimals" else decimals
    return format_value(value, unit, decimals)


def preview_all(url: str, out: Path, start: float, end: float, scrape_interval: float,
                only: list[str] | None = None) -> tuple[list[Path], list[str]]:
    """(the PNGs written, "dashboard / panel" titles that had no data)."""
    prometheus = Prometheus(url)
    written, empty = [], []
    for file_name, shipped in assets.dashboards().items():
        short = file_name.removeprefix("inferwatch-").removesuffix(".json")
        if only and short not in only:
            continue
        model = copy.deepcopy(shipped)
        context = resolve_variables(model, prometheus, Context(start, end, scrape_interval))
        by_id = {p["id"]: p for p in panels(model)}
        for panel in by_id.values():  # Grafana shows titles with the variables filled in
            panel["title"] = context.expand(panel.get("title", ""))
        data: dict[int, list[Series] | Table] = {}
        for panel_id, results in run_dashboard(model, prometheus, context).items():
            panel = by_id[panel_id]
            data[panel_id] = tabulate(panel, results) if panel.get("type") == "table" else to_series(panel, results)
            if not has_data(results):
                empty.append(f"{short} / {panel['title']}")
        path = out / f"{short}.png"
        written.append(render_dashboard(model, data, path, (start, end), subtitle=url))  # type: ignore[arg-type]
    return written, empty
