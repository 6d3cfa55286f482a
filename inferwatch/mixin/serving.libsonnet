// Serving area: per-model serving signals under engine-neutral names (vLLM, SGLang, TGI,
// llama.cpp), which the adaptive, engine and GPU areas read (names in lib.names).
// Recording rules only. Names follow level:metric:operations.
local lib = import 'lib.libsonnet';

{
  local c = $._config,
  local n = lib.names(c),
  local w = c.rateWindow,
  local vllm = c.vllmSelector,
  local sglang = c.sglangSelector,
  local tgi = c.tgiSelector,
  local llamacpp = c.llamacppSelector,

  local engineHistograms = [
    // [short name, vLLM histogram, SGLang histogram]
    ['ttft', 'vllm:time_to_first_token_seconds', 'sglang:time_to_first_token_seconds'],
    ['itl', 'vllm:inter_token_latency_seconds', 'sglang:inter_token_latency_seconds'],
    ['e2e', 'vllm:e2e_request_latency_seconds', 'sglang:e2e_request_latency_seconds'],
    ['queue', 'vllm:request_queue_time_seconds', 'sglang:queue_time_seconds'],
  ],

  // "A or B or C" over engines; every branch is aggregated to {model_name}.
  local anyEngine(branches) = std.join('\nor\n', branches),
  local sumRate(m, sel) = 'sum by (model_name) (rate(' + m + '{' + sel + '}[' + w + ']))',
  // TGI and llama.cpp series have no model label: the scrape job stands for the model.
  local jobAsModel(expr) = 'label_replace(' + expr + ', "model_name", "$1", "job", "(.*)")',
  local jobRate(m, sel) = 'sum by (model_name) (' + jobAsModel('rate(' + m + '{' + sel + '}[' + w + '])') + ')',
  local ratio(numerator, denominator, by='model_name') = lib.fmt(|||
    sum by (%(by)s) (rate(%(num)s[%(w)s]))
    /
    (sum by (%(by)s) (rate(%(den)s[%(w)s])) > 0)
  |||, { by: by, num: numerator, den: denominator, w: w }),

  prometheusRules+:: {
    groups+: [
      // One group per histogram (groups evaluate concurrently): the per-model bucket rates are
      // computed once, the expensive part, and every quantile reads that small recorded series.
      {
        local metric = n.histograms[h[0]],
        local byModel = 'model_name_le:' + metric + '_bucket:rate' + w,
        name: 'inferwatch.serving.' + h[0] + '.rules',
        rules: [
          {
            record: byModel,
            expr: anyEngine([
              'sum by (model_name, le) (rate(' + h[1] + '_bucket{' + vllm + '}[' + w + ']))',
              'sum by (model_name, le) (rate(' + h[2] + '_bucket{' + sglang + '}[' + w + ']))',
            ]),
          },
        ] + [
          { record: n.quantile(h[0], q), expr: 'histogram_quantile(' + lib.num(q) + ', ' + byModel + ')' }
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
            record: 'instance_model_name:llm_time_to_first_token_seconds:p95_rate' + w,
            expr: 'histogram_quantile(0.95, sum by (instance, model_name, le) (rate(vllm:time_to_first_token_seconds_bucket{'
                  + vllm + '}[' + w + '])))',
          },
        ],
      },
      {
        name: 'inferwatch.serving.throughput.rules',
        rules: [
          { record: n.requestRate, expr: sumRate('vllm:request_success_total', vllm) },
          {
            record: n.promptTokensRate,
            expr: anyEngine([sumRate('vllm:prompt_tokens_total', vllm), sumRate('sglang:prompt_tokens_total', sglang),
                             jobRate('llamacpp:prompt_tokens_total', llamacpp)]),
          },
          {
            record: n.generationTokensRate,
            expr: anyEngine([sumRate('vllm:generation_tokens_total', vllm), sumRate('sglang:generation_tokens_total', sglang),
                             jobRate('llamacpp:tokens_predicted_total', llamacpp)]),
          },
          {
            // Per finish reason (stop, length, abort, error): the errors area's ratios and baselines.
            record: n.requestsByReasonRate,
            expr: 'sum by (model_name, finished_reason) (rate(vllm:request_success_total{' + vllm + '}[' + w + ']))',
          },
          {
            record: 'model_name:llm_request_errors_per_requests:ratio_rate' + w,
            expr: ratio('vllm:request_success_total{' + vllm + ',finished_reason=~"error|abort"}',
                        'vllm:request_success_total{' + vllm + '}'),
          },
          {
            record: 'job:vllm_http_5xx_per_requests:ratio_rate' + w,
            expr: ratio('http_requests_total{' + vllm + ',status="5xx"}', 'http_requests_total{' + vllm + '}', by='job'),
          },
          {
            record: n.kvCacheUsage,
            expr: anyEngine([
              'max by (model_name) (vllm:kv_cache_usage_perc{' + vllm + '})',
              'max by (model_name) (sglang:token_usage{' + sglang + '})',
            ]),
          },
          {
            record: n.requestsWaiting,
            expr: anyEngine([
              'sum by (model_name) (vllm:num_requests_waiting{' + vllm + '})',
              'sum by (model_name) (sglang:num_queue_reqs{' + sglang + '})',
              'sum by (model_name) (' + jobAsModel('tgi_queue_size{' + tgi + '}') + ')',
              'sum by (model_name) (' + jobAsModel('llamacpp:requests_deferred{' + llamacpp + '}') + ')',
            ]),
          },
          {
            record: n.requestsRunning,
            expr: anyEngine([
              'sum by (model_name) (vllm:num_requests_running{' + vllm + '})',
              'sum by (model_name) (sglang:num_running_reqs{' + sglang + '})',
              'sum by (model_name) (' + jobAsModel('tgi_batch_current_size{' + tgi + '}') + ')',
              'sum by (model_name) (' + jobAsModel('llamacpp:requests_processing{' + llamacpp + '}') + ')',
            ]),
          },
          {
            // Engines serving each model: load per replica stays comparable when the fleet scales.
            record: n.replicas,
            expr: anyEngine([
              'count by (model_name) (vllm:num_requests_running{' + vllm + '})',
              'count by (model_name) (sglang:num_running_reqs{' + sglang + '})',
            ]),
          },
          { record: n.loadPerReplica, expr: n.requestRate + ' / ' + n.replicas },
          {
            record: n.preemptionsRate,
            expr: anyEngine([sumRate('vllm:num_preemptions_total', vllm), sumRate('sglang:num_retracted_requests_total', sglang)]),
          },
          {
            record: 'model_name:llm_prefix_cache_hits_per_queries:ratio_rate' + w,
            expr: ratio('vllm:prefix_cache_hits_total{' + vllm + '}', 'vllm:prefix_cache_queries_total{' + vllm + '}'),
          },
        ],
      },
    ],
  },
}
