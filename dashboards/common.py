"""The conventions every inferwatch dashboard follows, as grafanalib building blocks.

One place decides them, so the dashboards cannot drift apart:
- a `datasource` variable first; every query names `${datasource}`;
- uids from file names (`inferwatch-<name>`), tags `inferwatch`, links between dashboards that keep
  the time range and carry the variables;
- panels only of types Grafana 11/12 still ships natively; every panel has a unit and a description.

grafanalib 0.7 (its last release, 2024) still writes Grafana 6 JSON for gauges, bar gauges and
heatmaps; those three are re-declared here on grafanalib's own `Panel` with the current layout.
"""

from __future__ import annotations

from typing import ClassVar

import attr
from grafanalib import core as g

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
TAG = "inferwatch"

# Grafana's colour names, in the order thresholds usually need them.
GREEN, YELLOW, ORANGE, RED, BLUE, PURPLE = "green", "yellow", "orange", "red", "blue", "purple"


def uid(name: str) -> str:
    """A stable uid from the dashboard's file name (Grafana keeps links and stars by uid)."""
    return f"inferwatch-{name}"


DASHED = {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}}


def dashed(pattern: str, color: str | None = None) -> dict:
    """A field override drawing the series whose name matches `pattern` dashed (thresholds, limits, baselines)."""
    properties = [DASHED]
    if color:
        properties.append({"id": "color", "value": {"mode": "fixed", "fixedColor": color}})
    return {"matcher": {"id": "byRegexp", "options": pattern}, "properties": properties}


def steps(*pairs: tuple[str, float | None]) -> list[dict]:
    """Threshold steps: (colour, from-value); the first from-value is None (the base)."""
    return [{"color": color, "value": value} for color, value in pairs]


GOOD_HIGH = steps((RED, None), (ORANGE, 0.5), (GREEN, 0.9))  # ratios where more is better
BAD_HIGH = steps((GREEN, None), (ORANGE, 0.8), (RED, 0.9))  # ratios where more is worse
NEUTRAL = steps((BLUE, None))


# -- variables -----------------------------------------------------------------------------------------

def datasource_variable() -> g.Template:
    return g.Template(name="datasource", label="Data source", query="prometheus", type="datasource",
                      default="default", refresh=1)


def query_variable(name: str, label: str, query: str, multi: bool = True, include_all: bool = True,
                   hide: int = g.SHOW) -> g.Template:
    """A `label_values(...)` variable; All means every value (`.*`), so a new model shows up unasked."""
    template = g.Template(name=name, label=label, query=query, dataSource=DATASOURCE, multi=multi,
                          includeAll=include_all, allValue=".*" if include_all else None,
                          refresh=g.REFRESH_ON_TIME_RANGE_CHANGE, default="All" if include_all else None,
                          sort=g.SORT_ALPHA_ASC, hide=hide)
    if include_all:
        template._current = {"selected": True, "text": ["All"], "value": ["$__all"]}
    return template


# -- queries -------------------------------------------------------------------------------------------

def target(expr: str, legend: str = "", ref: str = "A", instant: bool = False, fmt: str = "time_series",
           interval: str = "") -> g.Target:
    return g.Target(expr=expr, legendFormat=legend, refId=ref, instant=instant, format=fmt,
                    datasource=DATASOURCE, interval=interval, intervalFactor=1)


def targets(*queries: tuple[str, str]) -> list[g.Target]:
    """(expr, legend) pairs as range queries A, B, C..."""
    return [target(expr, legend, chr(ord("A") + i)) for i, (expr, legend) in enumerate(queries)]


# -- panels --------------------------------------------------------------------------------------------

def grid(x: int, y: int, w: int, h: int) -> g.GridPos:
    return g.GridPos(h=h, w=w, x=x, y=y)


def row(title: str, y: int) -> g.RowPanel:
    return g.RowPanel(title=title, gridPos=grid(0, y, 24, 1))


def timeseries(title: str, description: str, queries: list[g.Target], unit: str, pos: g.GridPos,
               stacked: bool = False, min_value: int | None = None, max_value: int | None = None,
               fill: int = 10, overrides: list[dict] | None = None, thresholds: list[dict] | None = None,
               legend_calcs: list[str] | None = None, links: list[dict] | None = None,
               draw_style: str = "line") -> g.TimeSeries:
    return g.TimeSeries(
        title=title, description=description, targets=queries, unit=unit, gridPos=pos, dataSource=DATASOURCE,
        fillOpacity=fill, stacking={"mode": "normal", "group": "A"} if stacked else {}, valueMin=min_value,
        valueMax=max_value, overrides=overrides or [], legendCalcs=legend_calcs or [], tooltipMode="multi",
        legendDisplayMode="table" if legend_calcs else "list", links=links or [], drawStyle=draw_style,
        thresholds=thresholds or NEUTRAL, thresholdsStyleMode="line" if thresholds else "off",
        showPoints="never", lineWidth=1)


