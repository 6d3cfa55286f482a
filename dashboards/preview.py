"""Matplotlib previews of our Grafana dashboards, drawn from live Prometheus data.

Grafana is not available where dashboards are reviewed, so each dashboard JSON (Grafana 11/12
model: `panels` with `gridPos` on the 24-column grid) is drawn into one PNG that keeps the
layout, units, thresholds and value mappings recognisable. Fetching the data is someone else's
job: `render_dashboard` takes the already-evaluated series per panel id.

matplotlib is the optional 'preview' extra and is imported only inside `render_dashboard`;
`format_value` and `Series` are plain Python. Rendering never raises for odd dashboard JSON or
data: a broken panel shows "render error: <type>" and the others are still drawn.
"""

from __future__ import annotations

import itertools
import math
import re
import sys
import textwrap
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inferwatch.kit.extras import MissingExtra

__all__ = ["Series", "format_value", "grafana_color", "render_dashboard"]

# Geometry. Grafana's grid is 24 columns; a row unit is GRID_CELL_HEIGHT (30 px) plus the
# 8 px vertical margin, which at 80 px per column keeps panels in Grafana's proportions
# (a w=12, h=8 panel is 960 x 304 px here). All sizes are multiples of 1/80 in, so the PNG is
# exactly WIDTH_PX x (HEADER_PX + rows * ROW_PX + FOOTER_PX).
DPI = 80
COLUMNS = 24
COL_PX = 80
ROW_PX = 38
HEADER_PX = 80
FOOTER_PX = 8
WIDTH_PX = COLUMNS * COL_PX
GAP_PX = 4  # half of Grafana's 8 px margin, on each side of a panel
DEFAULT_W = 12  # Grafana's defaults for a panel without a usable gridPos field
DEFAULT_H = 8
MAX_ROWS = 400  # bounds the image (and its memory) for absurd gridPos values

# Grafana's dark theme.
BG = "#111217"
PANEL_BG = "#181b1f"
BORDER = "#2b2f36"
TEXT = "#ccccdc"
MUTED = "#8e8ea0"
GRID = "#2a2d33"
TRACK = "#2c3036"


@dataclass(frozen=True)
class Table:
    """A table panel's cells, already transformed and formatted by the caller (Grafana's table transformations)."""

    columns: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Series:
    """One evaluated query series, in plain Python so the renderer needs no Prometheus client."""

    legend: str  # already formatted legend text (the caller applied legendFormat)
    labels: dict[str, str]
    times: list[float]  # unix seconds; one element for instant queries
    values: list[float]  # same length as times; NaN allowed for gaps


# --------------------------------------------------------------------------- value formatting

_Steps = Sequence[tuple[float, str]]
_TIME: _Steps = (
    (1e-9, "ns"),
    (1e-6, "\u00b5s"),
    (1e-3, "ms"),
    (1.0, "s"),
    (60.0, "min"),
    (3600.0, "h"),
    (86400.0, "d"),
)
_IEC: _Steps = tuple((1024.0**i, s) for i, s in enumerate(("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")))
_SI_BYTES: _Steps = tuple((1000.0**i, s) for i, s in enumerate(("B", "kB", "MB", "GB", "TB", "PB", "EB")))
_BITS: _Steps = tuple((1000.0**i, s) for i, s in enumerate(("b/s", "kb/s", "Mb/s", "Gb/s", "Tb/s")))
_WATT: _Steps = ((1e-3, "mW"), (1.0, "W"), (1e3, "kW"), (1e6, "MW"), (1e9, "GW"))
_HERTZ: _Steps = ((1.0, "Hz"), (1e3, "kHz"), (1e6, "MHz"), (1e9, "GHz"), (1e12, "THz"))
_SHORT: _Steps = ((1.0, ""), (1e3, "k"), (1e6, "M"), (1e9, "B"), (1e12, "T"))
# Units that are a scale of another one: unit -> (factor to the base unit, base unit).
_ALIASES: dict[str, tuple[float, str]] = {
    "ms": (1e-3, "s"),
    "\u00b5s": (1e-6, "s"),
    "us": (1e-6, "s"),
    "ns": (1e-9, "s"),
    "m": (60.0, "s"),
    "h": (3600.0, "s"),
    "d": (86400.0, "s"),
    "kbytes": (1024.0, "bytes"),
    "mbytes": (1024.0**2, "bytes"),
    "gbytes": (1024.0**3, "bytes"),
    "deckbytes": (1e3, "decbytes"),
    "decmbytes": (1e6, "decbytes"),
    "decgbytes": (1e9, "decbytes"),
    "kwatt": (1e3, "watt"),
    "mwatt": (1e-3, "watt"),
    "hertz": (1.0, "hertz"),
    "khz": (1e3, "hertz"),
    "mhz": (1e6, "hertz"),
    "ghz": (1e9, "hertz"),
}


def _num(value: float, decimals: int | None) -> str:
    """At most three significant digits (Grafana-like) unless `decimals` fixes the precision."""
    if decimals is not None:
        text = f"{value:.{max(0, min(int(decimals), 12))}f}"
    else:
        mag = abs(value)
        if mag == 0:
            return "0"
        if mag < 1e-4:
            return f"{value:.3g}"
        digits = 0 if mag >= 100 else 1 if mag >= 10 else 2 if mag >= 1 else 2 - math.floor(math.log10(mag))
        text = f"{value:.{digits}f}"
        if "." in text:
            text = text.rstrip("0").rstrip(".")
    if text.lstrip("-").strip("0.") == "":
        text = text.lstrip("-")
    return text


def _scaled(value: float, decimals: int | None, steps: _Steps, sep: str = " ") -> str:
    """Pick the largest step not above |value|, moving up one step when rounding reaches it."""
    mag = abs(value)
    idx = next((i for i, (f, _) in enumerate(steps) if f == 1.0), 0)
    if mag > 0:
        idx = max((i for i, (f, _) in enumerate(steps) if f <= mag), default=0)
    text = _num(mag / steps[idx][0], decimals)
    if idx + 1 < len(steps) and abs(float(text)) >= steps[idx + 1][0] / steps[idx][0]:
        idx += 1
        text = _num(mag / steps[idx][0], decimals)
    sign = "-" if value < 0 and float(text) != 0 else ""
    suffix = steps[idx][1]
    return f"{sign}{text}{sep}{suffix}" if suffix else f"{sign}{text}"


