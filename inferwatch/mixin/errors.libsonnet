// Errors area: per-model error and abort ratios (vLLM finish reasons) against each model's own
// baseline, the traffic-weighted ratio over the day before the last hour. A burst far above that
// baseline and above an absolute floor, with enough events to rule out noise, is a warning within
// minutes: long before the burn-rate tiers, which rightly wait for budget-sized damage.
local lib = import 'lib.libsonnet';

{
  local c = $._config,
  local n = lib.names(c),
  local e = c.errorRatio,
  local w = c.rateWindow,
  local reasons = std.objectFields(e.reasons),
  local selected = 'finished_reason=~"' + lib.anyOf(reasons) + '"',

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
        ],
      },
    ],
  },
}
