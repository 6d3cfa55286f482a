"""Quality: golden-prompt probes, user feedback per model version, and input drift.

Latency dashboards say the model answers fast; this one says whether the answers are still good:
probes (inferwatch probe-exporter), ratings posted by the application (feedback-server) and how
far today's inputs are from the reference (drift-exporter).
"""

from __future__ import annotations

from inferwatch.dashboards import common as c

NAME = "quality"
M = 'model_name=~"$model"'

PASS_MAPPINGS = [{"type": "value", "options": {"1": {"text": "pass", "color": "green", "index": 0},
                                               "0": {"text": "fail", "color": "red", "index": 1}}}]
DRIFT_MAPPINGS = [{"type": "value", "options": {"0": {"text": "stable", "color": "green", "index": 0},
                                                "1": {"text": "drift", "color": "orange", "index": 1}}}]


def build():
    model = c.query_variable(
        "model", "Model",
        'label_values({__name__=~"inferwatch_probe_success|inferwatch_feedback_total|inferwatch_drift_samples"},'
        " model_name)")
    method = c.query_variable("method", "Drift method", "label_values(inferwatch_drift_threshold, method)",
                              multi=False, include_all=False)
    method.default = "psi"
    method._current = {"selected": True, "text": "psi", "value": "psi"}
    y = 0
    top = [
        c.stat("Probes passing", "Share of probe runs (every model, module and endpoint) whose cases all passed on"
               " their last run. Below 1: see Probe results.",
               [c.target(f"avg(inferwatch_probe_success{{{M}}})")], "percentunit", c.grid(0, y, 4, 4),
               thresholds=c.steps((c.RED, None), (c.ORANGE, 0.5), (c.GREEN, 1))),
        c.stat("Lowest module score", "Lowest mean score of any probe module (fraction of assertions passed,"
               " averaged over endpoints).",
               [c.target(f"min(model_name_module:inferwatch_probe_module_score_ratio:avg{{{M}}})")], "percentunit",
               c.grid(4, y, 4, 4), thresholds=c.GOOD_HIGH),
        c.stat("Feedback/s", "Ratings received per second (all scores), selected models.",
               [c.target(f"sum(rate(inferwatch_feedback_total{{{M}}}[$__rate_interval]))")], "short",
               c.grid(8, y, 4, 4)),
        c.stat("Negative feedback (1h)", "Highest share of negative ratings of any model version over the last hour."
               " LLMNegativeFeedbackRising compares it with the model's 7-day baseline.",
               [c.target(f"max(model_name_version:inferwatch_feedback_negative_per_feedback:ratio_rate1h{{{M}}})")],
               "percentunit", c.grid(12, y, 4, 4), thresholds=c.steps((c.GREEN, None), (c.ORANGE, 0.2), (c.RED, 0.4))),
        c.stat("Features drifting", "Features whose drift score is over its method's threshold now (any model,"
               " source and method).",
               [c.target(f"count(model_name_source_feature_method:inferwatch_drift_detected:max{{{M}}} > 0)"
                         " or vector(0)")], "short", c.grid(16, y, 4, 4),
               thresholds=c.steps((c.GREEN, None), (c.ORANGE, 1))),
        c.stat("Drift exporter", "1 while the drift exporter can query Prometheus for the length histograms.",
               [c.target("min(inferwatch_drift_prometheus_up)")], "bool", c.grid(20, y, 4, 4),
               mappings=PASS_MAPPINGS, thresholds=c.steps((c.RED, None), (c.GREEN, 1))),
    ]
    y = 4
    probes = [
        c.row("Probes", y),
        c.state_timeline("Probe results", "Last result of each probe (model, module, endpoint) over time. A fail"
                         " on one endpoint only: that replica (LLMProbeFailingOnEndpoint); on all: the model"
                         " (LLMProbeFailing).",
                         [c.target(f"min by (model_name, module, instance, target) (inferwatch_probe_success{{{M}}})",
                                   "{{model_name}} {{module}} {{target}}{{instance}}")],
                         "none", c.grid(0, y + 1, 12, 8), mappings=PASS_MAPPINGS,
                         thresholds=c.steps((c.RED, None), (c.GREEN, 1))),
        c.timeseries("Module score", "Mean probe score per model and module, and (dashed) its mean over the day"
                     " ending an hour ago, which LLMProbeScoreDropped compares against (needs a day of history).",
                     c.targets((f"model_name_module:inferwatch_probe_module_score_ratio:avg{{{M}}}",
                                "{{model_name}} {{module}}"),
                               (f"model_name_module:inferwatch_probe_module_score_ratio:baseline1d{{{M}}}",
                                "{{model_name}} {{module}} baseline")),
                     "percentunit", c.grid(12, y + 1, 12, 8), fill=0, min_value=0, max_value=1,
                     overrides=[c.dashed(".* baseline")]),
        c.timeseries("Probe TTFT vs engine p95", "Time to first token seen by the probe (client side, through the"
                     " network and gateways) against the engine's own p95. The probe far above the engine: time is"
                     " lost before the engine (LLMProbeClientLatencyHigh).",
                     c.targets((f"model_name:inferwatch_probe_case_time_to_first_token_seconds:avg{{{M}}}",
                                "{{model_name}} probe"),
                               (f"model_name:llm_time_to_first_token_seconds:p95_rate5m{{{M}}}",
                                "{{model_name}} engine p95")),
                     "s", c.grid(0, y + 9, 12, 8), fill=0),
        c.timeseries("Failing cases by reason", "Probe cases failing now, by reason: timeout, http_error, bad_stream,"
                     " connection_error, model_mismatch (another model answered), assertion_failed (wrong answer).",
                     c.targets((f"sum by (model_name, reason) (inferwatch_probe_case_failed{{{M}}})",
                                "{{model_name}} {{reason}}")),
                     "short", c.grid(12, y + 9, 12, 8), stacked=True, fill=40, draw_style="bars"),
    ]
    y = 21
    feedback = [
        c.row("User feedback", y),
        c.timeseries("Negative feedback per version", "Share of negative ratings per model version over 1 hour"
                     " (solid) and 1 day (dashed). A new version worse than the previous one:"
                     " LLMModelVersionRatedWorse (consider a rollback).",
                     c.targets((f"model_name_version:inferwatch_feedback_negative_per_feedback:ratio_rate1h{{{M}}}",
                                "{{model_name}} {{version}} 1h"),
                               (f"model_name_version:inferwatch_feedback_negative_per_feedback:ratio_rate1d{{{M}}}",
                                "{{model_name}} {{version}} 1d")),
                     "percentunit", c.grid(0, y + 1, 8, 8), fill=0, min_value=0, max_value=1,
                     overrides=[c.dashed(".* 1d")]),
        c.timeseries("Ratings by polarity", "Ratings per second per model, split into positive, neutral and"
                     " negative (as the score's config classifies values).",
                     c.targets((f"sum by (model_name, polarity) (rate(inferwatch_feedback_total{{{M}}}"
                                "[$__rate_interval]))", "{{model_name}} {{polarity}}")),
                     "short", c.grid(8, y + 1, 8, 8), stacked=True, fill=40),
        c.timeseries("Mean score per version", "Mean of each numeric score per model version over the last hour.",
                     c.targets((f"model_name_version_score:inferwatch_feedback_score:mean1h{{{M}}}",
                                "{{model_name}} {{version}} {{score}}")),
                     "short", c.grid(16, y + 1, 8, 8), fill=0),
        c.timeseries("Rejected feedback", "Feedback refused per second by reason (unauthorized, too_large, bad_json,"
                     " schema, unknown_score, cardinality). Any sustained rate: the application posts something"
                     " the server does not accept, and those ratings are lost (LLMFeedbackRejected).",
                     c.targets(("sum by (reason) (job_reason:inferwatch_feedback_rejected:rate15m)", "{{reason}}")),
                     "short", c.grid(0, y + 9, 12, 7), fill=0),
        c.timeseries("Version lookups", "How ratings without a model_version got one from Prometheus (resolved,"
                     " unknown for a tie or no data, error when Prometheus did not answer).",
                     c.targets(("sum by (result) (rate(inferwatch_feedback_version_lookups_total[$__rate_interval]))",
                                "{{result}}")),
                     "short", c.grid(12, y + 9, 12, 7), fill=0),
    ]
    y = 37
    drift = [
        c.row("Input drift", y),
        c.timeseries("Drift score ($method)", "Drift of each input feature against its reference, by the selected"
                     " method; the dashed line is the method's threshold (PSI 0.1, Jensen-Shannon 0.1, KS p-value"
                     " 0.05 where lower means drift). Windows with fewer than min_samples requests get no score.",
                     c.targets((f'model_name_source_feature_method:inferwatch_drift_score:max{{{M}, method="$method"}}',
                                "{{model_name}} {{source}} {{feature}}"),
                               ('max by (method) (inferwatch_drift_threshold{method="$method"})', "threshold")),
                     "short", c.grid(0, y + 1, 12, 8), fill=0,
                     overrides=[c.dashed("^threshold$", "red")]),
        c.state_timeline("Drift detected", "Per model, source and feature: over the threshold (drift) or not, by"
                         " the selected method. LLMInputDriftDetected fires after it lasts.",
                         [c.target(f'model_name_source_feature_method:inferwatch_drift_detected:max{{{M},'
                                   ' method="$method"}', "{{model_name}} {{source}} {{feature}}")],
                         "none", c.grid(12, y + 1, 12, 8), mappings=DRIFT_MAPPINGS,
                         thresholds=c.steps((c.GREEN, None), (c.ORANGE, 1))),
        c.timeseries("Samples per window", "Values each feature had in the current window (the fewest over"
                     " methods). Under min_samples the feature is not scored: more traffic or a longer window.",
                     c.targets((f"model_name_source_feature:inferwatch_drift_samples:min{{{M}}}",
                                "{{model_name}} {{source}} {{feature}}")),
                     "short", c.grid(0, y + 9, 24, 7), fill=0),
    ]
    return c.dashboard(
        NAME, "inferwatch / Quality",
        "Whether the answers are still good: golden-prompt probes, user feedback per model version and input"
        " drift against a reference.",
        [model, method], [*top, *probes, *feedback, *drift])