def _from_now(value: float) -> str:
    stamp = value / 1000 if abs(value) > 1e11 else value  # Grafana takes ms; Prometheus gives s
    delta = time.time() - stamp
    dist = abs(delta)
    if dist < 45:
        return "a few seconds ago" if delta >= 0 else "in a few seconds"
    for size, name in ((31536000, "year"), (2592000, "month"), (86400, "day"), (3600, "hour"), (60, "minute")):
        if dist >= size:
            n = int(dist // size)
            what = f"{n} {name}{'s' if n != 1 else ''}"
            return f"{what} ago" if delta >= 0 else f"in {what}"
    return "a minute ago"  # unreachable: 45 s <= dist < 60 s is covered by the minute step


def format_value(value: float, unit: str, decimals: int | None = None) -> str:
    """Grafana-like value formatting for the units our dashboards use, so previews read like Grafana.

    's' auto-scales ns/µs/ms/s/min/h/d, 'percentunit' is a ratio (0.42 -> 42%), 'percent' is
    already percent, 'bytes' is IEC (KiB/MiB/GiB), 'decbytes' SI, 'hertz' Hz..GHz, 'short'
    k/M/B/T; unknown units fall back to short with the unit appended. NaN -> 'No data'.
    """
    if value is None:
        return "No data"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(number):
        return "No data"
    unit = unit.strip() if isinstance(unit, str) else ""
    if decimals is not None:
        try:
            decimals = int(decimals)
        except (TypeError, ValueError):
            decimals = None
    if math.isinf(number):
        return "Inf" if number > 0 else "-Inf"
    if unit in _ALIASES and unit != "hertz":
        factor, unit = _ALIASES[unit]
        number *= factor
    if unit in ("", "short"):
        return _scaled(number, decimals, _SHORT, sep="")
    if unit == "none":
        return _num(number, decimals)
    if unit == "s":
        return _scaled(number, decimals, _TIME)
    if unit == "percentunit":
        return f"{_num(number * 100, decimals)}%"
    if unit == "percent":
        return f"{_num(number, decimals)}%"
    simple = {"bytes": _IEC, "decbytes": _SI_BYTES, "watt": _WATT, "hertz": _HERTZ, "bps": _BITS}
    if unit in simple:
        return _scaled(number, decimals, simple[unit])
    if unit in ("Bps", "binBps"):
        return _scaled(number, decimals, _SI_BYTES if unit == "Bps" else _IEC) + "/s"
    if unit == "celsius":
        return f"{_num(number, decimals)} \u00b0C"
    if unit == "volt":
        return f"{_num(number, decimals)} V"
    if unit == "reqps":
        return f"{_scaled(number, decimals, _SHORT, sep='')} req/s"
    if unit == "currencyUSD":
        sign = "-" if number < 0 else ""
        mag = abs(number)
        places = 2 if decimals is None else max(0, decimals)
        body = f"{mag:.{places}f}" if mag < 1000 else _scaled(mag, decimals, _SHORT, "")
        return f"{sign}${body}"
    if unit == "locale":
        if decimals is not None:
            return f"{number:,.{max(0, decimals)}f}"
        if number == int(number) and abs(number) < 1e15:
            return f"{int(number):,}"
        return f"{number:,.3f}".rstrip("0").rstrip(".")
    if unit == "bool":
        return "True" if number != 0 else "False"
    if unit == "dateTimeFromNow":
        return _from_now(number)
    if unit.startswith("suffix:"):
        return _scaled(number, decimals, _SHORT, sep="") + unit[len("suffix:") :]
    if unit.startswith("prefix:"):
        return unit[len("prefix:") :] + _scaled(number, decimals, _SHORT, sep="")
    return f"{_scaled(number, decimals, _SHORT, sep='')} {unit}"


# --------------------------------------------------------------------------- colours, thresholds, mappings

_NAMED: dict[str, str] = {}
for _hue, _shades in {
    "red": ("#FFA6B0", "#FF7383", "#F2495C", "#E02F44", "#C4162A"),
    "orange": ("#FFCB7D", "#FFB357", "#FF9830", "#FF780A", "#FA6400"),
    "yellow": ("#FFF899", "#FFEE52", "#FADE2A", "#F2CC0C", "#E0B400"),
    "green": ("#C8F2C2", "#96D98D", "#73BF69", "#56A64B", "#37872D"),
    "blue": ("#C0D8FF", "#8AB8FF", "#5794F2", "#3274D9", "#1F60C4"),
    "purple": ("#DEB6F2", "#CA95E5", "#B877D9", "#A352CC", "#8F3BB8"),
}.items():
    for _prefix, _hex in zip(("super-light-", "light-", "", "semi-dark-", "dark-"), _shades, strict=True):
        _NAMED[_prefix + _hue] = _hex
_NAMED.update({"text": TEXT, "white": "#FFFFFF", "black": "#000000", "grey": "#8E8E8E", "gray": "#8E8E8E"})
_NAMED.update({"dark-grey": "#464C54", "light-grey": "#C7D0D9", "panel-bg": PANEL_BG})
# Grafana's classic palette (timeseries default "palette-classic").
_PALETTE = (
    "#73BF69", "#F2CC0C", "#8AB8FF", "#FF780A", "#F2495C", "#5794F2", "#B877D9", "#705DA0",
    "#37872D", "#FADE2A", "#447EBC", "#C15C17", "#890F02", "#0A437C", "#6D1F62", "#584477",
)  # fmt: skip
_FALLBACK = (0.557, 0.557, 0.557, 1.0)
RGBA = tuple[float, float, float, float]


def _hex_rgba(text: str) -> RGBA | None:
    digits = text[1:]
    if len(digits) in (3, 4):
        digits = "".join(c * 2 for c in digits)
    if len(digits) not in (6, 8) or any(c not in "0123456789abcdefABCDEF" for c in digits):
        return None
    parts = [int(digits[i : i + 2], 16) / 255 for i in range(0, len(digits), 2)]
    r, g, b = parts[:3]
    return (r, g, b, parts[3] if len(parts) == 4 else 1.0)


def grafana_color(name: Any) -> RGBA:
    """An RGBA tuple for any Grafana colour string (named, hex, rgb()/rgba()); unknown -> grey."""
    if not isinstance(name, str) or not name.strip():
        return _FALLBACK
    text = name.strip()
    low = text.lower()
    if low == "transparent":
        return (0.0, 0.0, 0.0, 0.0)
    if low in _NAMED:
        return _hex_rgba(_NAMED[low]) or _FALLBACK
    if text.startswith("#"):
        return _hex_rgba(text) or _FALLBACK
    match = re.fullmatch(r"rgba?\(\s*([\d.]+)\s*,\s*([\d.]+)\s*,\s*([\d.]+)\s*(?:,\s*([\d.]+)\s*)?\)", low)
    if match:
        try:
            r, g, b = (min(max(float(match.group(i)) / 255, 0.0), 1.0) for i in (1, 2, 3))
            alpha = min(max(float(match.group(4)), 0.0), 1.0) if match.group(4) else 1.0
        except ValueError:
            return _FALLBACK
        return (r, g, b, alpha)
    if "matplotlib" in sys.modules:
        try:
            from matplotlib.colors import to_rgba

            r, g, b, a = to_rgba(low)
            return (r, g, b, a)
        except (ValueError, TypeError):
            return _FALLBACK
    return _FALLBACK


def _to_float(value: Any, default: float = math.nan) -> float:
    if isinstance(value, bool):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _threshold_color(value: float, thresholds: Any, lo: float = 0.0, hi: float = 100.0) -> str | None:
    """The colour of the highest step whose value <= `value` (the step with value None is the base)."""
    if not isinstance(thresholds, Mapping) or math.isnan(value):
        return None
    steps = [s for s in thresholds.get("steps") or [] if isinstance(s, Mapping)]
    if not steps:
        return None
    x = value
    if thresholds.get("mode") == "percentage":
        x = (value - lo) / (hi - lo) * 100 if hi > lo else 0.0
    color: str | None = None
    best = -math.inf
    for step in steps:
        raw = step.get("value")
        level = -math.inf if raw is None else _to_float(raw)
        if math.isnan(level):
            continue
        if level <= x and level >= best:
            best, color = level, step.get("color")
    return color


def _threshold_levels(thresholds: Any) -> list[tuple[float, str]]:
    """Sorted (value, colour) steps, the base step as -inf."""
    if not isinstance(thresholds, Mapping):
        return []
    out = []
    for step in thresholds.get("steps") or []:
        if isinstance(step, Mapping):
            raw = step.get("value")
            level = -math.inf if raw is None else _to_float(raw)
            if not math.isnan(level):
                out.append((level, str(step.get("color") or "")))
    return sorted(out, key=lambda item: item[0])


def _mapping_result(result: Any) -> tuple[str | None, str | None]:
    if not isinstance(result, Mapping):
        return None, None
    text = result.get("text")
    color = result.get("color")
    return (None if text in (None, "") else str(text)), (str(color) if color else None)


def _apply_mappings(value: float, mappings: Any) -> tuple[str | None, str | None]:
    """(text, colour) of the first value mapping that matches, as Grafana checks them in order."""
    if not isinstance(mappings, list):
        return None, None
    for mapping in mappings:
        if not isinstance(mapping, Mapping):
            continue
        kind = mapping.get("type")
        options = mapping.get("options")
        if kind == "value" and isinstance(options, Mapping):
            for key, result in options.items():
                number = _to_float(key)
                if (not math.isnan(number) and number == value) or str(key) == _num(value, None):
                    return _mapping_result(result)
        elif kind == 1:  # legacy (Grafana < 7) value mapping
            number = _to_float(mapping.get("value"))
            if number == value:
                return _mapping_result(mapping)
        elif kind in ("range", 2):
            source = options if isinstance(options, Mapping) else mapping
            lo = _to_float(source.get("from"), -math.inf)
            hi = _to_float(source.get("to"), math.inf)
            lo = -math.inf if math.isnan(lo) else lo
            hi = math.inf if math.isnan(hi) else hi
            if not math.isnan(value) and lo <= value <= hi:
                return _mapping_result(source.get("result", source))
        elif kind == "special" and isinstance(options, Mapping):
            if math.isnan(value) and options.get("match") in ("nan", "null", "null+nan"):
                return _mapping_result(options.get("result"))
        elif kind == "regex" and isinstance(options, Mapping):
            try:
                if re.search(str(options.get("pattern", "")), _num(value, None)):
                    return _mapping_result(options.get("result"))
            except re.error:
                continue
    return None, None


# --------------------------------------------------------------------------- reducers and input cleaning


def _finite(values: Iterable[float]) -> list[float]:
    return [v for v in values if not math.isnan(v)]


def _reduce(values: Sequence[float], calc: str = "lastNotNull") -> float:
    """Grafana's reduceOptions.calcs for the calcs our panels use (lastNotNull by default)."""
    good = _finite(values)
    if calc == "last":
        return values[-1] if values else math.nan
    if calc == "first":
        return values[0] if values else math.nan
    if calc == "count":
        return float(len(good))
    if not good:
        return math.nan
    reducers = {
        "lastNotNull": lambda: good[-1],
        "firstNotNull": lambda: good[0],
        "mean": lambda: sum(good) / len(good),
        "max": lambda: max(good),
        "min": lambda: min(good),
        "sum": lambda: sum(good),
        "range": lambda: max(good) - min(good),
        "diff": lambda: good[-1] - good[0],
        "delta": lambda: good[-1] - good[0],
        "median": lambda: sorted(good)[len(good) // 2],
    }
    return reducers.get(calc, reducers["lastNotNull"])()


def _clean(raw: Any) -> Series | None:
    """A Series with float times/values of equal length, sorted by time; None if unusable."""
    if isinstance(raw, Series):
        legend, labels, times, values = raw.legend, raw.labels, raw.times, raw.values
    elif isinstance(raw, Mapping):
        legend, labels = raw.get("legend", ""), raw.get("labels", {})
        times, values = raw.get("times", []), raw.get("values", [])
    else:
        return None
    labels = {str(k): str(v) for k, v in labels.items()} if isinstance(labels, Mapping) else {}
    try:
        pairs = [(_to_float(t), _to_float(v)) for t, v in zip(list(times or []), list(values or []), strict=False)]
    except TypeError:
        pairs = []
    pairs = sorted((p for p in pairs if math.isfinite(p[0])), key=lambda p: p[0])
    pairs = [(t, v if not math.isinf(v) else math.nan) for t, v in pairs]
    return Series(
        legend=str(legend) if legend is not None else "",
        labels=labels,
        times=[t for t, _ in pairs],
        values=[v for _, v in pairs],
    )


def _series_for(results: Any, panel_id: Any) -> list[Series]:
    if not isinstance(results, Mapping):
        return []
    raw = results.get(panel_id)
    if raw is None and panel_id is not None:
        raw = results.get(str(panel_id))
        if raw is None:
            try:
                raw = results.get(int(panel_id))
            except (TypeError, ValueError):
                raw = None
    if isinstance(raw, Table):
        return raw  # type: ignore[return-value]  # drawn as is by _draw_table
    if not isinstance(raw, list | tuple):
        return []
    return [s for s in (_clean(r) for r in raw) if s is not None]


def _has_data(series: Sequence[Series]) -> bool:
    if isinstance(series, Table):
        return bool(series.rows)
    return any(not math.isnan(v) for s in series for v in s.values)


def _dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _defaults(panel: Mapping[str, Any]) -> dict[str, Any]:
    return _dict(_dict(panel.get("fieldConfig")).get("defaults"))


def _unit(defaults: Mapping[str, Any]) -> str:
    unit = defaults.get("unit")
    return unit if isinstance(unit, str) and unit else "short"


def _decimals(defaults: Mapping[str, Any]) -> int | None:
    value = _to_float(defaults.get("decimals"))
    return None if math.isnan(value) else int(value)


def _overrides(panel: Mapping[str, Any], name: str) -> dict[str, Any]:
    """Override properties (id -> value) whose byName/byRegexp matcher selects series `name`."""
    props: dict[str, Any] = {}
    for override in _dict(panel.get("fieldConfig")).get("overrides") or []:
        if not isinstance(override, Mapping):
            continue
        matcher = _dict(override.get("matcher"))
        option = matcher.get("options")
        hit = False
        if matcher.get("id") in ("byName", "byDisplayName"):
            hit = option == name
        elif matcher.get("id") == "byRegexp" and isinstance(option, str):
            try:
                hit = re.search(option, name) is not None
            except re.error:
                hit = False
        if hit:
            for prop in override.get("properties") or []:
                if isinstance(prop, Mapping) and isinstance(prop.get("id"), str):
                    props[prop["id"]] = prop.get("value")
    return props


def _fixed_color(color_cfg: Any) -> str | None:
    cfg = _dict(color_cfg)
    if cfg.get("mode") in ("fixed", "shades") and cfg.get("fixedColor"):
        return str(cfg["fixedColor"])
    return None


def _series_color(defaults: Mapping[str, Any], props: Mapping[str, Any], index: int) -> str:
    return _fixed_color(props.get("color")) or _fixed_color(defaults.get("color")) or _PALETTE[index % len(_PALETTE)]


def _esc(text: Any) -> str:
    """Text for matplotlib: '$' would otherwise start mathtext (titles use $variables)."""
    return str(text).replace("\\", "\\\\").replace("$", r"\$")


def _clip(text: str, chars: float) -> str:
    limit = max(int(chars), 2)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _pt(px: float) -> float:
    """Font size in points for a glyph height in pixels."""
    return px * 72 / DPI


# --------------------------------------------------------------------------- drawing context

Box = tuple[float, float, float, float]  # x, y (from the top), width, height in pixels


@dataclass
class _Ctx:
    fig: Any
    width: float
    height: float
    np: Any
    mpl: Any
    time_range: tuple[float, float]

    def rect(self, box: Box) -> list[float]:
        x, y, w, h = box
        w, h = max(w, 1.0), max(h, 1.0)
        return [x / self.width, 1 - (y + h) / self.height, w / self.width, h / self.height]

    def axes(self, box: Box, grid: bool = False) -> Any:
        ax = self.fig.add_axes(self.rect(box))
        ax.set_facecolor("none")
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.tick_params(colors=MUTED, labelsize=8, length=0, pad=3)
        if grid:
            ax.grid(True, color=GRID, linewidth=0.7)
            ax.set_axisbelow(True)
        else:
            ax.set_xticks([])
            ax.set_yticks([])
        ax.set_navigate(False)
        return ax


def _message(ax: Any, box: Box, frame_box: Box, text: str, color: str = MUTED) -> None:
    """Centred text in `box`, drawn on the panel frame (whose data coordinates are pixels)."""
    cx = box[0] - frame_box[0] + box[2] / 2
    cy = box[1] - frame_box[1] + box[3] / 2
    size = min(_pt(max(box[3] * 0.18, 9)), 14)
    ax.text(cx, cy, _esc(_clip(text, box[2] / (size * 0.7))), ha="center", va="center", color=color, fontsize=size)


def _grid_cells(box: Box, count: int, prefer_row: bool | None = None) -> list[Box]:
    """Split a box into `count` cells: side by side when wide, stacked when tall."""
    x, y, w, h = box
    if count <= 1:
        return [box]
    side_by_side = w >= h * 1.2 if prefer_row is None else prefer_row
    if side_by_side:
        cw = w / count
        return [(x + i * cw, y, cw, h) for i in range(count)]
    ch = h / count
    return [(x, y + i * ch, w, ch) for i in range(count)]


def _time_ticks(start: float, end: float, max_ticks: int) -> tuple[list[float], str]:
    """Tick positions on round local times and the strftime format to label them."""
    span = max(end - start, 1.0)
    steps = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800,
             604800, 2592000)  # fmt: skip
    step = next((s for s in steps if span / s <= max(max_ticks, 1)), span / max(max_ticks, 1))
    offset = time.localtime(start).tm_gmtoff
    first = math.ceil((start + offset) / step) * step - offset
    ticks = []
    t = first
    while t <= end + 1e-6 and len(ticks) < 200:
        ticks.append(t)
        t += step
    if step < 60:
        fmt = "%H:%M:%S"
    elif span <= 2 * 86400:
        fmt = "%H:%M"
    elif step < 86400:
        fmt = "%m/%d %H:%M"
    else:
        fmt = "%m/%d"
    return ticks, fmt


def _time_axis(ctx: _Ctx, ax: Any, width_px: float) -> None:
    start, end = ctx.time_range
    ax.set_xlim(start, end)
    ticks, fmt = _time_ticks(start, end, max(int(width_px / 90), 2))
    ticker = ctx.mpl.ticker
    ax.xaxis.set_major_locator(ticker.FixedLocator(ticks))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _pos: time.strftime(fmt, time.localtime(v))))


