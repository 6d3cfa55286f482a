"""The shipped Grafana dashboards: built from their sources, importable, and reading only series we produce.

The live tier (every panel's query against a real stack) is tests/test_dashboards_live.py.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from inferwatch import assets
from inferwatch.dashboards import build, check, queries
from inferwatch.exporters.drift.collector import TABLE as DRIFT
from inferwatch.exporters.engine.collector import TABLE as ENGINE
from inferwatch.exporters.feedback.collector import TABLE as FEEDBACK
from inferwatch.exporters.gpu.metrics import TABLE as GPU
from inferwatch.exporters.logs.collector import TABLE as LOGS
from inferwatch.exporters.probe.metrics import PROBE_TABLE, TARGET_TABLE
from inferwatch.scaler.metrics import TABLE as SCALER

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "tests" / "golden"
SHIPPED = assets.dashboards()
EXPECTED = {"inferwatch-fleet.json", "inferwatch-engine.json", "inferwatch-gpu.json", "inferwatch-quality.json",
            "inferwatch-autoscaling.json"}


def test_committed_json_is_what_the_sources_render() -> None:
    assert build.stale() == [], "run `inferwatch dashboards build` and commit the result"
    assert set(SHIPPED) == EXPECTED


def test_build_check_fails_on_a_stale_file(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "inferwatch"
    build.write(tmp_path)
    (tmp_path / "inferwatch-gpu.json").write_text("{}\n")
    stale = subprocess.run([str(exe), "dashboards", "build", "--check", "--out", str(tmp_path)],
                           capture_output=True, text=True)
    assert stale.returncode == 1 and "inferwatch-gpu.json" in stale.stderr, stale.stderr
    fresh = subprocess.run([str(exe), "dashboards", "build", "--out", str(tmp_path)], capture_output=True, text=True)
    assert fresh.returncode == 0 and "inferwatch-gpu.json" in fresh.stdout
    again = subprocess.run([str(exe), "dashboards", "build", "--check", "--out", str(tmp_path)],
                           capture_output=True, text=True)
    assert again.returncode == 0, again.stderr


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_dashboard_is_valid_for_import(name: str) -> None:
    """Checked here independently of check.problems: ids, grid, variables, panel types, units."""
    model = SHIPPED[name]
    assert model["uid"] == name.removesuffix(".json") and model["schemaVersion"] >= 36
    variables = [v["name"] for v in model["templating"]["list"]]
    assert variables[0] == "datasource" and model["templating"]["list"][0]["type"] == "datasource"
    panels = list(check.panels(model))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    occupied: dict[tuple[int, int], str] = {}
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24 and pos["h"] >= 1, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in occupied, f"{panel['title']} overlaps {occupied.get((x, y))}"
                occupied[(x, y)] = panel["title"]
        assert panel["type"] in check.NATIVE and panel["type"] not in ("graph", "singlestat"), panel["type"]
        if panel["type"] == "row":
            continue
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{panel['title']}: no unit"
        assert len(panel.get("description", "")) > 40, f"{panel['title']}: no real description"
        for target in panel.get("targets", []):
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert "[5m]" not in target["expr"] and "[1m]" not in target["expr"], \
                f"{panel['title']}: a literal rate window; use $__rate_interval or a recording rule"
    text = json.dumps(model)
    used = set(re.findall(r"\$\{?([A-Za-z_]\w*)", text)) - check.BUILTIN_VARIABLES
    assert used <= set(variables), f"undefined variables: {used - set(variables)}"
    top = [p for p in panels if p["gridPos"]["y"] == 0]
    assert top and all(p["type"] == "stat" for p in top), "the first row is stat panels"
    assert check.problems(model) == []


def test_links_carry_the_time_range_and_variables() -> None:
    for name, model in SHIPPED.items():
        assert any(link.get("includeVars") and link.get("keepTime") for link in model["links"]), name
    urls = [link["url"] for model in SHIPPED.values() for panel in check.panels(model)
            for link in _links(panel)]
    assert any("/d/inferwatch-engine?" in u and "var-model=" in u for u in urls), "fleet -> engine per model"
    assert any("/d/inferwatch-gpu?" in u and "var-node=" in u for u in urls), "engine -> GPUs of a host"
    assert all("${__url_time_range}" in u for u in urls)


def _links(panel: dict) -> list[dict]:
    found = list(panel.get("links", []))
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    found += defaults.get("links", [])
    for override in panel.get("fieldConfig", {}).get("overrides", []):
        for prop in override.get("properties", []):
            if prop.get("id") == "links":
                found += prop["value"]
    return found


@pytest.mark.parametrize("mutation, expected", [
    (lambda d: d["panels"][1].__setitem__("id", d["panels"][0]["id"]), "not unique"),
    (lambda d: d["panels"][1].__setitem__("gridPos", dict(d["panels"][0]["gridPos"])), "overlaps"),
    (lambda d: d["panels"][0].__setitem__("type", "graph"), "Angular"),
    (lambda d: d["panels"][0]["fieldConfig"]["defaults"].__setitem__("unit", ""), "no unit"),
    (lambda d: d["panels"][0].__setitem__("description", ""), "no description"),
    (lambda d: d["panels"][0]["targets"][0].__setitem__("expr", "up{job=~\"$nope\"}"), "$nope"),
    (lambda d: d["templating"]["list"].reverse(), "first variable"),
    (lambda d: d["panels"][0]["targets"][0].__setitem__("datasource", {"uid": "prom"}), "datasource variable"),
    (lambda d: d["panels"][0]["gridPos"].__setitem__("x", 22), "24-column grid"),
])
def test_import_checks_catch_each_mistake(mutation, expected: str) -> None:
    model = copy.deepcopy(SHIPPED["inferwatch-engine.json"])
    mutation(model)
    found = check.problems(model)
    assert any(expected in p for p in found), found


def _produced_series() -> set[str]:
    """Every series name a shipped exporter, the rules or Prometheus itself produce (the vLLM plugin and
    vLLM's own names are checked against the real vLLM in the live tier)."""
    names = {"ALERTS", "ALERTS_FOR_STATE", "up"}
    for table in (GPU, ENGINE, PROBE_TABLE, TARGET_TABLE, FEEDBACK, DRIFT, LOGS, SCALER):
        for family in table.describe():
            suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}.get(family.type, [""])
            names |= {family.name + s for s in suffixes}
    for path in GOLDEN.glob("*.txt"):  # self-metrics and the rest of each exposition
        names |= {m.group(0) for line in path.read_text().splitlines() if line and not line.startswith("#")
                  for m in [re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line)] if m}
    for text in assets.rule_files().values():
        names |= {r["record"] for g in yaml.safe_load(text)["groups"] for r in g["rules"] if "record" in r}
    return names


