"""Every panel and variable of every shipped dashboard, queried against the real stack.

The demo's stack around the session's vLLM (CPU): the engine, GPU (simulated NVML), probe,
feedback and drift exporters, a Prometheus with the shipped rules, an Alertmanager. A minute of
Poisson load with ratings posted alongside, then each dashboard's variables are resolved and each
panel's queries run with the variables substituted the way Grafana does (inferwatch.dashboards.queries).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from inferwatch import assets
from inferwatch.config import InferwatchConfig
from inferwatch.dashboards import check, queries
from inferwatch.dashboards.render import preview_all
from inferwatch.lab.demo import SCRAPE_SECONDS, DemoStack

pytestmark = pytest.mark.slow

LOAD_SECONDS = 60
# Panels allowed to be empty on a stack minutes old, and why. Anything else empty is a dead panel.
RARE = {
    ("fleet", "Worst availability budget"): "the 30-day budget averages hourly means: empty until a whole hour",
    ("fleet", "Error budget remaining"): "the 30-day budget averages hourly means: empty until a whole hour",
    ("fleet", "Firing alerts"): "a healthy stack fires nothing",
    ("autoscaling", "Query errors"): "a healthy scaler has no failed Prometheus queries (series appear with the first)",
}
# Series that must be in Prometheus before the panels are judged (the slowest to appear).
SETTLED = (
    "model_name_source_feature_method:inferwatch_drift_score:max",
    "model_name_version:inferwatch_feedback_negative_per_feedback:ratio_rate1h",
    "model_name_version_score:inferwatch_feedback_score:mean1h",
    "model_name:llm_time_to_first_token_seconds_p95:threshold",
    "model_name_module:inferwatch_probe_module_score_ratio:avg",
    "inferwatch_scaler_desired_replicas",
)


@pytest.fixture(scope="module")
def stack(vllm_engine, tmp_path_factory: pytest.TempPathFactory):
    demo = DemoStack(InferwatchConfig(), tmp_path_factory.mktemp("dashboards-stack"),
                     vllm_url=vllm_engine.server.base_url, vllm_log=vllm_engine.server.log_path,
                     say=lambda _text: None)
    try:
        demo.start()
        demo.drive(LOAD_SECONDS)
        for series in SETTLED:
            demo.prometheus.wait_for_series(f"max_over_time({series}[5m])", timeout=60)
        yield demo
    finally:
        demo.stop()


def _context(stack, model: dict) -> tuple[queries.Prometheus, queries.Context]:
    prometheus = queries.Prometheus(stack.prometheus.url)
    context = queries.Context(stack.started_at, time.time(), scrape_interval=SCRAPE_SECONDS)
    return prometheus, queries.resolve_variables(model, prometheus, context)


@pytest.mark.parametrize("name", ["fleet", "engine", "gpu", "quality", "autoscaling"])
def test_every_panel_and_variable_returns_data(stack, name: str) -> None:
    model = assets.dashboards()[f"inferwatch-{name}.json"]
    prometheus, context = _context(stack, model)
    for variable, options in context.options.items():
        assert options, f"variable {variable} has no values"
    errors, dead = [], []
    for panel_id, results in queries.run_dashboard(model, prometheus, context).items():
        title = next(p["title"] for p in check.panels(model) if p["id"] == panel_id)
        errors += [f"{title} / {r.ref}: {r.error} in {r.expr}" for r in results if r.error]
        if not queries.has_data(results) and (name, title) not in RARE:
            dead.append(title)
    errors += [f"annotation {r.ref}: {r.error}" for r in queries.run_annotations(model, prometheus, context)
               if r.error]
    assert errors == []
    assert dead == [], f"dead panels on {name}"


def test_variables_narrow_the_panels(stack) -> None:
    """`$model` set to one model (not All) still finds it; set to a model that does not exist, nothing."""
    model = assets.dashboards()["inferwatch-engine.json"]
    prometheus, context = _context(stack, model)
    assert context.options["model"] == ["tiny-llama"]
    panel = next(p for p in check.panels(model) if p["title"] == "Time to first token")
    context.values["model"] = queries.format_values(["tiny-llama"])
    assert queries.has_data(queries.run_panel(panel, prometheus, context))
    context.values["model"] = queries.format_values(["no-such-model"])
    assert not queries.has_data(queries.run_panel(panel, prometheus, context))


def test_vllm_series_the_panels_read_exist_in_the_real_vllm(stack) -> None:
    """Names from vLLM and the inferwatch plugin (which the static test cannot import) are real."""
    present = set(queries.Prometheus(stack.prometheus.url).get("label/__name__/values", {}))
    wanted = {metric for model in assets.dashboards().values() for _, expr in check.queries(model)
              for metric in check.metric_names(expr) if metric.startswith(("vllm:", "inferwatch_vllm_"))}
    assert wanted and wanted <= present, sorted(wanted - present)


def test_preview_draws_every_dashboard_from_live_data(stack, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    written, empty = preview_all(stack.prometheus.url, tmp_path, stack.started_at, time.time(), SCRAPE_SECONDS)
    assert sorted(p.name for p in written) == ["autoscaling.png", "engine.png", "fleet.png", "gpu.png", "quality.png"]
    rare = {f"{dashboard} / {title}" for dashboard, title in RARE}
    assert set(empty) <= rare, sorted(set(empty) - rare)