def _value_axis(ctx: _Ctx, ax: Any, height_px: float, unit: str, decimals: int | None) -> None:
    ticker = ctx.mpl.ticker
    ax.yaxis.set_major_locator(ticker.MaxNLocator(nbins=max(2, int(height_px / 45)), min_n_ticks=2))
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _pos: _esc(format_value(v, unit, decimals))))


# --------------------------------------------------------------------------- panel types


def _draw_timeseries(ctx: _Ctx, panel: dict[str, Any], series: list[Series], box: Box) -> str | None:
    np = ctx.np
    defaults = _defaults(panel)
    custom = _dict(defaults.get("custom"))
    unit, decimals = _unit(defaults), _decimals(defaults)
    stacking = _dict(custom.get("stacking")).get("mode", "none")
    fill = min(max(_to_float(custom.get("fillOpacity"), 0.0), 0.0), 100.0) / 100
    if math.isnan(fill):
        fill = 0.0
    width = _to_float(custom.get("lineWidth"), 1.0)
    draw_style = custom.get("drawStyle", "line")

    # Adaptive bands: `custom.fillBelowTo` on the upper series names the lower one; both draw dashed.
    bands: dict[str, str] = {}
    for s in series:
        target = _overrides(panel, s.legend).get("custom.fillBelowTo")
        if isinstance(target, str):
            bands[s.legend] = target
    lines = []  # (series, colour, linestyle, linewidth, fill alpha, values)
    for index, s in enumerate(series):
        props = _overrides(panel, s.legend)
        if _dict(props.get("custom.hideFrom")).get("viz"):
            continue
        style = "-"
        fill_kind = _dict(props.get("custom.lineStyle", custom.get("lineStyle"))).get("fill")
        if fill_kind == "dash":
            style = "--"
        elif fill_kind in ("dot", "dots"):
            style = ":"
        alpha = fill
        if s.legend in bands or s.legend in bands.values():
            style, alpha = "--", 0.0
        if "custom.fillOpacity" in props:
            alpha = min(max(_to_float(props["custom.fillOpacity"], 0.0), 0.0), 100.0) / 100
        lw = _to_float(props.get("custom.lineWidth"), width)
        lw = 1.0 if math.isnan(lw) else lw
        values = list(s.values)
        if props.get("custom.transform", custom.get("transform")) == "negative-Y":
            values = [-v for v in values]
        lines.append((s, _series_color(defaults, props, index), style, lw, alpha, values))
    if not lines or not any(not math.isnan(v) for line in lines for v in line[5]):
        return "No data"

    # Legend below the plot, up to 8 entries.
    legend_opts = _dict(_dict(panel.get("options")).get("legend"))
    show_legend = legend_opts.get("showLegend", True) is not False and legend_opts.get("displayMode") != "hidden"
    calcs = [c for c in legend_opts.get("calcs") or [] if isinstance(c, str)]
    entries = []
    if show_legend:
        for s, color, style, _lw, _alpha, values in lines:
            label = s.legend or "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(s.labels.items())) + "}"
            if calcs:
                label += "  " + "  ".join(f"{c}: {format_value(_reduce(values, c), unit, decimals)}" for c in calcs[:3])
            entries.append((label, color, style))
    legend_cols = max(1, int(box[2] // (320 if calcs else 220)))
    max_entries = 8
    rows = math.ceil(min(len(entries), max_entries) / legend_cols) if entries else 0
    while rows > 1 and rows * 15 > box[3] * 0.35:
        rows -= 1
    shown = entries[: rows * legend_cols]
    if len(shown) < len(entries):
        shown = shown[: max(len(shown) - 1, 0)] if shown else []
    legend_h = rows * 15 + (4 if rows else 0)

    plot = (box[0] + 62, box[1] + 2, box[2] - 66, box[3] - 20 - legend_h)
    if plot[2] < 20 or plot[3] < 20:
        return "panel too small"
    ax = ctx.axes(plot, grid=True)

    if draw_style not in ("bars", "points"):
        draw_style = "line"
    if stacking in ("normal", "percent") and len(lines) > 0:
        grid_t = np.unique(np.concatenate([np.asarray(s.times, dtype=float) for s, *_ in lines]))
        layers = []
        for s, *_rest, values in lines:
            lookup = dict(zip(s.times, values, strict=False))
            layers.append(np.array([lookup.get(t, math.nan) for t in grid_t], dtype=float))
        matrix = np.nan_to_num(np.vstack(layers), nan=0.0)
        if stacking == "percent":
            totals = matrix.sum(axis=0)
            matrix = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals != 0)
            unit, decimals = "percentunit", None
        tops = np.cumsum(matrix, axis=0)
        colors = [line[1] for line in lines]
        alpha = max(line[4] for line in lines)
        if alpha > 0:
            ax.stackplot(grid_t, matrix, colors=[grafana_color(c) for c in colors], alpha=alpha, linewidth=0)
        for (_s, color, style, lw, _a, _v), top in zip(lines, tops, strict=True):
            ax.plot(grid_t, top, color=grafana_color(color), linestyle=style, linewidth=lw)
    else:
        for s, color, style, lw, alpha, values in lines:
            t = np.asarray(s.times, dtype=float)
            v = np.asarray(values, dtype=float)
            rgba = grafana_color(color)
            if draw_style == "points" or len(t) == 1:
                ax.plot(t, v, linestyle="none", marker="o", markersize=3, color=rgba)
            elif draw_style == "bars":
                step = float(np.median(np.diff(t))) if len(t) > 1 else 60.0
                ax.bar(t, np.nan_to_num(v), width=step * 0.8, color=rgba, alpha=max(alpha, 0.6))
            else:
                ax.plot(t, v, color=rgba, linestyle=style, linewidth=lw)
                if alpha > 0:
                    ax.fill_between(t, v, 0, where=~np.isnan(v), color=rgba, alpha=alpha, linewidth=0)
        by_name = {line[0].legend: line for line in lines}
        for upper, lower in bands.items():
            if upper in by_name and lower in by_name and by_name[upper][0].times == by_name[lower][0].times:
                t = np.asarray(by_name[upper][0].times, dtype=float)
                hi_v, lo_v = np.asarray(by_name[upper][5], dtype=float), np.asarray(by_name[lower][5], dtype=float)
                ok = ~(np.isnan(hi_v) | np.isnan(lo_v))
                band_color = grafana_color(by_name[upper][1])
                ax.fill_between(t, lo_v, hi_v, where=ok, color=band_color, alpha=0.12, linewidth=0)

    # Threshold lines/areas (custom.thresholdsStyle).
    tstyle = str(_dict(custom.get("thresholdsStyle")).get("mode", "off"))
    if tstyle != "off":
        levels = _threshold_levels(defaults.get("thresholds"))
        for level, color in levels:
            if math.isfinite(level) and ("line" in tstyle or "dashed" in tstyle):
                dash = "--" if "dashed" in tstyle else "-"
                ax.axhline(level, color=grafana_color(color), linewidth=1, linestyle=dash)

    scale = _dict(custom.get("scaleDistribution"))
    finite = [v for line in lines for v in line[5] if not math.isnan(v)]
    if scale.get("type") == "log" and finite and min(finite) > 0:
        ax.set_yscale("log")
    else:
        _value_axis(ctx, ax, plot[3], unit, decimals)
    lo, hi = _to_float(defaults.get("min")), _to_float(defaults.get("max"))
    soft_lo, soft_hi = _to_float(custom.get("axisSoftMin")), _to_float(custom.get("axisSoftMax"))
    cur_lo, cur_hi = ax.get_ylim()
    new_lo = lo if not math.isnan(lo) else min(cur_lo, soft_lo) if not math.isnan(soft_lo) else cur_lo
    new_hi = hi if not math.isnan(hi) else max(cur_hi, soft_hi) if not math.isnan(soft_hi) else cur_hi
    if new_hi > new_lo:
        ax.set_ylim(new_lo, new_hi)
    _time_axis(ctx, ax, plot[2])

    if shown:
        line2d = ctx.mpl.lines.Line2D
        handles = [line2d([], [], color=grafana_color(c), linestyle=st, linewidth=2) for _l, c, st in shown]
        col_chars = (box[2] / legend_cols - 30) / 5.5
        labels = [_esc(_clip(label, col_chars)) for label, _c, _s in shown]
        if len(shown) < len(entries):
            handles.append(line2d([], [], color="none"))
            labels.append(f"+{len(entries) - len(shown)} more")
        anchor = (box[0] / ctx.width, 1 - (box[1] + box[3] - legend_h) / ctx.height)
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=anchor, bbox_transform=ctx.fig.transFigure,
                  ncol=legend_cols, frameon=False, fontsize=8, labelcolor=TEXT, handlelength=1.6,
                  borderaxespad=0, borderpad=0.2, columnspacing=1.5, labelspacing=0.3)  # fmt: skip
    return None