def test_every_series_a_panel_reads_is_produced() -> None:
    produced = _produced_series()
    missing = []
    for name, model in SHIPPED.items():
        for where, expr in check.queries(model):
            for metric in check.metric_names(expr):
                if metric not in produced and not metric.startswith(("vllm:", "inferwatch_vllm_")):
                    missing.append(f"{name} {where}: {metric}")
    assert missing == []


def test_panels_read_recording_rules_where_they_exist() -> None:
    """A raw vLLM histogram quantile on a model-level panel is a recording rule's job."""
    for model in SHIPPED.values():
        for where, expr in check.queries(model):
            assert "histogram_quantile" not in expr, f"{where}: use the model_name:...:p95_rate5m rules"


def test_metric_names_of_promql() -> None:
    expr = ('sum by (le, model_name) (rate(vllm:ttft_bucket{model_name=~"$model", le="1.0"}[$__rate_interval]))'
            " / on (model_name) group_left (version) max(x:y:z offset 1h) > 0.5 or vector(0)")
    assert check.metric_names(expr) == {"vllm:ttft_bucket", "x:y:z"}
    assert check.metric_names('{__name__=~"a_total|b"}') == {"a_total", "b"}


def test_mixin_exposes_the_dashboards() -> None:
    _jsonnet = pytest.importorskip("_jsonnet")
    mixin = json.loads(_jsonnet.evaluate_snippet(
        "check", "local m = import 'mixin.libsonnet';"
        " {d: m.grafanaDashboards, r: std.length(m.prometheusRules.groups)}",
        jpathdir=[str(REPO)]))
    assert mixin["d"] == SHIPPED and mixin["r"] > 0


