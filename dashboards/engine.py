"""Serving engine: one model's latency against its adaptive band, load, KV cache and errors, per instance.

Model-level panels read the engine-neutral recording rules (vLLM, SGLang or TGI underneath);
per-instance panels read vLLM's own series, filtered by `$instance`.
"""

from __future__ import annotations

from inferwatch.dashboards import common as c

NAME = "engine"
M = 'model_name=~"$model"'
MI = 'model_name=~"$model", instance=~"$instance"'
# The log exporter's sources are named like the engine exporter's endpoints: 1 per endpoint of $model.
ENDPOINTS_OF_MODEL = ('(max by (source) (label_replace(inferwatch_engine_up{model_name=~"$model"}, "source", "$1",'
                      ' "endpoint", "(.*)")) * 0 + 1)')

# The threshold the alerts use (the adaptive band clamped at the SLA) drawn as a dashed red line,
# the band's own edge dotted, the SLA as a solid dark-red line.
BAND_OVERRIDES = [
    c.dashed(".*alert threshold.*", "red"),
    {"matcher": {"id": "byRegexp", "options": ".*adaptive band.*"},
     "properties": [{"id": "custom.lineStyle", "value": {"fill": "dot", "dash": [0, 10]}},
                    {"id": "color", "value": {"mode": "fixed", "fixedColor": "orange"}}]},
    {"matcher": {"id": "byRegexp", "options": ".*SLA.*"},
     "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": "dark-red"}}]},
]


def _latency(title: str, metric: str, what: str, pos, banded: bool):
    queries = [(f"model_name:{metric}:p{q}_rate5m{{{M}}}", f"{{{{model_name}}}} p{q}") for q in (50, 95, 99)]
    if banded:
        queries += [
            (f"model_name:{metric}_p95:threshold{{{M}}}", "{{model_name}} p95 alert threshold"),
            (f"model_name:{metric}_p95:upper_band{{{M}}}", "{{model_name}} p95 adaptive band"),
            (f"model_name:{metric}_p95:sla_seconds{{{M}}}", "{{model_name}} SLA"),
        ]
    band = (" The dashed red line is the threshold the alerts use: the adaptive band (dotted; it needs a day of"
            " history) clamped at the SLA (dark red). p95 above the dashed line for 5 minutes fires"
            " the AboveBaseline alert; above the SLA, the SLABreach alert.") if banded else ""
    return c.timeseries(
        title, f"{what} quantiles per model over 5 minutes, from the engine's histogram.{band} When p95 rises:"
        " check waiting requests and KV-cache usage below (load), then a version change annotation (a deploy).",
        c.targets(*queries), "s", pos, overrides=BAND_OVERRIDES if banded else None, fill=0)


