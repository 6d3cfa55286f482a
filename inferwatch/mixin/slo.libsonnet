// SLO area: availability, TTFT and ITL SLIs per model as bad/total event rates, error ratios over
// every window of slo.windows (longer windows as traffic-weighted averages of the base rate), the
// per-model objective and error budget; multi-window multi-burn-rate alerts against that objective.
// Per-model targets and latency thresholds come from slo.models (model_name -> overrides).
local lib = import 'lib.libsonnet';

{
  local c = $._config,
  local slo = c.slo,
  local w = c.rateWindow,
  local vllm = c.vllmSelector,

  // What a model overrides in slo.models, for one setting: model_name -> value.
  local overrides(key) = {
    [m]: slo.models[m][key]
    for m in std.objectFields(slo.models)
    if std.objectHas(slo.models[m], key)
  },

  // Latency SLI: events slower than the threshold bucket (per model: its own `le`).
  local slowEvents(histogram, key) = lib.perModelBranches(
    function(matcher, le) lib.fmt(|||
      sum by (model_name) (rate(%(h)s_count{%(sel)s%(m)s}[%(w)s]))
      -
      sum by (model_name) (rate(%(h)s_bucket{%(sel)s%(m)s,le="%(le)s"}[%(w)s]))
    |||, { h: histogram, sel: vllm, m: matcher, w: w, le: le }),
    slo[key],
    overrides(key),
  ),

  local slis = {
    availability: {
      bad: 'sum by (model_name) (rate(vllm:request_success_total{' + vllm + ',finished_reason="error"}[' + w + ']))',
      total: 'sum by (model_name) (rate(vllm:request_success_total{' + vllm + '}[' + w + ']))',
      target: 'availabilityTarget',
      human: 'availability',
      alert: 'Availability',
    },
    ttft: {
      bad: slowEvents('vllm:time_to_first_token_seconds', 'ttftThresholdSeconds'),
      total: 'sum by (model_name) (rate(vllm:time_to_first_token_seconds_count{' + vllm + '}[' + w + ']))',
      target: 'ttftTarget',
      human: 'time to first token',
      alert: 'TTFT',
    },
    itl: {
      bad: slowEvents('vllm:inter_token_latency_seconds', 'itlThresholdSeconds'),
      total: 'sum by (model_name) (rate(vllm:inter_token_latency_seconds_count{' + vllm + '}[' + w + ']))',
      target: 'itlTarget',
      human: 'inter-token latency',
      alert: 'ITL',
    },
  },
  local errors(s) = 'model_name:llm_slo_' + s + '_errors:rate' + w,
  local events(s) = 'model_name:llm_slo_' + s + '_events:rate' + w,
  local objective(s) = 'model_name:llm_slo_' + s + ':objective_ratio',
  local ratio(s, window) = 'model_name:llm_slo_' + s + '_errors_per_events:ratio_rate' + window,
  // Windows of a day or more average hourly means through an hourly subquery: 30 days is 720
  // lookups per model instead of 43200 samples, which keeps the 30-day budget cheap in Prometheus
  // and within promtool's limits in `rules backtest`.
  local hourlyErrors(s) = 'model_name:llm_slo_' + s + '_errors:avg1h',
  local hourlyEvents(s) = 'model_name:llm_slo_' + s + '_events:avg1h',
  local fromHours(window) = lib.seconds(window) >= 86400,
  // A week or more: daily means (each the mean of 24 hourly ones, at UTC midnight) through a daily
  // subquery, 30 lookups for 30 days; the day in progress counts from the next midnight.
  local dailyErrors(s) = 'model_name:llm_slo_' + s + '_errors:avg1d',
  local dailyEvents(s) = 'model_name:llm_slo_' + s + '_events:avg1d',
  local fromDays(window) = lib.seconds(window) >= 7 * 86400,

  local tierWindows = std.flattenArrays([[t.long, t.short] for t in slo.burnRates]),
  local missing = std.filter(function(x) !std.member(slo.windows, x), tierWindows + [slo.period, w]),

  prometheusRules+:: {
    assert std.isString(slo.ttftThresholdSeconds) && std.isString(slo.itlThresholdSeconds)
           && std.all([std.isString(slo.models[m][k]) for m in std.objectFields(slo.models) for k in ['ttftThresholdSeconds', 'itlThresholdSeconds'] if std.objectHas(slo.models[m], k)])
           : 'slo thresholds are `le` strings as vLLM writes them ("1.0", "0.1")',
    assert std.all([lib.seconds(x) % 3600 == 0 for x in slo.windows if fromHours(x)]) : 'slo.windows of a day or more must be whole hours',
    assert std.all([lib.seconds(x) % 86400 == 0 for x in slo.windows if fromDays(x)]) : 'slo.windows of a week or more must be whole days',
    assert missing == [] : 'slo.windows lacks %s (burn-rate windows, slo.period and rateWindow)' % std.join(', ', missing),
    groups+: [
      {
        name: 'inferwatch.slo.' + s + '.rules',
        rules: [
          { record: errors(s), expr: slis[s].bad },
          { record: events(s), expr: slis[s].total },
          // Per-model objective (slo.models), the default for every other model: alerts and the
          // budget compare against this series.
          { record: objective(s), expr: lib.perModel(events(s), slo[slis[s].target], overrides(slis[s].target)) },
          { record: hourlyErrors(s), expr: 'avg_over_time(' + errors(s) + '[1h])' },
          { record: hourlyEvents(s), expr: 'avg_over_time(' + events(s) + '[1h])' },
          { record: dailyErrors(s), expr: 'avg_over_time(' + hourlyErrors(s) + '[1d:1h])' },
          { record: dailyEvents(s), expr: 'avg_over_time(' + hourlyEvents(s) + '[1d:1h])' },
        ] + [
          {
            record: ratio(s, window),
            expr: if window == w then
              errors(s) + ' / (' + events(s) + ' > 0)'
            else if fromDays(window) then
              // (before the first midnight there is no daily mean yet: the last day's hourly means)
              lib.fmt('avg_over_time(%(e)s[%(w)s:1d]) / (avg_over_time(%(t)s[%(w)s:1d]) > 0)\nor\n%(day)s', {
                e: dailyErrors(s), t: dailyEvents(s), w: window, day: ratio(s, '1d'),
              })
            else if fromHours(window) then
              lib.fmt('avg_over_time(%(e)s[%(w)s:1h]) / (avg_over_time(%(t)s[%(w)s:1h]) > 0)', { e: hourlyErrors(s), t: hourlyEvents(s), w: window })
            else
              lib.fmt('avg_over_time(%(e)s[%(w)s]) / (avg_over_time(%(t)s[%(w)s]) > 0)', { e: errors(s), t: events(s), w: window }),
          }
          for window in slo.windows
        ] + [
          {
            record: 'model_name:llm_slo_' + s + ':error_budget_remaining_ratio',
            expr: '1 - ' + ratio(s, slo.period) + ' / on (model_name) (1 - ' + objective(s) + ')',
          },
        ],
      }
      for s in std.objectFields(slis)
    ],
  },

  prometheusAlerts+:: {
    groups+: [
      {
        name: 'inferwatch.slo.alerts',
        rules: std.flattenArrays([
          local sli = slis[s];
          local burn(tier) = lib.fmt(|||
            (
              %(long)s > on (model_name) %(f)s * (1 - %(o)s)
              and
              %(short)s > on (model_name) %(f)s * (1 - %(o)s)
            )
          |||, { long: ratio(s, tier.long), short: ratio(s, tier.short), f: tier.factor, o: objective(s) });
          [
            local tiers = std.filter(function(t) t.severity == severity, slo.burnRates);
            local factors = std.join('-', [lib.num(f) + 'x' for f in std.set([t.factor for t in tiers])]);
            lib.alert(
              'LLM' + sli.alert + 'BudgetBurn',
              lib.chomp(std.join('or\n', [burn(t) for t in tiers])),
              severity,
              'LLM ' + sli.human + ' SLO error budget is burning fast.',
              'Model {{ $labels.model_name }} is spending its ' + sli.human + ' error budget at ' + factors
              + ' the sustainable rate of its objective: '
              + (if severity == 'critical' then 'it is gone within days.'
                 else 'it runs out before the SLO period (' + lib.humanDuration(slo.period) + ') ends.'),
              tiers[0]['for'],
              { slo: s },
            )
            for severity in ['critical', 'warning']
            if std.length(std.filter(function(t) t.severity == severity, slo.burnRates)) > 0
          ]
          for s in std.objectFields(slis)
        ]),
      },
    ],
  },
}