# -- Grafana's substitution rules, as queries.py applies them -------------------------------------

def test_variable_formatting_follows_grafana() -> None:
    assert queries.format_values(["a.b"]) == r"a\.b"
    assert queries.format_values(["x", "y(1)"]) == r"(x|y\(1\))"
    values = {"model": "(a|b)", "mod": "WRONG"}
    expanded = queries.substitute('m{model_name=~"$model"} ${model} [[model]]', values)
    assert expanded == 'm{model_name=~"(a|b)"} (a|b) (a|b)'
    assert queries.substitute("/d/x?${model:queryparam}", {"model": "a b"}) == "/d/x?var-model=a%20b"


def test_rate_interval_is_grafanas_formula() -> None:
    context = queries.Context(start=0, end=3600, scrape_interval=15, max_points=100)
    assert context.builtins()["__interval"] == "36s"
    assert context.builtins()["__rate_interval"] == "60s"  # max(36 + 15, 4 x 15)
    short = queries.Context(start=0, end=600, scrape_interval=2, max_points=100)
    assert short.builtins()["__rate_interval"] == "8s"  # max(6 + 2, 8)
    assert short.expand("rate(x[$__rate_interval]) $__range") == "rate(x[8s]) 600s"


def test_legend_format() -> None:
    assert queries.legend("{{model_name}} p95", {"model_name": "m"}) == "m p95"
    assert queries.legend("", {"__name__": "up", "job": "j"}) == 'up{job="j"}'


def test_preview_writes_one_image_per_dashboard(prometheus, tmp_path: Path) -> None:
    """Against the session Prometheus (few series): every dashboard still gets its PNG."""
    pytest.importorskip("matplotlib")
    exe = Path(sys.executable).parent / "inferwatch"
    result = subprocess.run([str(exe), "dashboards", "preview", "--prometheus", prometheus.url, "--out",
                             str(tmp_path), "--range", "5m"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    images = sorted(p.name for p in tmp_path.glob("*.png"))
    assert images == ["autoscaling.png", "engine.png", "fleet.png", "gpu.png", "quality.png"]
    assert sorted(Path(line).name for line in result.stdout.split()) == images
    for image in tmp_path.glob("*.png"):
        assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and image.stat().st_size > 20_000


def test_compose_grafana_provisions_the_shipped_dashboards() -> None:
    compose = REPO / "compose"
    grafana = yaml.safe_load((compose / "docker-compose.yml").read_text())["services"]["grafana"]
    assert re.fullmatch(r"grafana/grafana:1[12]\.\d+\.\d+", grafana["image"]), "Grafana 11/12, pinned"
    mounts = dict(v.split(":")[:2] for v in grafana["volumes"])
    provider = yaml.safe_load((compose / "grafana" / "dashboards.yml").read_text())["providers"][0]
    source = next(s for s, target in mounts.items() if target == provider["options"]["path"])
    assert {p.name for p in (compose / source).glob("inferwatch-*.json")} == EXPECTED
    datasource = yaml.safe_load((compose / "grafana" / "datasources.yml").read_text())["datasources"][0]
    assert datasource["type"] == "prometheus" and datasource["url"] == "http://prometheus:9090"
    assert datasource["isDefault"], "the dashboards' datasource variable starts on the default"
    assert all(p.startswith("127.0.0.1:") for p in grafana["ports"])


def test_table_previews_apply_grafanas_merge_and_organize() -> None:
    from inferwatch.dashboards.render import tabulate

    panel = next(p for p in check.panels(SHIPPED["inferwatch-fleet.json"]) if p["title"] == "SLO status per model")
    results = [queries.Result("A", "", [{"metric": {"model_name": "m"}, "value": [0, "0.75"]}]),
               queries.Result("D", "", [{"metric": {"model_name": "m"}, "value": [0, "2.5"]}]),
               queries.Result("B", "", [])]
    table = tabulate(panel, results)
    assert table.columns == ["model_name", "Availability budget left", "Availability burn 1h"]
    assert table.rows == [["m", "75%", "2.50"]]
