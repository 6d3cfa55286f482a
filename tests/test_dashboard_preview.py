"""Dashboard previews: Grafana-like value formatting and one PNG per dashboard laid out on the grid."""

from __future__ import annotations

import math
import subprocess
import sys
import time
from pathlib import Path

import pytest

from inferwatch.dashboards.preview import (
    COL_PX,
    FOOTER_PX,
    HEADER_PX,
    ROW_PX,
    WIDTH_PX,
    Series,
    format_value,
    grafana_color,
    render_dashboard,
)

NAN = float("nan")


@pytest.mark.parametrize(
    ("value", "unit", "decimals", "expected"),
    [
        # s: auto-scaled time
        (0.25, "s", None, "250 ms"),
        (0.0005, "s", None, "500 \u00b5s"),
        (1.5, "s", None, "1.5 s"),
        (90, "s", None, "1.5 min"),
        (7200, "s", None, "2 h"),
        (59.999, "s", None, "1 min"),  # rounding reaches the next step
        (0, "s", None, "0 s"),
        (-0.25, "s", None, "-250 ms"),
        (0.123456, "s", 2, "123.46 ms"),
        # ms
        (250, "ms", None, "250 ms"),
        (1500, "ms", None, "1.5 s"),
        (0.5, "ms", None, "500 \u00b5s"),
        # percent units
        (0.4213, "percentunit", None, "42.1%"),
        (1, "percentunit", None, "100%"),
        (0.4213, "percentunit", 0, "42%"),
        (42, "percent", None, "42%"),
        (99.5, "percent", 1, "99.5%"),
        # bytes (IEC) and decbytes (SI)
        (3 * 1024**3, "bytes", None, "3 GiB"),
        (1536, "bytes", None, "1.5 KiB"),
        (512, "bytes", None, "512 B"),
        (1023.99 * 1024, "bytes", None, "1 MiB"),
        (1.5e9, "decbytes", None, "1.5 GB"),
        (2000, "decbytes", None, "2 kB"),
        # watt, celsius, hertz
        (350, "watt", None, "350 W"),
        (1500, "watt", None, "1.5 kW"),
        (0.5, "watt", None, "500 mW"),
        (71.26, "celsius", None, "71.3 \u00b0C"),
        (1.5e9, "hertz", None, "1.5 GHz"),
        (1410e6, "hertz", None, "1.41 GHz"),
        (800e6, "hertz", None, "800 MHz"),
        # reqps, short, none
        (12.34, "reqps", None, "12.3 req/s"),
        (1500, "reqps", None, "1.5k req/s"),
        (1500, "short", None, "1.5k"),
        (2.5e6, "short", None, "2.5M"),
        (4e9, "short", None, "4B"),
        (42, "short", None, "42"),
        (999.99, "short", None, "1k"),
        (0.4213, "short", None, "0.421"),
        (1234.6, "none", None, "1235"),
        (0.5, "none", None, "0.5"),
        (3.14159, "none", 2, "3.14"),
        # currency, locale, bool
        (1.234, "currencyUSD", None, "$1.23"),
        (-0.5, "currencyUSD", None, "-$0.50"),
        (1234, "currencyUSD", None, "$1.23k"),
        (1234567, "locale", None, "1,234,567"),
        (1234.5, "locale", None, "1,234.5"),
        (1, "bool", None, "True"),
        (0, "bool", None, "False"),
        # fallback: short with the unit appended; empty unit is short
        (1500, "tokens", None, "1.5k tokens"),
        (1500, "", None, "1.5k"),
        (3, "suffix: req", None, "3 req"),
        # NaN and infinity
        (NAN, "s", None, "No data"),
        (NAN, "percentunit", None, "No data"),
        (math.inf, "short", None, "Inf"),
    ],
)
def test_format_value(value: float, unit: str, decimals: int | None, expected: str) -> None:
    assert format_value(value, unit, decimals) == expected