def build():
    model = c.query_variable("model", "Model", "label_values(model_name:llm_requests_running:sum, model_name)")
    instance = c.query_variable("instance", "Instance",
                                'label_values(vllm:num_requests_running{model_name=~"$model"}, instance)')
    y = 0
    top = [
        c.stat("Requests/s", "Finished requests per second over 5 minutes, all selected models. Zero while"
               " endpoints are up means no traffic reaches the engine (check the gateway).",
               [c.target(f"sum(model_name:llm_requests:rate5m{{{M}}})")], "reqps", c.grid(0, y, 3, 4)),
        c.stat("TTFT p95", "Worst per-model time to first token (p95, 5 minutes). Red above 1 s: see the TTFT panel.",
               [c.target(f"max(model_name:llm_time_to_first_token_seconds:p95_rate5m{{{M}}})")], "s",
               c.grid(3, y, 3, 4), thresholds=c.steps((c.GREEN, None), (c.ORANGE, 0.5), (c.RED, 1.0))),
        c.stat("Inter-token p95", "Worst per-model inter-token latency (p95, 5 minutes). Red above the usual 100 ms"
               " streaming target.", [c.target(f"max(model_name:llm_inter_token_latency_seconds:p95_rate5m{{{M}}})")],
               "s", c.grid(6, y, 3, 4), thresholds=c.steps((c.GREEN, None), (c.ORANGE, 0.05), (c.RED, 0.1))),
        c.stat("Running", "Requests being decoded now, all selected models. Near the engine's max_num_seqs the"
               " queue starts to grow.", [c.target(f"sum(model_name:llm_requests_running:sum{{{M}}})")], "short",
               c.grid(9, y, 3, 4)),
        c.stat("Waiting", "Requests queued for a batch slot. Sustained > 0 means the engine is at capacity:"
               " scale out or shed load.", [c.target(f"sum(model_name:llm_requests_waiting:sum{{{M}}})")], "short",
               c.grid(12, y, 3, 4), thresholds=c.steps((c.GREEN, None), (c.ORANGE, 1), (c.RED, 10))),
        c.stat("KV cache", "Highest KV-cache usage of any instance. Above 90 % requests are preempted.",
               [c.target(f"max(model_name:llm_kv_cache_usage:max{{{M}}})")], "percentunit", c.grid(15, y, 3, 4),
               thresholds=c.BAD_HIGH),
        c.stat("Error ratio", "Share of finished requests that ended in an engine error (5 minutes).",
               [c.target(f"max(model_name:llm_request_errors_per_requests:ratio_rate5m{{{M}}})")], "percentunit",
               c.grid(18, y, 3, 4), thresholds=c.steps((c.GREEN, None), (c.ORANGE, 0.001), (c.RED, 0.01))),
        c.stat("SLO goodput", "Share of requests meeting both the TTFT and the TPOT target (inferwatch vLLM"
               " plugin; targets from the `slo` section). Low goodput with low latency quantiles means a few"
               " very slow requests.",
               [c.target(f"sum(rate(inferwatch_vllm_slo_goodput_requests_total{{{MI}}}[$__rate_interval]))"
                         f" / sum(rate(inferwatch_vllm_slo_requests_total{{{MI}}}[$__rate_interval]))")],
               "percentunit", c.grid(21, y, 3, 4), thresholds=c.GOOD_HIGH),
    ]
    y = 4
    latency = [
        c.row("Latency", y),
        _latency("Time to first token", "llm_time_to_first_token_seconds", "Time to first token",
                 c.grid(0, y + 1, 12, 9), banded=True),
        _latency("Inter-token latency", "llm_inter_token_latency_seconds", "Inter-token latency",
                 c.grid(12, y + 1, 12, 9), banded=True),
        _latency("End-to-end latency", "llm_e2e_request_latency_seconds", "End-to-end request latency",
                 c.grid(0, y + 10, 8, 8), banded=False),
        _latency("Queue time", "llm_request_queue_time_seconds", "Time waiting for a batch slot",
                 c.grid(8, y + 10, 8, 8), banded=False),
        c.timeseries("TTFT p95 per instance", "Time to first token (p95, 5 minutes) of each instance. One instance"
                     " far above the others: a bad node or GPU (follow the endpoint table's link to its GPUs).",
                     c.targets((f"instance_model_name:llm_time_to_first_token_seconds:p95_rate5m{{{MI}}}",
                                "{{instance}} {{model_name}}")), "s", c.grid(16, y + 10, 8, 8), fill=0),
        c.heatmap("TTFT distribution", "Requests per second in each time-to-first-token bucket, selected instances."
                  " A second band of slow requests points at a subset of prompts (long inputs) or one instance.",
                  f"sum by (le) (rate(vllm:time_to_first_token_seconds_bucket{{{MI}}}[$__rate_interval]))", "s",
                  c.grid(0, y + 18, 24, 7)),
    ]
    y = 30
    load = [
        c.row("Load and KV cache", y),
        c.timeseries("Running and waiting requests", "Per instance. Waiting above zero for minutes: the instance is"
                     " saturated (batch full or KV cache full).",
                     c.targets((f"sum by (instance) (vllm:num_requests_running{{{MI}}})", "{{instance}} running"),
                               (f"sum by (instance) (vllm:num_requests_waiting{{{MI}}})", "{{instance}} waiting")),
                     "short", c.grid(0, y + 1, 8, 8)),
        c.timeseries("KV-cache usage", "Fraction of KV-cache blocks in use per instance. Near 100 % the scheduler"
                     " preempts requests; LLMKVCacheSaturationPredicted warns before.",
                     c.targets((f"max by (instance) (vllm:kv_cache_usage_perc{{{MI}}})", "{{instance}}")),
                     "percentunit", c.grid(8, y + 1, 8, 8), min_value=0, max_value=1,
                     thresholds=c.steps((c.GREEN, None), (c.RED, 0.9))),
        c.timeseries("Preemptions", "Requests preempted per second (KV cache exhausted; the work is recomputed)."
                     " Any sustained rate wastes GPU time: lower max_num_seqs or add memory.",
                     c.targets((f"model_name:llm_preemptions:rate5m{{{M}}}", "{{model_name}}"),
                               (f"sum by (instance) (rate(vllm:num_preemptions_total{{{MI}}}[$__rate_interval]))",
                                "{{instance}}")), "reqps", c.grid(16, y + 1, 8, 8), fill=0),
        c.timeseries("Token throughput", "Prompt and generated tokens per second per model.",
                     c.targets((f"model_name:llm_prompt_tokens:rate5m{{{M}}}", "{{model_name}} prompt"),
                               (f"model_name:llm_generation_tokens:rate5m{{{M}}}", "{{model_name}} generated")),
                     "short", c.grid(0, y + 9, 8, 8)),
        c.timeseries("Prefix-cache hit ratio", "Share of prompt tokens served from the prefix cache. A drop after a"
                     " deploy or a traffic change raises TTFT.",
                     c.targets((f"model_name:llm_prefix_cache_hits_per_queries:ratio_rate5m{{{M}}}",
                                "{{model_name}}")), "percentunit", c.grid(8, y + 9, 8, 8), min_value=0, max_value=1),
        c.timeseries("Requests per replica", "Load per healthy replica, the x-axis of the load-aware band and of"
                     " the capacity alert; the dashed line is the most a replica handled within the SLA (past"
                     " week, needs an hour of history).",
                     c.targets((f"model_name:llm_requests_per_replica:rate5m{{{M}}}", "{{model_name}}"),
                               (f"model_name:llm_requests_per_replica_within_sla:max1h{{{M}}}",
                                "{{model_name}} handled within SLA (1h max)")),
                     "reqps", c.grid(16, y + 9, 8, 8), fill=0),
    ]
    y = 47
    errors = [
        c.row("Errors and endpoints", y),
        c.timeseries("Finished requests by reason", "Finished requests per second per finish reason: `stop` and"
                     " `length` are normal; `abort` is clients giving up (often slowness), `error` the engine"
                     " failing.",
                     c.targets((f"model_name_finished_reason:llm_requests:rate5m{{{M}}}",
                                "{{model_name}} {{finished_reason}}")),
                     "reqps", c.grid(0, y + 1, 8, 8), stacked=True, fill=40),
        c.timeseries("Aborted and failed share", "Share of finished requests that were aborted or failed, per model."
                     " LLMErrorRatioAnomalous fires when it is far above the same hour yesterday: check the engine"
                     " log for `error`, client timeouts and latency for `abort`.",
                     c.targets((f"model_name_finished_reason:llm_requests_per_requests:ratio_rate5m{{{M}}}",
                                "{{model_name}} {{finished_reason}}")),
                     "percentunit", c.grid(8, y + 1, 8, 8), fill=0, min_value=0,
                     thresholds=c.steps((c.GREEN, None), (c.RED, 0.01))),
        c.table("Endpoints", "Each endpoint the engine exporter probes: up (1) or not, the model version it serves,"
                " its host. Follow a row's link to that host's GPUs. An endpoint down here and up in Prometheus'"
                " targets is unhealthy but still answering /metrics.",
                [c.target(f"max by (endpoint, hostname, model_name, role) (inferwatch_engine_up{{{M}}})"
                          " * on (endpoint, model_name) group_left (version)"
                          f" max by (endpoint, model_name, version) (inferwatch_model_version_info{{{M}}})",
                          instant=True, fmt="table")],
                "none", c.grid(16, y + 1, 8, 8),
                transformations=[{"id": "organize", "options": {"excludeByName": {"Time": True},
                                                                "renameByName": {"Value": "up"}}}],
                overrides=[c.link_column("hostname", "gpu", "node")]),
    ]
    y = 56
    logs = [
        c.row("Engine log (log exporter)", y),
        c.timeseries("Engine log lines by class", "Error and warning lines per second the log exporter classified in"
                     " the logs of this model's endpoints (source = endpoint name), by class: oom_gpu/oom_kv_cache and"
                     " engine_dead page; a class far above its usual rate is LLMEngineLogErrorsAboveBaseline."
                     " `inferwatch errors top --source <endpoint>` shows the lines as templates.",
                     c.targets((f"sum by (source, class) (rate(inferwatch_engine_log_events_total[$__rate_interval]))"
                                f" * on (source) group_left () {ENDPOINTS_OF_MODEL}", "{{source}} {{class}}")),
                     "short", c.grid(0, y + 1, 12, 8), stacked=True, fill=30),
        c.timeseries("Log lines read", "Lines per second the log exporter read per endpoint, and those that carried"
                     " prompt or output text (redacted before anything read them). Zero while the engine serves: the"
                     " log is not followed (LLMEngineLogSourceDown).",
                     c.targets((f"sum by (source) (rate(inferwatch_log_exporter_lines_total[$__rate_interval]))"
                                f" * on (source) group_left () {ENDPOINTS_OF_MODEL}", "{{source}} read"),
                               (f"sum by (source) (rate(inferwatch_log_exporter_lines_redacted_total"
                                f"[$__rate_interval])) * on (source) group_left () {ENDPOINTS_OF_MODEL}",
                                "{{source}} redacted")),
                     "short", c.grid(12, y + 1, 12, 8), fill=0),
    ]
    return c.dashboard(
        NAME, "inferwatch / Serving engine",
        "One model across its instances: latency quantiles against the adaptive band and the SLA, load, KV cache,"
        " preemptions, errors, endpoints and versions, and what the engine log says.",
        [model, instance], [*top, *latency, *load, *errors, *logs],
        annotations=[c.version_annotation()])
