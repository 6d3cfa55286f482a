"""Fleet overview: every model's service levels, traffic, cost and health on one page, deploys annotated.

The first stop when "something is wrong": each model name links to the serving-engine dashboard
for that model, whose endpoint table links to the GPUs of that host.
"""

from __future__ import annotations

from inferwatch.dashboards import common as c

NAME = "fleet"
M = 'model_name=~"$model"'
SLOS = (("availability", "Availability"), ("ttft", "TTFT"), ("itl", "Inter-token"))
CRITICAL = 'ALERTS{alertstate="firing", severity="critical"}'
WARNING = 'ALERTS{alertstate="firing", severity="warning"}'


def _burn(slo: str, window: str = "1h") -> str:
    return (f"model_name:llm_slo_{slo}_errors_per_events:ratio_rate{window}{{{M}}}"
            f" / on (model_name) (1 - model_name:llm_slo_{slo}:objective_ratio{{{M}}})")


def build():
    model = c.query_variable("model", "Model", "label_values(model_name:llm_requests_running:sum, model_name)")
    redundancy = c.constant_variable("redundancy", "2", "Healthy endpoints a model needs"
                                     " (the mixin's _config.redundancy.minHealthyEndpoints)")
    y = 0
    top = [
        c.stat("Models serving", "Models with at least one healthy endpoint (engine exporter). Fewer than you"
               " deploy: LLMModelUnavailable is firing for the missing one.",
               [c.target(f"count(sum by (model_name) (inferwatch_model_healthy_endpoints{{{M}}}) > 0) or vector(0)")],
               "short", c.grid(0, y, 3, 4), links=[c.panel_link("Serving engine", "engine", "${model:queryparam}")]),
        c.stat("Requests/s", "Finished requests per second, all selected models (5 minutes).",
               [c.target(f"sum(model_name:llm_requests:rate5m{{{M}}})")], "reqps", c.grid(3, y, 3, 4)),
        c.stat("Generated tokens/s", "Output tokens per second, all selected models (5 minutes).",
               [c.target(f"sum(model_name:llm_generation_tokens:rate5m{{{M}}})")], "short", c.grid(6, y, 3, 4)),
        c.stat("Cost per 1M tokens", "GPU-hours (all GPUs up, at cost.gpu_hour_price_usd) per million prompt and"
               " generated tokens. Rising at flat traffic: GPUs idle or a slower version.",
               [c.target(":llm_cost_usd_per_million_tokens:ratio_rate5m")], "currencyUSD", c.grid(9, y, 3, 4),
               decimals=2),
        c.stat("Worst availability budget", "Lowest remaining 30-day availability error budget of any selected"
               " model. Below 0 the SLO is missed for the period. Needs one whole hour of history.",
               [c.target(f"min(model_name:llm_slo_availability:error_budget_remaining_ratio{{{M}}})")],
               "percentunit", c.grid(12, y, 3, 4), thresholds=c.steps((c.RED, None), (c.ORANGE, 0.25), (c.GREEN, 0.5))),
        c.stat("Critical alerts", "Critical inferwatch alerts firing now (they page). The Firing alerts table below"
               " names them.", [c.target(f"count({CRITICAL}) or vector(0)")], "short", c.grid(15, y, 3, 4),
               thresholds=c.steps((c.GREEN, None), (c.RED, 1)), color_mode="background"),
        c.stat("Warnings", "Warning alerts firing now (they open tickets); the Firing alerts table below names"
               " them.", [c.target(f"count({WARNING}) or vector(0)")],
               "short", c.grid(18, y, 3, 4), thresholds=c.steps((c.GREEN, None), (c.ORANGE, 1)),
               color_mode="background"),
        c.stat("GPUs up", "GPUs answering NVML across the fleet; open the GPU dashboard for which one is lost.",
               [c.target("sum(inferwatch_gpu_up)")], "short", c.grid(21, y, 3, 4),
               links=[c.panel_link("GPU", "gpu", "var-node=All")]),
    ]
    y = 4
    slo_queries = []
    for i, (slo, _) in enumerate(SLOS):
        slo_queries.append(c.target(f"model_name:llm_slo_{slo}:error_budget_remaining_ratio{{{M}}}",
                                    ref=chr(ord("A") + i), instant=True, fmt="table"))
        slo_queries.append(c.target(_burn(slo), ref=chr(ord("D") + i), instant=True, fmt="table"))
    rename = {f"Value #{chr(ord('A') + i)}": f"{title} budget left" for i, (_, title) in enumerate(SLOS)}
    rename |= {f"Value #{chr(ord('D') + i)}": f"{title} burn 1h" for i, (_, title) in enumerate(SLOS)}
    slo = [
        c.row("Service levels", y),
        c.table("SLO status per model", "Per model: the 30-day error budget left for availability, TTFT and"
                " inter-token SLOs, and the current 1-hour burn rate (1 = spending the budget exactly over 30 days;"
                " 14.4 for an hour pages). Budgets need an hour of history. Click a model for its engine dashboard.",
                slo_queries, "percentunit", c.grid(0, y + 1, 24, 7),
                transformations=[{"id": "merge", "options": {}},
                                 {"id": "organize", "options": {"excludeByName": {"Time": True},
                                                                "renameByName": rename}}],
                overrides=[c.link_column("model_name", "engine", "model"),
                           {"matcher": {"id": "byRegexp", "options": ".*burn.*"},
                            "properties": [{"id": "unit", "value": "short"}, {"id": "decimals", "value": 2}]}]),
        c.timeseries("Burn rate (1h)", "How fast each SLO's error budget burns, per model: errors over the last hour"
                     " divided by the allowed error ratio. Sustained above 1 the 30-day SLO will be missed;"
                     " the burn-rate alerts fire at 14.4, 6, 3 and 1 on paired windows.",
                     c.targets(*[(_burn(slo), f"{{{{model_name}}}} {title}") for slo, title in SLOS]), "short",
                     c.grid(0, y + 8, 12, 8), fill=0, thresholds=c.steps((c.GREEN, None), (c.RED, 1))),
        c.timeseries("Error budget remaining", "The 30-day error budget left per model and SLO. A steep drop"
                     " marks an incident; the annotations show deploys. Empty until the first whole hour.",
                     c.targets(*[(f"model_name:llm_slo_{slo}:error_budget_remaining_ratio{{{M}}}",
                                  f"{{{{model_name}}}} {title}") for slo, title in SLOS]),
                     "percentunit", c.grid(12, y + 8, 12, 8), fill=0, max_value=1),
    ]
    y = 20
    traffic = [
        c.row("Traffic and cost", y),
        c.timeseries("Requests per model", "Finished requests per second per model. Click a series for its engine"
                     " dashboard.", c.targets((f"model_name:llm_requests:rate5m{{{M}}}", "{{model_name}}")),
                     "reqps", c.grid(0, y + 1, 8, 8), stacked=True, fill=30,
                     links=c.to_dashboard("engine", "series:model_name", "model")),
        c.timeseries("Generated tokens per model", "Output tokens per second per model (prompt tokens are on the"
                     " engine dashboard).",
                     c.targets((f"model_name:llm_generation_tokens:rate5m{{{M}}}", "{{model_name}}")),
                     "short", c.grid(8, y + 1, 8, 8), stacked=True, fill=30,
                     links=c.to_dashboard("engine", "series:model_name", "model")),
        c.timeseries("Cost and efficiency", "Cost per million tokens (left) and generated tokens per GPU-second"
                     " (right), fleet-wide. Efficiency falling while cost rises: GPUs idle or held by a slow"
                     " version.",
                     c.targets((":llm_cost_usd_per_million_tokens:ratio_rate5m", "USD per 1M tokens"),
                               (":llm_generation_tokens_per_gpu_second:ratio_rate5m", "tokens per GPU-second")),
                     "currencyUSD", c.grid(16, y + 1, 8, 8), fill=0,
                     overrides=[{"matcher": {"id": "byName", "options": "tokens per GPU-second"},
                                 "properties": [{"id": "unit", "value": "short"},
                                                {"id": "custom.axisPlacement", "value": "right"}]}]),
    ]
    y = 29
    health = [
        c.row("Health", y),
        c.timeseries("Healthy endpoints vs required", "Healthy endpoints per model (solid) and the redundancy it"
                     " needs (dashed: min(configured endpoints, $redundancy)). Solid under dashed:"
                     " LLMModelRedundancyLow; at 0, LLMModelUnavailable.",
                     c.targets((f"sum by (model_name) (inferwatch_model_healthy_endpoints{{{M}}})",
                                "{{model_name}} healthy"),
                               (f"clamp_max(sum by (model_name) (inferwatch_model_configured_endpoints{{{M}}}),"
                                " $redundancy)", "{{model_name}} required")),
                     "short", c.grid(0, y + 1, 8, 8), fill=0, min_value=0,
                     overrides=[c.dashed(".* required")],
                     links=c.to_dashboard("engine", "series:model_name", "model")),
        c.table("Firing alerts", "Every inferwatch alert firing now, with its model, severity and how many series"
                " fire. Each alert's runbook is linked from its notification.",
                [c.target('count by (alertname, severity, model_name) (ALERTS{alertstate="firing"})', instant=True,
                          fmt="table")],
                "short", c.grid(8, y + 1, 8, 8),
                transformations=[{"id": "organize", "options": {"excludeByName": {"Time": True},
                                                                "renameByName": {"Value": "series"}}}],
                overrides=[c.link_column("model_name", "engine", "model")]),
        c.table("Model versions", "Which version each model serves and on how many endpoints. Two versions of one"
                " model for long: a rollout stuck half way (LLMModelVersionSkew).",
                [c.target(f"count by (model_name, version) (inferwatch_model_version_info{{{M}}})", instant=True,
                          fmt="table")],
                "short", c.grid(16, y + 1, 8, 8),
                transformations=[{"id": "organize", "options": {"excludeByName": {"Time": True},
                                                                "renameByName": {"Value": "endpoints"}}}],
                overrides=[c.link_column("model_name", "engine", "model")]),
    ]
    return c.dashboard(
        NAME, "inferwatch / Fleet overview",
        "Every model: SLO status and error budget, firing alerts, traffic, tokens, cost, endpoint redundancy and"
        " versions, with deploys as annotations. Click a model to open its serving-engine dashboard.",
        [model, redundancy], [*top, *slo, *traffic, *health],
        annotations=[c.version_annotation()])