def test_format_value_date_time_from_now() -> None:
    now = time.time()
    assert format_value(now - 300, "dateTimeFromNow") == "5 minutes ago"
    assert format_value((now - 2 * 3600 - 60) * 1000, "dateTimeFromNow") == "2 hours ago"  # Grafana's ms
    assert format_value(now + 3 * 86400 + 600, "dateTimeFromNow") == "in 3 days"
    assert format_value(now, "dateTimeFromNow") == "a few seconds ago"


def test_format_value_odd_input_does_not_raise() -> None:
    assert format_value(None, "s") == "No data"  # type: ignore[arg-type]
    assert format_value("12", "percent") == "12%"  # type: ignore[arg-type]
    assert format_value(1.0, None, "x") == "1"  # type: ignore[arg-type]


def test_grafana_colours_never_raise() -> None:
    pytest.importorskip("matplotlib")
    names = ["green", "red", "orange", "yellow", "blue", "purple", "text", "transparent", "semi-dark-red",
             "dark-green", "super-light-blue", "#73BF69", "#fff", "#FF000080", "rgba(50, 172, 45, 0.97)",
             "rgb(255,0,0)", "tab:blue", "not-a-colour", "", None, 3]  # fmt: skip
    for name in names:
        rgba = grafana_color(name)
        assert len(rgba) == 4
        assert all(0.0 <= c <= 1.0 for c in rgba)
    assert grafana_color("transparent")[3] == 0.0
    assert grafana_color("red") == pytest.approx((0xF2 / 255, 0x49 / 255, 0x5C / 255, 1.0))
    assert grafana_color("not-a-colour") == grafana_color(None)  # grey


# --------------------------------------------------------------------------- render_dashboard

START = 1_715_000_000.0
END = START + 3600.0
TIMES = [START + 60 * i for i in range(61)]


def _wave(base: float, amp: float, phase: float = 0.0) -> list[float]:
    return [base + amp * math.sin(i / 6 + phase) for i in range(len(TIMES))]


def _panel(pid: int, kind: str, x: int, y: int, w: int, h: int, **extra: object) -> dict:
    panel = {"id": pid, "type": kind, "title": f"{kind} panel", "gridPos": {"x": x, "y": y, "w": w, "h": h}}
    panel.update(extra)
    return panel