def _stat_color(value: float, defaults: Mapping[str, Any], lo: float, hi: float) -> tuple[str, str | None]:
    """(text, colour) for one stat/gauge value: a value mapping wins, then the thresholds."""
    text, color = _apply_mappings(value, defaults.get("mappings"))
    if text is None:
        text = format_value(value, _unit(defaults), _decimals(defaults))
    if color is None:
        color = _fixed_color(defaults.get("color")) or _threshold_color(value, defaults.get("thresholds"), lo, hi)
    return text, color


def _reduced(panel: Mapping[str, Any], series: Sequence[Series]) -> list[tuple[str, float, Series]]:
    calcs = _dict(_dict(panel.get("options")).get("reduceOptions")).get("calcs")
    calc = calcs[0] if isinstance(calcs, list) and calcs and isinstance(calcs[0], str) else "lastNotNull"
    return [(s.legend, _reduce(s.values, calc), s) for s in series]


def _range(defaults: Mapping[str, Any], values: Sequence[float]) -> tuple[float, float]:
    """Gauge/bargauge bounds: fieldConfig min/max, else 0 and 1 (percentunit), 100 (percent) or the data max."""
    lo = _to_float(defaults.get("min"))
    hi = _to_float(defaults.get("max"))
    lo = 0.0 if math.isnan(lo) else lo
    if math.isnan(hi):
        unit = _unit(defaults)
        finite = _finite(values)
        hi = 1.0 if unit == "percentunit" else 100.0 if unit == "percent" else max(finite, default=lo + 1)
    if hi <= lo:
        hi = lo + 1
    return lo, hi


