// Recording rules: per-model serving signals (engine-neutral names), SLIs, GPU efficiency and
// cost, and the adaptive baselines the alerts compare against. Names follow level:metric:operations.
local engineHistograms = [
  // [group, recorded name, vLLM histogram, SGLang histogram]
  ['ttft', 'llm_time_to_first_token_seconds', 'vllm:time_to_first_token_seconds', 'sglang:time_to_first_token_seconds'],
  ['itl', 'llm_inter_token_latency_seconds', 'vllm:inter_token_latency_seconds', 'sglang:inter_token_latency_seconds'],
  ['e2e', 'llm_e2e_request_latency_seconds', 'vllm:e2e_request_latency_seconds', 'sglang:e2e_request_latency_seconds'],
  ['queue', 'llm_request_queue_time_seconds', 'vllm:request_queue_time_seconds', 'sglang:queue_time_seconds'],
];

// The two adaptive signals: [short name, recorded level, SLA config key, human name].
local adaptiveSignals = [
  ['ttft', 'llm_time_to_first_token_seconds', 'ttftSeconds', 'time to first token'],
  ['itl', 'llm_inter_token_latency_seconds', 'itlSeconds', 'inter-token latency'],
];

{
  local c = $._config,
  local w = c.rateWindow,
  local vllm = c.vllmSelector,
  local sglang = c.sglangSelector,
  local tgi = c.tgiSelector,
  local llamacpp = c.llamacppSelector,

  // "A or B or C" over engines; every branch is aggregated to {model_name}.
  local anyEngine(branches) = std.join('\nor\n', branches),
  local sumRate(m, sel) = 'sum by (model_name) (rate(%s{%s}[%s]))' % [m, sel, w],
  // TGI and llama.cpp series have no model label: the scrape job stands for the model.
  local jobAsModel(expr) = 'label_replace(%s, "model_name", "$1", "job", "(.*)")' % expr,
  local jobRate(m, sel) = 'sum by (model_name) (%s)' % jobAsModel('rate(%s{%s}[%s])' % [m, sel, w]),

  // Names the adaptive rules and alerts share.
  adaptive:: {
    [s[0]]: {
      level: 'model_name:%s:p95_rate%s' % [s[1], w],
      centre: 'model_name:%s_p95:baseline_centre' % s[1],
      spread: 'model_name:%s_p95:baseline_spread' % s[1],
      upper: 'model_name:%s_p95:upper_band' % s[1],
      sla: 'model_name:%s_p95:sla_seconds' % s[1],
      threshold: 'model_name:%s_p95:threshold' % s[1],
      slaKey: s[2],
      human: s[3],
    }
    for s in adaptiveSignals
  },
  requestRate:: 'model_name:llm_requests:rate%s' % w,

  prometheusRules+:: {
    groups+: [
      // One group per histogram (groups evaluate concurrently): the per-model bucket rates are
      // computed once, the expensive part, and every quantile reads that small recorded series.
      {
        local byModel = 'model_name_le:%s_bucket:rate%s' % [h[1], w],
        name: 'inferwatch.serving.%s.rules' % h[0],
        rules: [
          {
            record: byModel,
            expr: anyEngine([
              'sum by (model_name, le) (rate(%s_bucket{%s}[%s]))' % [h[2], vllm, w],
              'sum by (model_name, le) (rate(%s_bucket{%s}[%s]))' % [h[3], sglang, w],
            ]),
          },
        ] + [
          {
            record: 'model_name:%s:p%d_rate%s' % [h[1], q * 100, w],
            expr: 'histogram_quantile(%g, %s)' % [q, byModel],
          }
          for q in [0.5, 0.95, 0.99]
        ],
      }
      for h in engineHistograms
    ] + [
      {
        // Per-instance p95, for outlier replicas. Recording per-instance bucket rates instead
        // would add ~90 series per instance and model; this adds one.
        name: 'inferwatch.serving.instance.rules',
        rules: [
          {
            record: 'instance_model_name:llm_time_to_first_token_seconds:p95_rate%s' % w,
            expr: 'histogram_quantile(0.95, sum by (instance, model_name, le) (rate(vllm:time_to_first_token_seconds_bucket{%s}[%s])))' % [vllm, w],
          },
        ],
      },
    ] + [
      {
        name: 'inferwatch.serving.throughput.rules',
        rules: [
          { record: $.requestRate, expr: sumRate('vllm:request_success_total', vllm) },
          {
            record: 'model_name:llm_prompt_tokens:rate%s' % w,
            expr: anyEngine([sumRate('vllm:prompt_tokens_total', vllm), sumRate('sglang:prompt_tokens_total', sglang),
                             jobRate('llamacpp:prompt_tokens_total', llamacpp)]),
          },
          {
            record: 'model_name:llm_generation_tokens:rate%s' % w,
            expr: anyEngine([sumRate('vllm:generation_tokens_total', vllm), sumRate('sglang:generation_tokens_total', sglang),
                             jobRate('llamacpp:tokens_predicted_total', llamacpp)]),
          },
          {
            record: 'model_name:llm_request_errors_per_requests:ratio_rate%s' % w,
            expr: |||
              sum by (model_name) (rate(vllm:request_success_total{%(sel)s,finished_reason=~"error|abort"}[%(w)s]))
              /
              (sum by (model_name) (rate(vllm:request_success_total{%(sel)s}[%(w)s])) > 0)
            ||| % { sel: vllm, w: w },
          },
          {
            record: 'job:vllm_http_5xx_per_requests:ratio_rate%s' % w,
            expr: |||
              sum by (job) (rate(http_requests_total{%(sel)s,status="5xx"}[%(w)s]))
              /
              (sum by (job) (rate(http_requests_total{%(sel)s}[%(w)s])) > 0)
            ||| % { sel: vllm, w: w },
          },
          {
            record: 'model_name:llm_kv_cache_usage:max',
            expr: anyEngine([
              'max by (model_name) (vllm:kv_cache_usage_perc{%s})' % vllm,
              'max by (model_name) (sglang:token_usage{%s})' % sglang,
            ]),
          },
          {
            record: 'model_name:llm_requests_waiting:sum',
            expr: anyEngine([
              'sum by (model_name) (vllm:num_requests_waiting{%s})' % vllm,
              'sum by (model_name) (sglang:num_queue_reqs{%s})' % sglang,
              'sum by (model_name) (%s)' % jobAsModel('tgi_queue_size{%s}' % tgi),
              'sum by (model_name) (%s)' % jobAsModel('llamacpp:requests_deferred{%s}' % llamacpp),
            ]),
          },
          {
            record: 'model_name:llm_requests_running:sum',
            expr: anyEngine([
              'sum by (model_name) (vllm:num_requests_running{%s})' % vllm,
              'sum by (model_name) (sglang:num_running_reqs{%s})' % sglang,
              'sum by (model_name) (%s)' % jobAsModel('tgi_batch_current_size{%s}' % tgi),
              'sum by (model_name) (%s)' % jobAsModel('llamacpp:requests_processing{%s}' % llamacpp),
            ]),
          },
          {
            record: 'model_name:llm_preemptions:rate%s' % w,
            expr: anyEngine([sumRate('vllm:num_preemptions_total', vllm), sumRate('sglang:num_retracted_requests_total', sglang)]),
          },
          {
            record: 'model_name:llm_prefix_cache_hits_per_queries:ratio_rate%s' % w,
            expr: |||
              sum by (model_name) (rate(vllm:prefix_cache_hits_total{%(sel)s}[%(w)s]))
              /
              (sum by (model_name) (rate(vllm:prefix_cache_queries_total{%(sel)s}[%(w)s])) > 0)
            ||| % { sel: vllm, w: w },
          },
          {
            record: ':llm_generation_tokens_per_gpu_second:ratio_rate%s' % w,
            expr: |||
              sum(model_name:llm_generation_tokens:rate%(w)s)
              /
              (sum(inferwatch_gpu_up{%(gpu)s}) > 0)
            ||| % { w: w, gpu: c.gpuSelector },
          },
          {
            record: ':llm_cost_usd_per_million_tokens:ratio_rate%s' % w,
            expr: |||
              (sum(inferwatch_gpu_up{%(gpu)s}) * %(price)g / 3600)
              /
              ((sum(model_name:llm_prompt_tokens:rate%(w)s) + sum(model_name:llm_generation_tokens:rate%(w)s)) / 1e6 > 0)
            ||| % { w: w, gpu: c.gpuSelector, price: c.gpuHourPriceUsd },
          },
        ],
      },
    ] + $.sloRuleGroups + $.adaptiveRuleGroups,
  },

  // -- SLIs: bad/total rates at 5m, longer windows as traffic-weighted averages of those --------
  sloWindows:: ['5m', '30m', '1h', '2h', '6h', '1d', '3d', '30d'],
  slis:: {
    availability: {
      bad: 'sum by (model_name) (rate(vllm:request_success_total{%s,finished_reason="error"}[5m]))' % vllm,
      total: 'sum by (model_name) (rate(vllm:request_success_total{%s}[5m]))' % vllm,
      target: c.slo.availabilityTarget,
      human: 'availability',
    },
    ttft: {
      bad: |||
        sum by (model_name) (rate(vllm:time_to_first_token_seconds_count{%(sel)s}[5m]))
        -
        sum by (model_name) (rate(vllm:time_to_first_token_seconds_bucket{%(sel)s,le="%(le)s"}[5m]))
      ||| % { sel: vllm, le: c.slo.ttftThresholdSeconds },
      total: 'sum by (model_name) (rate(vllm:time_to_first_token_seconds_count{%s}[5m]))' % vllm,
      target: c.slo.ttftTarget,
      human: 'time to first token under %ss' % c.slo.ttftThresholdSeconds,
    },
    itl: {
      bad: |||
        sum by (model_name) (rate(vllm:inter_token_latency_seconds_count{%(sel)s}[5m]))
        -
        sum by (model_name) (rate(vllm:inter_token_latency_seconds_bucket{%(sel)s,le="%(le)s"}[5m]))
      ||| % { sel: vllm, le: c.slo.itlThresholdSeconds },
      total: 'sum by (model_name) (rate(vllm:inter_token_latency_seconds_count{%s}[5m]))' % vllm,
      target: c.slo.itlTarget,
      human: 'inter-token latency under %ss' % c.slo.itlThresholdSeconds,
    },
  },
  sliName(slo, window):: 'model_name:llm_slo_%s_errors_per_events:ratio_rate%s' % [slo, window],

  sloRuleGroups:: [
    {
      name: 'inferwatch.slo.%s.rules' % slo,
      rules: [
        { record: 'model_name:llm_slo_%s_errors:rate5m' % slo, expr: $.slis[slo].bad },
        { record: 'model_name:llm_slo_%s_events:rate5m' % slo, expr: $.slis[slo].total },
        { record: 'model_name:llm_slo_%s:objective_ratio' % slo, expr: '0 * model_name:llm_slo_%s_events:rate5m + %g' % [slo, $.slis[slo].target] },
      ] + [
        {
          record: $.sliName(slo, window),
          expr: if window == '5m' then
            'model_name:llm_slo_%(s)s_errors:rate5m / (model_name:llm_slo_%(s)s_events:rate5m > 0)' % { s: slo }
          else
            'avg_over_time(model_name:llm_slo_%(s)s_errors:rate5m[%(w)s]) / (avg_over_time(model_name:llm_slo_%(s)s_events:rate5m[%(w)s]) > 0)' % { s: slo, w: window },
        }
        for window in $.sloWindows
      ] + [
        {
          record: 'model_name:llm_slo_%s:error_budget_remaining_ratio' % slo,
          expr: '1 - %s / (1 - %g)' % [$.sliName(slo, '30d'), $.slis[slo].target],
        },
      ],
    }
    for slo in std.objectFields($.slis)
  ],

  // -- Adaptive baselines (docs/adaptive-thresholds.md) -----------------------------------------
  local a = c.adaptive,
  local offsetFor(period) = {
    // A window of width `seasonalWindow` centred on the same time `period` ago.
    '1d': std.toString(24 * 60 - std.parseInt(std.strReplace(a.seasonalWindow, 'h', '')) * 30) + 'm',
    '1w': std.toString(7 * 24 * 60 - std.parseInt(std.strReplace(a.seasonalWindow, 'h', '')) * 30) + 'm',
  }[period],
  local seasonal(q, level, period) =
    'label_replace(quantile_over_time(%g, %s[%s] offset %s), "reference", "%s", "", "")' % [q, level, a.seasonalWindow, offsetFor(period), period],
  local slaExpr(s) =
    local sla = c.sla[s.slaKey];
    local overrides = [
      '0 * %s{model_name="%s"} + %g' % [s.level, m, sla.overrides[m]]
      for m in std.objectFields(sla.overrides)
    ];
    std.join(' or ', overrides + ['0 * %s + %g' % [s.level, sla.default]]),

  adaptiveRuleGroups:: [
    {
      // Seasonal references change slowly: every 5 minutes is enough.
      name: 'inferwatch.adaptive.seasonal.rules',
      interval: '5m',
      rules: std.flattenArrays([
        local s = $.adaptive[name];
        [
          {
            record: s.centre,
            expr: 'max without (reference) (\n  %s\n  or\n  %s\n)' % [seasonal(0.5, s.level, '1d'), seasonal(0.5, s.level, '1w')],
          },
          {
            // Upper spread (q90 - median) of each reference window, the larger one, capped so a
            // short spike cannot widen the band for a day.
            record: s.spread,
            expr: |||
              (
                max without (reference) (
                  %(q90_1d)s - %(q50_1d)s
                  or
                  %(q90_1w)s - %(q50_1w)s
                ) < %(cap)g * %(centre)s
              )
              or
              %(cap)g * %(centre)s
            ||| % {
              q90_1d: seasonal(0.9, s.level, '1d'),
              q50_1d: seasonal(0.5, s.level, '1d'),
              q90_1w: seasonal(0.9, s.level, '1w'),
              q50_1w: seasonal(0.5, s.level, '1w'),
              cap: a.maxSpreadRatio,
              centre: s.centre,
            },
          },
        ]
        for name in std.objectFields($.adaptive)
      ]),
    },
    {
      name: 'inferwatch.adaptive.rules',
      rules: std.flattenArrays([
        local s = $.adaptive[name];
        local centre = 'last_over_time(%s[10m])' % s.centre;
        local spread = 'last_over_time(%s[10m])' % s.spread;
        [
          {
            record: s.upper,
            expr: '%(c)s + ((%(k)g * %(s)s > %(m)g * %(c)s) or %(m)g * %(c)s)' % { c: centre, s: spread, k: a.sensitivity, m: a.marginFloor },
          },
          { record: s.sla, expr: slaExpr(s) },
          {
            // Never above the SLA; the SLA alone while there is no history yet.
            record: s.threshold,
            expr: '(%s < %s) or %s' % [s.upper, s.sla, s.sla],
          },
        ]
        for name in std.objectFields($.adaptive)
      ]),
    },
  ],
}