def stat(title: str, description: str, queries: list[g.Target], unit: str, pos: g.GridPos,
         thresholds: list[dict] | None = None, mappings: list[dict] | None = None, decimals: int | None = None,
         color_mode: str = "value", links: list[dict] | None = None, no_value: str = "No data") -> g.Stat:
    panel = g.Stat(title=title, description=description, targets=queries, format=unit, gridPos=pos,
                   dataSource=DATASOURCE, thresholds=thresholds or NEUTRAL, reduceCalc="lastNotNull",
                   colorMode=color_mode, graphMode="none", decimals=decimals, mappings=mappings or [],
                   links=links or [], noValue=no_value)
    return panel


def table(title: str, description: str, queries: list[g.Target], unit: str, pos: g.GridPos,
          transformations: list[dict] | None = None, overrides: list[dict] | None = None,
          links: list[dict] | None = None) -> g.Table:
    return g.Table(title=title, description=description, targets=queries, unit=unit, gridPos=pos,
                   dataSource=DATASOURCE, transformations=transformations or [], overrides=overrides or [],
                   links=links or [])


def state_timeline(title: str, description: str, queries: list[g.Target], unit: str, pos: g.GridPos,
                   mappings: list[dict], thresholds: list[dict]) -> g.StateTimeline:
    return g.StateTimeline(title=title, description=description, targets=queries, gridPos=pos,
                           dataSource=DATASOURCE, mappings=mappings, thresholds=thresholds,
                           extraJson={"fieldConfig": {"defaults": {"unit": unit}}})


def text(title: str, description: str, content: str, pos: g.GridPos) -> g.Text:
    return g.Text(title=title, description=description, content=content, mode="markdown", gridPos=pos,
                  extraJson={"fieldConfig": {"defaults": {"unit": "none"}}})


@attr.s
class _ReducedPanel(g.Panel):
    """A panel showing each series reduced to its last value (grafanalib writes the Grafana 6 layout)."""

    unit = attr.ib(default="none")
    min = attr.ib(default=None)
    max = attr.ib(default=None)
    decimals = attr.ib(default=None)
    kind: ClassVar[str] = ""  # the Grafana panel type
    options: ClassVar[dict] = {}  # the type's own display options

    def to_json_data(self) -> dict:
        return self.panel_json({
            "type": self.kind,
            "fieldConfig": {"defaults": {"unit": self.unit, "min": self.min, "max": self.max,
                                         "decimals": self.decimals, "color": {"mode": "thresholds"},
                                         "mappings": []},
                            "overrides": []},
            "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, **self.options},
        })


@attr.s
class Gauge(_ReducedPanel):
    kind: ClassVar[str] = "gauge"
    options: ClassVar[dict] = {"showThresholdLabels": False, "showThresholdMarkers": True, "orientation": "auto"}


@attr.s
class BarGauge(_ReducedPanel):
    kind: ClassVar[str] = "bargauge"
    options: ClassVar[dict] = {"displayMode": "gradient", "orientation": "horizontal", "showUnfilled": True,
                               "valueMode": "color", "namePlacement": "auto", "sizing": "auto",
                               "minVizHeight": 16, "maxVizHeight": 300, "minVizWidth": 8}


@attr.s
class Heatmap(g.Panel):
    """Grafana's current heatmap over Prometheus histogram buckets (`format: heatmap`), no Angular layout."""

    unit = attr.ib(default="s")

    def to_json_data(self) -> dict:
        return self.panel_json({
            "type": "heatmap",
            "fieldConfig": {"defaults": {"unit": self.unit, "custom": {"scaleDistribution": {"type": "linear"}}},
                            "overrides": []},
            "options": {"calculate": False, "cellGap": 1, "color": {"mode": "scheme", "scheme": "Oranges",
                                                                    "fill": "dark-orange", "scale": "exponential",
                                                                    "exponent": 0.5, "steps": 64},
                        "yAxis": {"axisPlacement": "left", "unit": self.unit},
                        "rowsFrame": {"layout": "auto"}, "filterValues": {"le": 1e-9},
                        "tooltip": {"mode": "single", "yHistogram": False}, "legend": {"show": True},
                        "exemplars": {"color": "rgba(255,0,255,0.7)"}, "cellValues": {"unit": "reqps"}},
        })