def _draw_stat(ctx: _Ctx, panel: dict[str, Any], series: list[Series], box: Box) -> str | None:
    np = ctx.np
    defaults = _defaults(panel)
    options = _dict(panel.get("options"))
    items = _reduced(panel, series)
    if not items or all(math.isnan(v) for _, v, _ in items):
        return "No data"
    cap = 6
    extra = len(items) - cap if len(items) > cap else 0
    items = items[: cap - 1] if extra else items
    extra = extra + 1 if extra else 0
    color_mode = options.get("colorMode", "value")
    graph_mode = options.get("graphMode", "area")
    text_mode = options.get("textMode", "auto")
    show_name = text_mode in ("value_and_name", "name") or (text_mode == "auto" and len(items) > 1)
    lo, hi = _range(defaults, [v for _, v, _ in items])
    inner = (box[0], box[1], box[2], box[3] - (14 if extra else 0))
    for (legend, value, s), cell in zip(items, _grid_cells(inner, len(items)), strict=True):
        text, color = _stat_color(value, defaults, lo, hi)
        rgba = grafana_color(color or "text")
        cell = (cell[0] + 2, cell[1] + 2, cell[2] - 4, cell[3] - 4)
        ax = ctx.axes(cell)
        ax.set_zorder(1)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        text_color = rgba
        if color_mode in ("background", "background_solid"):
            ax.set_facecolor(rgba)
            text_color = grafana_color("white")
        elif color_mode == "none":
            text_color = grafana_color("text")
        points = [(t, v) for t, v in zip(s.times, s.values, strict=False) if not math.isnan(v)]
        if graph_mode == "area" and len(points) > 1 and cell[3] > 60:
            spark = ctx.axes((cell[0], cell[1] + cell[3] * 0.62, cell[2], cell[3] * 0.38))
            spark.set_zorder(0.5)
            t = np.array([p[0] for p in points])
            v = np.array([p[1] for p in points])
            line_color = text_color if color_mode in ("background", "background_solid") else rgba
            spark.plot(t, v, color=line_color, linewidth=1, alpha=0.7)
            spark.fill_between(t, v, v.min(), color=line_color, alpha=0.15, linewidth=0)
            spark.set_xlim(t.min(), t.max())
            spark.margins(y=0.05)
        name_h = min(16.0, cell[3] * 0.22) if show_name else 0.0
        avail_h = cell[3] - name_h
        size_px = min(avail_h * 0.5, cell[2] * 0.9 / max(len(text), 1) / 0.62, 90)
        if show_name:
            name_size = _pt(min(name_h * 0.75, 11))
            ax.text(0.5, 1 - (name_h / 2) / cell[3], _esc(_clip(legend, cell[2] / (name_size * 0.8))),
                    ha="center", va="center", color=TEXT, fontsize=max(name_size, 6))  # fmt: skip
        if text_mode != "name":
            ax.text(0.5, (avail_h / 2) / cell[3], _esc(text), ha="center", va="center", color=text_color,
                    fontsize=max(_pt(size_px), 7), fontweight="bold")  # fmt: skip
    if extra:
        ax = ctx.axes((box[0], box[1] + box[3] - 14, box[2], 14))
        ax.text(0.99, 0.5, f"+{extra} more", ha="right", va="center", color=MUTED, fontsize=8,
                transform=ax.transAxes)  # fmt: skip
    return None


def _draw_gauge(ctx: _Ctx, panel: dict[str, Any], series: list[Series], box: Box) -> str | None:
    wedge = ctx.mpl.patches.Wedge
    defaults = _defaults(panel)
    options = _dict(panel.get("options"))
    items = _reduced(panel, series)
    if not items or all(math.isnan(v) for _, v, _ in items):
        return "No data"
    cap = 6
    extra = max(len(items) - cap, 0)
    items = items[:cap]
    lo, hi = _range(defaults, [v for _, v, _ in items])
    levels = _threshold_levels(defaults.get("thresholds"))
    percent_mode = _dict(defaults.get("thresholds")).get("mode") == "percentage"
    show_markers = options.get("showThresholdMarkers", True) is not False
    cells = _grid_cells(box, len(items))
    for (legend, value, _s), cell in zip(items, cells, strict=True):
        text, color = _stat_color(value, defaults, lo, hi)
        ax = ctx.axes(cell)
        ax.set_xlim(-1.15, 1.15)
        ax.set_ylim(-0.45 if len(items) > 1 else -0.2, 1.15)
        ax.set_aspect("equal", adjustable="box")
        ax.add_patch(wedge((0, 0), 1.0, 0, 180, width=0.22, color=TRACK))
        frac = 0.0 if math.isnan(value) else min(max((value - lo) / (hi - lo), 0.0), 1.0)
        if frac > 0:
            ax.add_patch(wedge((0, 0), 1.0, 180 - 180 * frac, 180, width=0.22, color=grafana_color(color or "green")))
        if show_markers and levels:
            bounds = []
            for i, (level, c) in enumerate(levels):
                start = lo if not math.isfinite(level) else (lo + (hi - lo) * level / 100 if percent_mode else level)
                nxt = levels[i + 1][0] if i + 1 < len(levels) else math.inf
                end = hi if not math.isfinite(nxt) else (lo + (hi - lo) * nxt / 100 if percent_mode else nxt)
                bounds.append((start, end, c))
            for start, end, c in bounds:
                f0 = min(max((start - lo) / (hi - lo), 0.0), 1.0)
                f1 = min(max((end - lo) / (hi - lo), 0.0), 1.0)
                if f1 > f0:
                    ax.add_patch(wedge((0, 0), 1.1, 180 - 180 * f1, 180 - 180 * f0, width=0.05, color=grafana_color(c)))
        scale = min(cell[2], cell[3] * 1.6)
        size = max(_pt(min(scale * 0.14, scale * 1.4 / max(len(text), 1))), 7)
        ax.text(0, 0.12, _esc(text), ha="center", va="center", color=grafana_color(color or "text"), fontsize=size,
                fontweight="bold")  # fmt: skip
        if len(items) > 1:
            ax.text(0, -0.25, _esc(_clip(legend, cell[2] / 6.5)), ha="center", va="center", color=TEXT, fontsize=8)
    if extra:
        ax = ctx.axes((box[0], box[1] + box[3] - 14, box[2], 14))
        ax.text(0.99, 0.5, f"+{extra} more", ha="right", va="center", color=MUTED, fontsize=8, transform=ax.transAxes)
    return None


