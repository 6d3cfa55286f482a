"""Autoscaling: what the KEDA external scaler (`inferwatch scaler`) decided, why, and how it is doing.

Per model: desired replicas against the replicas serving, the forecast against the demand it came
from, the capacity per replica behind the division, and the reason of each decision (forecast, a
guard, min/max, idle). Below, the scaler's own health: KEDA's calls by status, Prometheus queries
that failed (each one an error KEDA's fallback answered), decision time.
"""

from __future__ import annotations

from inferwatch.dashboards import common as c

NAME = "autoscaling"
S = 'model=~"$model"'  # the scaler's series carry `model`
M = 'model_name=~"$model"'  # vLLM's carry `model_name`
ACTIVE_MAPPINGS = [{"type": "value", "options": {"1": {"text": "active", "color": "green", "index": 0},
                                                 "0": {"text": "idle (0)", "color": "blue", "index": 1}}}]
# The vLLM replicas serving a model: one running-requests gauge per engine (as the scaler counts them).
READY = f"count by (model_name) (vllm:num_requests_running{{{M}}})"
DEMAND = f"sum by (model_name) (rate(vllm:request_success_total{{{M}}}[$__rate_interval]))"


def build():
    model = c.query_variable("model", "Model", "label_values(inferwatch_scaler_desired_replicas, model)")
    y = 0
    top = [
        c.stat("Desired replicas", "What the scaler last answered KEDA (metricValueFloat), summed over the selected"
               " models' ScaledObjects. KEDA's HPA rounds it up.",
               [c.target(f"sum(inferwatch_scaler_desired_replicas{{{S}}})")], "short", c.grid(0, y, 4, 4),
               decimals=2),
        c.stat("Replicas serving", "vLLM engines reporting for the selected models now. Below the desired count"
               " for longer than the pod start-up: pods are pending or crash-looping.",
               [c.target(f"sum({READY}) or vector(0)")], "short", c.grid(4, y, 4, 4)),
        c.stat("Forecast", "Demand the scaler expects at now + start-up time (requests/s, or tokens/s for a"
               " token policy), summed over the selected models.",
               [c.target(f"sum(inferwatch_scaler_forecast{{{S}}})")], "short", c.grid(8, y, 4, 4), decimals=2),
        c.stat("Calls failing", "Share of KEDA's calls answered with an error (KEDA's"
               " fallback replicas applied). UNAVAILABLE: Prometheus; FAILED_PRECONDITION: no data;"
               " INVALID_ARGUMENT: the ScaledObject's metadata.",
               [c.target('sum(rate(inferwatch_scaler_rpcs_total{code!="OK"}[$__rate_interval])) / '
                         'sum(rate(inferwatch_scaler_rpcs_total[$__rate_interval])) or vector(0)')], "percentunit",
               c.grid(12, y, 4, 4),
               thresholds=c.steps((c.GREEN, None), (c.ORANGE, 0.01), (c.RED, 0.1))),
        c.stat("Decision time", "Mean wall time of one decision, its Prometheus queries included."
               " KEDA's call deadline is a few seconds; the scaler's own is scaler.query_timeout_seconds.",
               [c.target("sum(rate(inferwatch_scaler_decision_duration_seconds_total[$__rate_interval])) / "
                         "sum(rate(inferwatch_scaler_decisions_total[$__rate_interval]))")], "s", c.grid(16, y, 4, 4),
               decimals=3),
        c.stat("ScaledObjects", "ScaledObjects with their own series here (at most scaler.max_tracked_objects;"
               " the rest are counted in inferwatch_scaler_untracked_decisions_total).",
               [c.target("sum(inferwatch_scaler_tracked_objects)")], "short", c.grid(20, y, 4, 4)),
    ]
    y = 4
    decisions = [
        c.row("Decisions", y),
        c.timeseries("Desired vs serving replicas", "Desired replicas (the scaler's answer) per ScaledObject and"
                     " the vLLM engines serving the model. Desired leads serving by the pod start-up time when the"
                     " forecast works; serving below desired for long: pods do not start.",
                     c.targets((f"inferwatch_scaler_desired_replicas{{{S}}}", "{{model}} desired ({{scaled_object}})"),
                               (READY, "{{model_name}} serving")),
                     "short", c.grid(0, y + 1, 12, 8), fill=0, min_value=0, overrides=[c.dashed(".* serving")]),
        c.timeseries("Forecast vs demand", "The scaler's forecast (at now + start-up) and the demand it reads:"
                     " completions per second (the counter of the default demand query, which rates it over 1m)."
                     " Above the demand before a rise the scaler is early; below it, late.",
                     c.targets((f"inferwatch_scaler_forecast{{{S}}}", "{{model}} forecast"),
                               (DEMAND, "{{model_name}} demand")),
                     "reqps", c.grid(12, y + 1, 12, 8), fill=0, min_value=0, overrides=[c.dashed(".* demand")]),
        c.state_timeline("Decision reason", "Why each decision came out as it did: forecast (demand / capacity,"
                         " with headroom), slo_guard (TTFT burn rate high: one step more), pressure_guard (KV cache or"
                         " queue), min / max (clamped), idle (0 replicas, IsActive false).",
                         [c.target(f"max by (model, reason) (inferwatch_scaler_decision_reason{{{S}}}) == 1",
                                   "{{model}} {{reason}}")],
                         "none", c.grid(0, y + 9, 12, 7), mappings=[],
                         thresholds=c.steps((c.BLUE, None))),
        c.state_timeline("Active", "IsActive per ScaledObject: idle means KEDA may scale the deployment to zero;"
                         " it turns active ahead of forecast traffic (the seasonal lookback).",
                         [c.target(f"inferwatch_scaler_active{{{S}}}", "{{model}} ({{scaled_object}})")],
                         "none", c.grid(12, y + 9, 6, 7), mappings=ACTIVE_MAPPINGS,
                         thresholds=c.steps((c.BLUE, None), (c.GREEN, 1))),
        c.timeseries("Capacity per replica", "Demand one replica serves within the TTFT SLO, as the last decision"
                     " used it: capacityPerReplica, or learned from a week of history.",
                     c.targets((f"inferwatch_scaler_capacity_per_replica{{{S}}}", "{{model}}")),
                     "short", c.grid(18, y + 9, 6, 7), fill=0, min_value=0),
    ]
    y = 20
    health = [
        c.row("Scaler health", y),
        c.timeseries("KEDA calls", "Calls answered per second by method and status code. Errors are deliberate:"
                     " KEDA applies its fallback rather than the scaler guessing a 0.",
                     c.targets(("sum by (method, code) (rate(inferwatch_scaler_rpcs_total[$__rate_interval])) > 0",
                                "{{method}} {{code}}")),
                     "reqps", c.grid(0, y + 1, 8, 7), fill=0),
        c.timeseries("Query errors", "Prometheus queries without a usable answer, per second, by stage (demand,"
                     " seasonal, guards, replicas) and reason (timeout, refused, no_data, ...).",
                     c.targets(("sum by (stage, reason) (rate(inferwatch_scaler_query_errors_total"
                                "[$__rate_interval]))", "{{stage}} {{reason}}")),
                     "short", c.grid(8, y + 1, 8, 7), fill=0),
        c.timeseries("Queries by stage", "Prometheus queries per second by stage: every decision reads its demand"
                     " history, each seasonal lookback and the guards' signals.",
                     c.targets(("sum by (stage) (rate(inferwatch_scaler_queries_total[$__rate_interval]))",
                                "{{stage}}")),
                     "short", c.grid(16, y + 1, 8, 7), fill=0, stacked=True),
    ]
    return c.dashboard(
        NAME, "inferwatch / Autoscaling",
        "The KEDA external scaler: desired replicas against the replicas serving, the forecast against demand, why"
        " each decision came out as it did, and the scaler's own calls and queries.",
        [model], [*top, *decisions, *health])