def gauge(title: str, description: str, queries: list[g.Target], unit: str, pos: g.GridPos,
          thresholds: list[dict], min_value: float = 0, max_value: float = 1) -> Gauge:
    return Gauge(title=title, description=description, targets=queries, unit=unit, gridPos=pos,
                 dataSource=DATASOURCE, thresholds=thresholds, min=min_value, max=max_value)


def bargauge(title: str, description: str, queries: list[g.Target], unit: str, pos: g.GridPos,
             thresholds: list[dict], min_value: float | None = 0, max_value: float | None = 1,
             links: list[dict] | None = None) -> BarGauge:
    return BarGauge(title=title, description=description, targets=queries, unit=unit, gridPos=pos,
                    dataSource=DATASOURCE, thresholds=thresholds, min=min_value, max=max_value, links=links or [])


def heatmap(title: str, description: str, expr: str, unit: str, pos: g.GridPos) -> Heatmap:
    """Bucket rates per `le` (`format: heatmap`): Grafana de-cumulates the buckets itself."""
    query = target(expr, "{{le}}", fmt="heatmap")
    return Heatmap(title=title, description=description, targets=[query], unit=unit, gridPos=pos,
                   dataSource=DATASOURCE, maxDataPoints=60)


# -- links and annotations -----------------------------------------------------------------------------

def dashboard_links() -> list[g.DashboardLink]:
    """A dropdown of every inferwatch dashboard, keeping the time range and the variables."""
    return [g.DashboardLink(title="inferwatch", type="dashboards", tags=[TAG], asDropdown=True,
                            includeVars=True, keepTime=True)]


def panel_link(title: str, dashboard: str, variables: str) -> dict:
    """A panel link to another dashboard carrying the time range and the given variables.

    `variables` is a query string such as `var-model=${__field.labels.model_name}` or
    `${__url_time_range}&${model:queryparam}`: Grafana fills it in when the link is followed.
    """
    return {"title": title, "url": f"/d/{uid(dashboard)}?${{__url_time_range}}&${{datasource:queryparam}}&{variables}"}


def version_annotation(model_filter: str = 'model_name=~"$model"') -> dict:
    """Deploys as annotations: the engine exporter restamps `..._since_timestamp_seconds` on a version change."""
    return {
        "name": "Model version changes",
        "datasource": DATASOURCE,
        "enable": True,
        "iconColor": "purple",
        "expr": f"changes(inferwatch_model_version_since_timestamp_seconds{{{model_filter}}}[$__rate_interval]) > 0",
        "step": "60s",
        "titleFormat": "Version change: {{model_name}}",
        "textFormat": "endpoint {{endpoint}}",
        "tagKeys": "model_name,endpoint",
        "useValueForTime": False,
    }


def builtin_annotation() -> dict:
    return {"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True, "hide": True,
            "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard"}


def dashboard(name: str, title: str, description: str, variables: list[g.Template], panels: list[g.Panel],
              annotations: list[dict] | None = None) -> g.Dashboard:
    """The dashboard with the shared settings; panel ids are assigned in layout order."""
    return g.Dashboard(
        title=title, uid=uid(name), description=description, tags=[TAG], timezone="browser", refresh="30s",
        time=g.Time("now-1h", "now"), graphTooltip=g.GRAPH_TOOLTIP_MODE_SHARED_CROSSHAIR, editable=True,
        schemaVersion=39, links=dashboard_links(), panels=panels,
        templating=g.Templating(list=[datasource_variable(), *variables]),
        annotations=g.Annotations(list=[builtin_annotation(), *(annotations or [])]),
    ).auto_panel_ids()


def constant_variable(name: str, value: str, description: str) -> g.Template:
    """A hidden constant (a mixin `_config` value the panels need); edit it after import if yours differs."""
    template = g.Template(name=name, query=value, type="constant", default=value, hide=g.HIDE_VARIABLE)
    template.label = description
    return template


def to_dashboard(name: str, column_or_field: str = "model_name", var: str = "model") -> list[dict]:
    """Data links from a value (a table cell or a series' label) to another dashboard, carrying it as `var`."""
    if column_or_field.startswith("series:"):
        value = "${__field.labels." + column_or_field.split(":", 1)[1] + "}"
    else:
        value = "${__value.raw}"
    return [{"title": f"Open in {name}", "url": f"/d/{uid(name)}?${{__url_time_range}}&${{datasource:queryparam}}"
                                                f"&var-{var}={value}"}]


def link_column(column: str, name: str, var: str) -> dict:
    """A table override turning `column`'s cells into links to dashboard `name` with `var` set to the cell."""
    return {"matcher": {"id": "byName", "options": column},
            "properties": [{"id": "links", "value": to_dashboard(name, column, var)}]}