BAND_OVERRIDE = {
    "matcher": {"id": "byName", "options": "band upper"},
    "properties": [
        {"id": "custom.fillBelowTo", "value": "band lower"},
        {"id": "color", "value": {"mode": "fixed", "fixedColor": "semi-dark-red"}},
    ],
}
DASHED_OVERRIDE = {
    "matcher": {"id": "byName", "options": "p50"},
    "properties": [{"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}}],
}


def _dashboard() -> tuple[dict, dict[int, list[Series]]]:
    thresholds = {"mode": "absolute", "steps": [{"color": "green", "value": None}, {"color": "red", "value": 0.8}]}
    panels = [
        {"id": 1, "type": "row", "title": "Serving", "collapsed": False, "gridPos": {"x": 0, "y": 0, "w": 24, "h": 1},
         "panels": []},
        _panel(2, "timeseries", 0, 1, 12, 8, title="Latency p95 ($model)",
               fieldConfig={"defaults": {"unit": "s", "min": 0, "custom": {"fillOpacity": 10}},
                            "overrides": [BAND_OVERRIDE, DASHED_OVERRIDE]},
               options={"legend": {"showLegend": True, "displayMode": "list", "placement": "bottom"}}),
        _panel(3, "timeseries", 12, 1, 12, 8, title="GPU memory (stacked)",
               fieldConfig={"defaults": {"unit": "bytes",
                                         "custom": {"stacking": {"mode": "normal"}, "fillOpacity": 40}}}),
        _panel(4, "stat", 0, 9, 6, 4, fieldConfig={"defaults": {"unit": "percentunit", "thresholds": thresholds}},
               options={"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "value", "graphMode": "area"}),
        _panel(5, "stat", 6, 9, 6, 4, title="Engine state",
               fieldConfig={"defaults": {"mappings": [{"type": "value", "options": {
                   "1": {"text": "UP", "color": "green"}, "0": {"text": "DOWN", "color": "red"}}}]}}),
        _panel(6, "gauge", 12, 9, 6, 4, fieldConfig={"defaults": {"unit": "percentunit", "thresholds": thresholds}}),
        _panel(7, "bargauge", 18, 9, 6, 4, fieldConfig={"defaults": {"unit": "watt", "max": 700}}),
        _panel(8, "table", 0, 13, 12, 7, fieldConfig={"defaults": {"unit": "reqps"}}),
        _panel(9, "heatmap", 12, 13, 12, 7, options={"yAxis": {"unit": "s"}}),
        _panel(10, "text", 0, 20, 8, 5, options={"mode": "markdown", "content": (
            "# Serving engine\n\nThis dashboard shows **latency**, `throughput` and [SLOs](https://example.com).\n"
            "- one\n- two\n")}),
        _panel(11, "state-timeline", 8, 20, 16, 5,
               fieldConfig={"defaults": {"mappings": [{"type": "value", "options": {
                   "0": {"text": "down", "color": "red"}, "1": {"text": "up", "color": "green"}}}]}}),
        {"id": 12, "type": "row", "title": "Collapsed section", "collapsed": True,
         "gridPos": {"x": 0, "y": 25, "w": 24, "h": 1}, "panels": [_panel(99, "stat", 0, 26, 6, 4)]},
        _panel(13, "piechart", 0, 26, 8, 4),
        _panel(14, "timeseries", 8, 26, 8, 4, title="Nothing here"),
        _panel(15, "stat", 16, 26, 8, 4, title="All NaN"),
        {"id": 16, "type": "timeseries", "title": "No gridPos"},
    ]  # fmt: skip
    buckets = ["0.1", "0.25", "0.5", "1", "2.5", "+Inf"]
    heat = []
    for i, le in enumerate(buckets):
        cumulative = [(i + 1) * 10 + 3 * math.sin(t / 5) * (i + 1) / 2 for t in range(len(TIMES))]
        heat.append(Series(f"le={le}", {"le": le}, TIMES, cumulative))
    results = {
        2: [
            Series("p95", {"quantile": "0.95"}, TIMES, [v if 20 < i < 25 or i % 17 else NAN
                                                         for i, v in enumerate(_wave(0.3, 0.1))]),
            Series("band upper", {}, TIMES, _wave(0.45, 0.05)),
            Series("band lower", {}, TIMES, _wave(0.1, 0.05)),
            Series("p50", {}, TIMES, _wave(0.15, 0.02)),
            *[Series(f"replica {n}", {"pod": f"vllm-{n}"}, TIMES, _wave(0.2, 0.05, n)) for n in range(9)],
        ],
        3: [Series(f"gpu{n}", {"gpu": str(n)}, TIMES, _wave(20e9, 5e9, n)) for n in range(4)],
        4: [Series("cache", {}, TIMES, _wave(0.7, 0.2)), Series("kv", {}, TIMES, _wave(0.9, 0.05))],
        5: [Series("engine", {}, [END], [1.0])],
        6: [Series("gpu0", {}, [END], [0.42]), Series("gpu1", {}, [END], [0.93])],
        7: [Series(f"gpu{n}", {}, [END], [150.0 + 100 * n]) for n in range(5)],
        8: [Series(f"{m}", {"model": m, "pod": f"p{i}", "__name__": "x"}, [END], [12.5 * (i + 1)])
            for i, m in enumerate(["llama", "mistral", "qwen"] * 6)],
        9: heat,
        11: [Series("engine-a", {}, TIMES, [float(i // 10 % 2) for i in range(len(TIMES))]),
             Series("engine-b", {}, TIMES, [1.0] * 30 + [NAN] * 5 + [0.0] * 26)],
        14: [],
        15: [Series("x", {}, TIMES, [NAN] * len(TIMES))],
        16: [Series("late", {}, TIMES, _wave(5, 2))],
    }  # fmt: skip
    return {"title": "Serving engine", "panels": panels}, results


def _image(path: Path):  # -> numpy array (H, W, channels)
    image = pytest.importorskip("matplotlib.image")
    return image.imread(path)


def test_render_dashboard_every_panel_type(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    dashboard, results = _dashboard()
    out = tmp_path / "nested" / "dir" / "serving.png"
    got = render_dashboard(dashboard, results, out, (START, END), subtitle="http://prometheus:9090 at 12:00")
    assert got == out
    assert out.is_file()
    pixels = _image(out)
    # rows: the last gridPos ends at 26 + 4 = 30; the panel without gridPos adds 8 below it.
    assert pixels.shape[1] == WIDTH_PX == 24 * COL_PX
    assert pixels.shape[0] == HEADER_PX + (30 + 8) * ROW_PX + FOOTER_PX
    assert float(pixels[..., :3].var()) > 0


def test_render_height_grows_with_lower_panels(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    series = {1: [Series("a", {}, TIMES, _wave(1, 1))]}
    heights = []
    for y in (0, 20):
        dashboard = {"title": "t", "panels": [_panel(1, "timeseries", 0, y, 24, 8)]}
        out = render_dashboard(dashboard, series, tmp_path / f"y{y}.png", (START, END))
        pixels = _image(out)
        assert pixels.shape[1] == WIDTH_PX
        heights.append(pixels.shape[0])
    assert heights == [HEADER_PX + 8 * ROW_PX + FOOTER_PX, HEADER_PX + 28 * ROW_PX + FOOTER_PX]


def test_render_survives_odd_input(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    dashboard = {
        "panels": [
            "not a panel",
            {"type": "stat", "gridPos": {"x": "a", "y": 0, "w": -3, "h": None}},
            {"id": 2, "type": "timeseries", "gridPos": {"x": 30, "y": 0, "w": 50, "h": 4},
             "fieldConfig": {"defaults": {"unit": 5, "min": "x", "custom": {"fillOpacity": "lots"},
                                          "thresholds": {"steps": [None, {"color": 7, "value": "high"}]},
                                          "mappings": [{"type": "range", "options": {"from": None, "to": None}}, 3]},
                             "overrides": [None, {"matcher": {"id": "byRegexp", "options": "(["}}]}},
            {"id": 3, "type": "gauge", "gridPos": {"x": 0, "y": 4, "w": 1, "h": 1}},
            {"id": 4, "type": "heatmap", "gridPos": {"x": 0, "y": 5, "w": 12, "h": 6}},
            {"id": 5, "type": "table", "title": "$a and $b", "gridPos": {"x": 12, "y": 5, "w": 12, "h": 6}},
        ]
    }  # fmt: skip
    results = {
        2: [Series("x", {}, [START, "bad", END], [1.0, 2.0, None]), "junk"],  # type: ignore[list-item]
        3: [Series("g", {}, [END], [math.inf])],
        4: [Series("no le", {}, TIMES, _wave(1, 1)), Series("le", {"le": "nope"}, TIMES, _wave(1, 1))],
        "5": [Series("$1 price", {"cost": "$3"}, [END], [3.0])],
    }
    out = render_dashboard(dashboard, results, tmp_path / "odd.png", (END, START))  # type: ignore[arg-type]
    assert _image(out).shape[1] == WIDTH_PX
    empty = render_dashboard({}, {}, tmp_path / "empty.png", (START, END))
    assert _image(empty).shape == (HEADER_PX + ROW_PX + FOOTER_PX, WIDTH_PX, 4)


def test_import_does_not_import_matplotlib() -> None:
    code = "import inferwatch.dashboards.preview, sys; print('matplotlib' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "False"
