// Errors area: per-model error and abort ratios (vLLM finish reasons) against each model's own
// baseline, the traffic-weighted ratio over the day before the last hour. A burst far above that
// baseline and above an absolute floor, with enough events to rule out noise, is a warning within
// minutes: long before the burn-rate tiers, which rightly wait for budget-sized damage.
// Requests the engine answers with an HTTP error get the same test per status class: vLLM counts
// them only in http_requests_total (no model label: joined through the instance's model).
local lib = import 'lib.libsonnet';

{
  local c = $._config,
  local n = lib.names(c),
  local e = c.errorRatio,
  local w = c.rateWindow,
  local reasons = std.objectFields(e.reasons),
  local selected = 'finished_reason=~"' + lib.anyOf(reasons) + '"',

  local h = c.httpErrorRatio,
  local statuses = std.objectFields(h.statuses),
  local http = {
    selector: c.vllmSelector + ',handler=~"' + lib.anyOf(h.handlers) + '"',
    byStatus: 'model_name_status:llm_http_requests:rate' + w,
    total: 'model_name:llm_http_requests:rate' + w,
    ratio: 'model_name_status:llm_http_requests_per_requests:ratio_rate' + w,
    statusHourly: 'model_name_status:llm_http_requests:avg1h',
    totalHourly: 'model_name:llm_http_requests:avg1h',
    baseline: 'model_name_status:llm_http_requests_per_requests:baseline_ratio' + h.baselineWindow,
    // the model each vLLM instance serves (http_requests_total has no model label)
    modelOf: 'group by (job, instance, model_name) (last_over_time(vllm:num_requests_running{' + c.vllmSelector + '}[' + h.modelLookback + ']))',
  },
  local names = {
    ratio: 'model_name_finished_reason:llm_requests_per_requests:ratio_rate' + w,
    reasonHourly: 'model_name_finished_reason:llm_requests:avg1h',
    totalHourly: 'model_name:llm_requests:avg1h',
    baseline: 'model_name_finished_reason:llm_requests_per_requests:baseline_ratio' + e.baselineWindow,
  },
  prometheusRules+:: {
    groups+: [
      {
        name: 'inferwatch.errors.rules',
        rules: [
          {
            record: names.ratio,
            expr: n.requestsByReasonRate + '{' + selected + '}\n/ on (model_name) group_left ()\n(' + n.requestRate + ' > 0)',
          },
          { record: names.reasonHourly, expr: 'avg_over_time(' + n.requestsByReasonRate + '{' + selected + '}[1h])' },
          { record: names.totalHourly, expr: 'avg_over_time(' + n.requestRate + '[1h])' },
          {
            // Hourly means through an hourly subquery: a day is 24 lookups, and the last hour (a
            // burst in progress) is left out.
            record: names.baseline,
            expr: lib.fmt(|||
              avg_over_time(%(reason)s[%(win)s:1h] offset 1h)
              / on (model_name) group_left ()
              (avg_over_time(%(total)s[%(win)s:1h] offset 1h) > 0)
            |||, { reason: names.reasonHourly, total: names.totalHourly, win: e.baselineWindow }),
          },
        ],
      },
      {
        name: 'inferwatch.errors.http.rules',
        rules: [
          {
            record: http.byStatus,
            expr: lib.fmt(|||
              sum by (model_name, status) (
                rate(http_requests_total{%(sel)s}[%(w)s])
                * on (job, instance) group_left (model_name) %(modelOf)s
              )
            |||, { sel: http.selector, w: w, modelOf: http.modelOf }),
          },
          { record: http.total, expr: 'sum by (model_name) (' + http.byStatus + ')' },
          {
            record: http.ratio,
            expr: http.byStatus + '{status=~"' + lib.anyOf(statuses) + '"}\n/ on (model_name) group_left ()\n(' + http.total + ' > 0)',
          },
          { record: http.statusHourly, expr: 'avg_over_time(' + http.byStatus + '{status=~"' + lib.anyOf(statuses) + '"}[1h])' },
          { record: http.totalHourly, expr: 'avg_over_time(' + http.total + '[1h])' },
          {
            record: http.baseline,
            expr: lib.fmt(|||
              avg_over_time(%(status)s[%(win)s:1h] offset 1h)
              / on (model_name) group_left ()
              (avg_over_time(%(total)s[%(win)s:1h] offset 1h) > 0)
            |||, { status: http.statusHourly, total: http.totalHourly, win: h.baselineWindow }),
          },
        ],
      },
    ],
  },

  prometheusAlerts+:: {
    groups+: [
      {
        name: 'inferwatch.errors.alerts',
        rules: [
          lib.alert(
            'LLMErrorRatioAnomalous',
            // Above the floor, unless within factor x the baseline (no baseline yet: the floor
            // alone), and with at least minEvents such requests in the rate window.
            std.join('\nor\n', [
              local r = e.reasons[reason];
              local sel = '{finished_reason="' + reason + '"}';
              lib.chomp(lib.fmt(|||
                (
                  %(ratio)s > %(floor)s
                  unless on (model_name, finished_reason)
                  %(ratio)s <= %(factor)s * %(baseline)s
                  and on (model_name, finished_reason)
                  %(rate)s * %(seconds)s >= %(minEvents)s
                )
              |||, {
                ratio: names.ratio + sel,
                baseline: names.baseline + sel,
                rate: n.requestsByReasonRate + sel,
                factor: r.factor,
                floor: r.floor,
                minEvents: r.minEvents,
                seconds: lib.seconds(w),
              }))
              for reason in reasons
            ]),
            'warning',
            'LLM requests end in errors or aborts far above their normal level.',
            '{{ $value | humanizePercentage }} of {{ $labels.model_name }} requests finish with reason {{ $labels.finished_reason }}, many times its share over the past day: look at the engine log and recent changes.',
            e['for'],
          ),
          lib.alert(
            'LLMHTTPErrorRatioAnomalous',
            std.join('\nor\n', [
              local r = h.statuses[status];
              local sel = '{status="' + status + '"}';
              lib.chomp(lib.fmt(|||
                (
                  %(ratio)s > %(floor)s
                  unless on (model_name, status)
                  %(ratio)s <= %(factor)s * %(baseline)s
                  and on (model_name, status)
                  %(rate)s * %(seconds)s >= %(minEvents)s
                )
              |||, {
                ratio: http.ratio + sel,
                baseline: http.baseline + sel,
                rate: http.byStatus + sel,
                factor: r.factor,
                floor: r.floor,
                minEvents: r.minEvents,
                seconds: lib.seconds(w),
              }))
              for status in statuses
            ]),
            'warning',
            'LLM engines answer many requests with HTTP errors, far above their normal level.',
            '{{ $value | humanizePercentage }} of {{ $labels.model_name }} generation requests are answered {{ $labels.status }}, many times its share over the past day: 4xx are rejected requests (prompts over max_model_len, bad parameters: look at the client that changed), 5xx failed ones (look at the engine log).',
            h['for'],
          ),
        ],
      },
    ],
  },
}