def _draw_bargauge(ctx: _Ctx, panel: dict[str, Any], series: list[Series], box: Box) -> str | None:
    defaults = _defaults(panel)
    items = _reduced(panel, series)
    if not items or all(math.isnan(v) for _, v, _ in items):
        return "No data"
    cap = max(1, min(12, int(box[3] // 16)))
    extra = len(items) - cap if len(items) > cap else 0
    if extra:
        items = items[: cap - 1]
        extra += 1
    lo, hi = _range(defaults, [v for _, v, _ in items])
    ax = ctx.axes(box)
    rows = len(items) + (1 if extra else 0)
    ax.set_xlim(0, 1)
    ax.set_ylim(rows, 0)
    label_w = min(0.3, 170 / max(box[2], 1))
    value_w = min(0.18, 110 / max(box[2], 1))
    bar_x, bar_w = label_w + 0.01, 1 - label_w - value_w - 0.02
    row_px = box[3] / rows
    font = max(min(_pt(row_px * 0.45), 11), 6)
    for i, (legend, value, _s) in enumerate(items):
        text, color = _stat_color(value, defaults, lo, hi)
        frac = 0.0 if math.isnan(value) else min(max((value - lo) / (hi - lo), 0.0), 1.0)
        ax.barh(i + 0.5, bar_w, left=bar_x, height=0.62, color=TRACK)
        if frac > 0:
            ax.barh(i + 0.5, bar_w * frac, left=bar_x, height=0.62, color=grafana_color(color or "green"))
        ax.text(label_w, i + 0.5, _esc(_clip(legend, label_w * box[2] / (font * 0.75))), ha="right", va="center",
                color=TEXT, fontsize=font)  # fmt: skip
        ax.text(1 - value_w + 0.005, i + 0.5, _esc(text), ha="left", va="center", fontsize=font, fontweight="bold",
                color=grafana_color(color or "text"))  # fmt: skip
    if extra:
        ax.text(bar_x, rows - 0.5, f"+{extra} more", ha="left", va="center", color=MUTED, fontsize=8)
    return None


def _draw_table(ctx: _Ctx, panel: dict[str, Any], series: list[Series] | Table, box: Box) -> str | None:
    if isinstance(series, Table):
        return _draw_cells(ctx, series.columns, [list(r) for r in series.rows], box)
    defaults = _defaults(panel)
    unit, decimals = _unit(defaults), _decimals(defaults)
    label_names = sorted({k for s in series for k in s.labels if k != "__name__"})
    columns = [*label_names[:10], "Value"] if label_names else ["Series", "Value"]
    rows = []
    for s in series:
        value = _reduce(s.values, "lastNotNull")
        text, _color = _apply_mappings(value, defaults.get("mappings"))
        cells = [s.labels.get(k, "") for k in label_names[:10]] if label_names else [s.legend]
        rows.append((cells, value, text or format_value(value, unit, decimals)))
    sort_by = _dict(panel.get("options")).get("sortBy")
    if isinstance(sort_by, list) and sort_by and isinstance(sort_by[0], Mapping):
        key, desc = sort_by[0].get("displayName"), bool(sort_by[0].get("desc"))
        if key == "Value":
            rows.sort(key=lambda r: (math.isnan(r[1]), -r[1] if desc else r[1]))
        elif key in columns[:-1]:
            idx = columns.index(key)
            rows.sort(key=lambda r: r[0][idx], reverse=desc)
    return _draw_cells(ctx, columns, [[*cells, text] for cells, _v, text in rows], box)


def _draw_cells(ctx: _Ctx, columns: list[str], all_rows: list[list[str]], box: Box) -> str | None:
    row_px = 18.0
    fit = max(int(box[3] // row_px) - 1, 1)
    cap = min(12, fit)
    extra = len(all_rows) - cap if len(all_rows) > cap else 0
    if extra:
        cap = max(min(cap, fit - 1), 1)
        extra = len(all_rows) - cap
    cell_text = all_rows[:cap]
    widths = [max(len(str(c)) for c in [col, *(r[i] for r in cell_text)]) for i, col in enumerate(columns)]
    widths = [min(max(w, 4), 40) for w in widths]
    total = sum(widths)
    char_px = 6.2
    clipped = [[_esc(_clip(str(c), widths[i] * box[2] / total / char_px)) for i, c in enumerate(r)] for r in cell_text]
    ax = ctx.axes(box)
    n = len(clipped) + 1
    height = min(n * row_px / box[3], 1.0)
    table = ax.table(cellText=clipped, colLabels=[_esc(c) for c in columns], colWidths=[w / total for w in widths],
                     cellLoc="left", colLoc="left", bbox=[0, 1 - height, 1, height])  # fmt: skip
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    for (r, _c), cell in table.get_celld().items():
        cell.set_edgecolor(BORDER)
        cell.set_facecolor("#22252b" if r == 0 else PANEL_BG)
        cell.set_linewidth(0.6)
        cell.get_text().set_color(TEXT)
        if r == 0:
            cell.get_text().set_fontweight("bold")
    if extra:
        ax.text(0.0, 1 - height - 0.01, f"+{extra} more rows", ha="left", va="top", color=MUTED, fontsize=8,
                transform=ax.transAxes)  # fmt: skip
    return None


def _le(text: str) -> float:
    return math.inf if text.strip().lower() in ("+inf", "inf") else _to_float(text)


def _draw_heatmap(ctx: _Ctx, panel: dict[str, Any], series: list[Series], box: Box) -> str | None:
    np = ctx.np
    defaults = _defaults(panel)
    options = _dict(panel.get("options"))
    unit = _dict(options.get("yAxis")).get("unit") or _unit(defaults)
    bucketed = all("le" in s.labels and not math.isnan(_le(s.labels["le"])) for s in series)
    rows: dict[Any, dict[float, float]] = {}
    for s in series:
        key: Any = _le(s.labels["le"]) if bucketed else s.legend
        row = rows.setdefault(key, {})
        for t, v in zip(s.times, s.values, strict=False):
            if not math.isnan(v):
                row[t] = row.get(t, 0.0) + v
    keys = sorted(rows) if bucketed else list(rows)
    times = sorted({t for row in rows.values() for t in row})
    if not keys or not times:
        return "No data"
    matrix = np.array([[rows[k].get(t, 0.0) for t in times] for k in keys], dtype=float)
    if bucketed and len(keys) > 1:
        diffs = np.diff(matrix, axis=0)
        tolerance = 1e-9 * max(float(np.abs(matrix).max()), 1.0)
        if bool(np.all(diffs >= -tolerance)):
            matrix = np.vstack([matrix[:1], np.clip(diffs, 0, None)])
    t = np.array(times, dtype=float)
    if len(t) > 1:
        mids = (t[1:] + t[:-1]) / 2
        edges = np.concatenate([[t[0] - (mids[0] - t[0])], mids, [t[-1] + (t[-1] - mids[-1])]])
    else:
        start, end = ctx.time_range
        edges = np.array([start, end]) if end > start else np.array([t[0] - 30, t[0] + 30])
    plot = (box[0] + 62, box[1] + 2, box[2] - 66, box[3] - 20)
    ax = ctx.axes(plot, grid=False)
    color = _dict(options.get("color"))
    scheme = str(color.get("scheme") or "Oranges")
    sequential = {"Oranges", "Blues", "Greens", "Greys", "Purples", "Reds", "YlOrRd", "YlOrBr", "YlGnBu", "YlGn",
                  "OrRd", "PuBu", "BuPu", "BuGn", "GnBu", "PuRd", "RdPu", "PuBuGn"}  # fmt: skip
    colormaps = ctx.mpl.colormaps
    if color.get("mode") == "opacity":
        r, g, b, _a = grafana_color(color.get("color") or "orange")
        cmap = ctx.mpl.colors.LinearSegmentedColormap.from_list("opacity", [(r, g, b, 0.05), (r, g, b, 1.0)])
    else:
        name = scheme + ("_r" if scheme in sequential and not color.get("reverse") else "")
        cmap = colormaps[name] if name in colormaps else colormaps["inferno"]
    masked = np.ma.masked_where(matrix <= 0, matrix)
    ax.pcolormesh(edges, np.arange(len(keys) + 1), masked, cmap=cmap, shading="flat")
    ax.set_facecolor(PANEL_BG)
    ax.set_ylim(0, len(keys))
    every = max(1, math.ceil(len(keys) / max(plot[3] / 14, 1)))
    ticks = list(range(0, len(keys), every))
    ax.set_yticks([i + 0.5 for i in ticks])
    labels = [("+Inf" if k == math.inf else format_value(k, unit)) if bucketed else _clip(str(k), 9) for k in keys]
    ax.set_yticklabels([_esc(labels[i]) for i in ticks])
    _time_axis(ctx, ax, plot[2])
    ax.set_xlim(float(edges[0]), float(edges[-1]))
    ax.tick_params(colors=MUTED, labelsize=8, length=0)
    return None


def _plain_text(content: str) -> list[str]:
    """Markdown/HTML to plain paragraphs: previews need the words, not the markup."""
    text = re.sub(r"<br\s*/?>", "\n", content, flags=re.IGNORECASE)
    text = re.sub(r"<[^>]+>", "", text)
    text = re.sub(r"!\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    paragraphs = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("```") or re.fullmatch(r"[-*_=|:\s]{3,}", line or "x"):
            continue
        bullet = re.match(r"^([-*+]|\d+[.)])\s+", line)
        line = re.sub(r"^#{1,6}\s*", "", line)
        line = re.sub(r"^>\s*", "", line)
        if bullet:
            line = "\u2022 " + line[bullet.end() :]
        line = re.sub(r"(\*\*|__|\*|`|~~)", "", line)
        line = re.sub(r"(?<!\w)_(\S[^_]*)_(?!\w)", r"\1", line)
        line = line.replace("|", "  ").strip()
        paragraphs.append(line)
    return paragraphs


def _draw_text(ctx: _Ctx, panel: dict[str, Any], series: list[Series], box: Box) -> str | None:
    options = _dict(panel.get("options"))
    content = options.get("content", panel.get("content", ""))
    if not isinstance(content, str) or not content.strip():
        return None
    size = 9.0
    char_px = size * DPI / 72 * 0.58
    line_px = size * DPI / 72 * 1.45
    width = max(int(box[2] / char_px), 10)
    lines: list[str] = []
    for para in _plain_text(content):
        if not para:
            if lines and lines[-1]:
                lines.append("")
            continue
        lines.extend(textwrap.wrap(para, width=width) or [""])
    fit = max(int(box[3] // line_px), 1)
    if len(lines) > fit:
        lines = [*lines[: fit - 1], "\u2026"]
    ax = ctx.axes(box)
    ax.text(0, 1, _esc("\n".join(lines)), ha="left", va="top", color=TEXT, fontsize=size, linespacing=1.45,
            transform=ax.transAxes, wrap=False)  # fmt: skip
    return None


def _draw_state_timeline(ctx: _Ctx, panel: dict[str, Any], series: list[Series], box: Box) -> str | None:
    defaults = _defaults(panel)
    unit, decimals = _unit(defaults), _decimals(defaults)
    mappings = defaults.get("mappings")
    has_thresholds = bool(_threshold_levels(defaults.get("thresholds")))
    options = _dict(panel.get("options"))
    show_value = options.get("showValue", "auto")
    start, end = ctx.time_range
    cap = max(1, min(int((box[3] - 20) // 14), 20))
    extra = len(series) - cap if len(series) > cap else 0
    lanes = series[: cap - 1] if extra else series
    extra = extra + 1 if extra else 0
    distinct = sorted({v for s in lanes for v in s.values if not math.isnan(v)})
    palette = {v: _PALETTE[i % len(_PALETTE)] for i, v in enumerate(distinct)}
    label_w = min(160.0, box[2] * 0.25)
    plot = (box[0] + label_w, box[1] + 2, box[2] - label_w - 4, box[3] - 20)
    if plot[2] < 20 or plot[3] < 10:
        return "panel too small"
    ax = ctx.axes(plot)
    n = len(lanes) + (1 if extra else 0)
    ax.set_ylim(n, 0)
    span = max(end - start, 1.0)
    px_per_s = plot[2] / span
    font = max(min(_pt(plot[3] / n * 0.4), 9), 6)
    for i, s in enumerate(lanes):
        times, values = s.times, s.values
        if not times:
            continue
        gaps = [b - a for a, b in itertools.pairwise(times) if b > a]
        step = sorted(gaps)[len(gaps) // 2] if gaps else span / 100
        segments: list[tuple[float, float, float]] = []  # start, end, value
        for j, (t, v) in enumerate(zip(times, values, strict=True)):
            seg_end = times[j + 1] if j + 1 < len(times) else min(t + step, max(end, t + step))
            if math.isnan(v):
                continue
            if segments and segments[-1][2] == v and abs(segments[-1][1] - t) < 1e-9:
                segments[-1] = (segments[-1][0], seg_end, v)
            else:
                segments.append((t, seg_end, v))
        for seg_start, seg_end, v in segments:
            text, color = _apply_mappings(v, mappings)
            if color is None:
                color = _threshold_color(v, defaults.get("thresholds")) if has_thresholds else palette.get(v)
            rgba = grafana_color(color)
            ax.broken_barh([(seg_start, seg_end - seg_start)], (i + 0.1, 0.8), facecolors=[rgba], edgecolor=PANEL_BG,
                           linewidth=0.5)  # fmt: skip
            label = text or format_value(v, unit, decimals)
            width_px = (min(seg_end, end) - max(seg_start, start)) * px_per_s
            if show_value == "always" or (show_value == "auto" and width_px > len(label) * font * 0.75 + 6):
                mid = (max(seg_start, start) + min(seg_end, end)) / 2
                ax.text(mid, i + 0.5, _esc(label), ha="center", va="center", fontsize=font, color="#111217",
                        clip_on=True)  # fmt: skip
    ax.set_yticks([i + 0.5 for i in range(n)])
    names = [_esc(_clip(s.legend or ",".join(s.labels.values()), label_w / (font * 0.75))) for s in lanes]
    ax.set_yticklabels([*names, f"+{extra} more"] if extra else names)
    ax.tick_params(axis="y", labelsize=font, colors=TEXT)
    _time_axis(ctx, ax, plot[2])
    ax.grid(True, axis="x", color=GRID, linewidth=0.5)
    ax.set_axisbelow(True)
    return None


_DRAWERS = {
    "timeseries": _draw_timeseries,
    "graph": _draw_timeseries,  # the pre-Grafana-8 type draws the same way
    "stat": _draw_stat,
    "singlestat": _draw_stat,
    "gauge": _draw_gauge,
    "bargauge": _draw_bargauge,
    "table": _draw_table,
    "heatmap": _draw_heatmap,
    "text": _draw_text,
    "state-timeline": _draw_state_timeline,
}


# --------------------------------------------------------------------------- layout and the dashboard


@dataclass
class _Placed:
    panel: dict[str, Any]
    x: int
    y: int
    w: int
    h: int
    note: str = ""


def _int(value: Any) -> int | None:
    number = _to_float(value)
    return int(number) if math.isfinite(number) else None


def _layout(dashboard: Any) -> tuple[list[_Placed], int, int]:
    """Panels placed on the grid, the number of rows, and how many were dropped below MAX_ROWS.

    Panels without a usable gridPos go after the last row at full width, as Grafana would add them.
    """
    panels = dashboard.get("panels") if isinstance(dashboard, Mapping) else None
    placed: list[_Placed] = []
    missing: list[dict[str, Any]] = []
    for panel in panels if isinstance(panels, list) else []:
        if not isinstance(panel, Mapping):
            continue
        panel = dict(panel)
        grid = panel.get("gridPos")
        y = _int(grid.get("y")) if isinstance(grid, Mapping) else None
        if y is None or not isinstance(grid, Mapping):
            missing.append(panel)
            continue
        is_row = panel.get("type") == "row"
        x = min(max(_int(grid.get("x")) or 0, 0), COLUMNS - 1)
        w = _int(grid.get("w")) or 0
        w = COLUMNS if is_row else min(w if w > 0 else DEFAULT_W, COLUMNS - x)
        h = _int(grid.get("h")) or 0
        h = 1 if is_row else h if h > 0 else DEFAULT_H
        placed.append(_Placed(panel, 0 if is_row else x, max(y, 0), w, max(h, 1)))
    bottom = max((p.y + p.h for p in placed), default=0)
    for panel in missing:
        h = 1 if panel.get("type") == "row" else DEFAULT_H
        placed.append(_Placed(panel, 0, bottom, COLUMNS, h, note="no gridPos"))
        bottom += h
    kept = [p for p in placed if p.y < MAX_ROWS]
    for p in kept:
        p.h = min(p.h, MAX_ROWS - p.y)
    rows = max((p.y + p.h for p in kept), default=1)
    return kept, rows, len(placed) - len(kept)


def _panel_box(p: _Placed) -> Box:
    return (p.x * COL_PX + GAP_PX, HEADER_PX + p.y * ROW_PX + GAP_PX, p.w * COL_PX - 2 * GAP_PX,
            p.h * ROW_PX - 2 * GAP_PX)  # fmt: skip


def _draw_row(ctx: _Ctx, p: _Placed) -> None:
    x, y, w, h = _panel_box(p)
    ax = ctx.axes((x, y, w, h))
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    nested = p.panel.get("panels")
    collapsed = bool(p.panel.get("collapsed"))
    title = str(p.panel.get("title") or "Row")
    if collapsed:
        count = len(nested) if isinstance(nested, list) else 0
        title = f"\u25b8 {title}  ({count} panel{'s' if count != 1 else ''} collapsed)"
    else:
        title = f"\u25be {title}"
    ax.text(4, h / 2, _esc(_clip(title, w / 8)), ha="left", va="center", color=TEXT, fontsize=12, fontweight="bold")
    ax.plot([0, w], [h - 1, h - 1], color=BORDER, linewidth=1)
    if p.note:
        ax.text(w - 4, h / 2, p.note, ha="right", va="center", color=MUTED, fontsize=8)


def _draw_panel(ctx: _Ctx, p: _Placed, series: list[Series]) -> None:
    box = _panel_box(p)
    panel = p.panel
    frame = ctx.fig.add_axes(ctx.rect(box))
    frame.set_xticks([])
    frame.set_yticks([])
    frame.set_navigate(False)
    frame.set_facecolor("none" if panel.get("transparent") else PANEL_BG)
    for spine in frame.spines.values():
        spine.set_edgecolor(BORDER)
        spine.set_linewidth(1)
    frame.set_xlim(0, box[2])
    frame.set_ylim(box[3], 0)
    title = str(panel.get("title") or "")
    note_w = 90 if p.note else 0
    frame.text(8, 7, _esc(_clip(title, (box[2] - 16 - note_w) / 6.8)), ha="left", va="top", color=TEXT, fontsize=10,
               fontweight="bold")  # fmt: skip
    if p.note:
        frame.text(box[2] - 8, 7, p.note, ha="right", va="top", color=grafana_color("orange"), fontsize=8)
    content = (box[0] + 8, box[1] + 28, box[2] - 16, box[3] - 34)
    if content[2] < 12 or content[3] < 12:
        return
    kind = panel.get("type")
    drawer = _DRAWERS.get(kind) if isinstance(kind, str) else None
    before = list(ctx.fig.axes)
    try:
        if drawer is None:
            message: str | None = f"unsupported panel type {kind}"
        elif kind != "text" and not _has_data(series):
            message = "No data"
        else:
            message = drawer(ctx, panel, series, content)
    except Exception as exc:  # one bad panel must not stop the others
        for ax in ctx.fig.axes:
            if ax not in before:
                ax.remove()
        message = f"render error: {type(exc).__name__}"
    if message:
        color = grafana_color("red") if message.startswith("render error") else MUTED
        _message(frame, content, box, message, color=color)


def _draw_header(ctx: _Ctx, dashboard: Any, subtitle: str, dropped: int) -> None:
    ax = ctx.axes((0, 0, ctx.width, HEADER_PX))
    ax.set_xlim(0, ctx.width)
    ax.set_ylim(HEADER_PX, 0)
    title = dashboard.get("title") if isinstance(dashboard, Mapping) else None
    ax.text(12, 14, _esc(_clip(str(title or "Untitled dashboard"), 150)), ha="left", va="top", color=TEXT,
            fontsize=17, fontweight="bold")  # fmt: skip
    start, end = ctx.time_range
    span = f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(start))} to {time.strftime('%H:%M', time.localtime(end))}"
    if end - start > 86400:
        span = f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(start))} to " + time.strftime(
            "%Y-%m-%d %H:%M", time.localtime(end)
        )
    parts = [subtitle] if subtitle else []
    if dropped:
        parts.append(f"{dropped} panel(s) below row {MAX_ROWS} not drawn")
    ax.text(12, 48, _esc(_clip("   \u00b7   ".join(parts), 250)), ha="left", va="top", color=MUTED, fontsize=10)
    ax.text(ctx.width - 12, 18, _esc(span), ha="right", va="top", color=MUTED, fontsize=10)


def render_dashboard(
    dashboard: dict,
    results: dict[int, list[Series]],
    out: Path,
    time_range: tuple[float, float],
    subtitle: str = "",
) -> Path:
    """Draws every panel of `dashboard` at its gridPos into one PNG at `out`; returns out.

    Reviewers see the dashboard as Grafana would lay it out without running Grafana. `results`
    maps panel id to its evaluated series. The image is WIDTH_PX wide and
    HEADER_PX + rows * ROW_PX + FOOTER_PX high, where rows is the largest gridPos y + h.
    """
    try:
        import matplotlib
    except ImportError:
        raise MissingExtra("preview") from None
    if "matplotlib.pyplot" not in sys.modules:  # never switch (and so close) a caller's pyplot backend
        matplotlib.use("Agg")
    import matplotlib.colors
    import matplotlib.lines
    import matplotlib.patches
    import matplotlib.ticker
    import numpy
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        start, end = (float(time_range[0]), float(time_range[1]))
    except (TypeError, ValueError, IndexError):
        start, end = time.time() - 3600, time.time()
    if not (math.isfinite(start) and math.isfinite(end)) or end <= start:
        end = start + 3600 if math.isfinite(start) else time.time()
        start = end - 3600 if not math.isfinite(start) else start
    placed, rows, dropped = _layout(dashboard)
    height = HEADER_PX + rows * ROW_PX + FOOTER_PX

    # A Figure outside pyplot: no global figure registry to leak into, freed when this returns.
    fig = Figure(figsize=(WIDTH_PX / DPI, height / DPI), dpi=DPI, facecolor=BG)
    FigureCanvasAgg(fig)
    ctx = _Ctx(fig, float(WIDTH_PX), float(height), numpy, matplotlib, (start, end))
    rc = {"font.family": "DejaVu Sans", "font.size": 9, "axes.unicode_minus": True, "text.usetex": False}
    try:
        with warnings.catch_warnings(), matplotlib.rc_context(rc):
            warnings.simplefilter("ignore")
            _draw_header(ctx, dashboard, str(subtitle or ""), dropped)
            for p in placed:
                try:
                    if p.panel.get("type") == "row":
                        _draw_row(ctx, p)
                    else:
                        _draw_panel(ctx, p, _series_for(results, p.panel.get("id")))
                except Exception:  # the frame itself failed: skip this panel, keep the others
                    continue
            try:
                fig.savefig(out, dpi=DPI, facecolor=BG)
            except Exception as exc:  # an artist failed at draw time: keep a readable image
                fig.clear()
                fig.text(0.5, 0.5, f"render error: {type(exc).__name__}", ha="center", color=TEXT, fontsize=14)
                fig.savefig(out, dpi=DPI, facecolor=BG)
    finally:
        fig.clear()
        if "matplotlib.pyplot" in sys.modules:
            sys.modules["matplotlib.pyplot"].close(fig)
    return out
