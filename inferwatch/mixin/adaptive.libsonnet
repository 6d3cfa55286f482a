// Adaptive area (docs/adaptive-thresholds.md): per-model p95 latency bands, clamped at the
// per-model SLA, from two views of the model's own history: the same time yesterday and last week
// (seasonal), and the latency its current load per replica predicts (a power law fitted to the last
// week). A regression alert needs the latency above both, and stays quiet while the load is above
// anything the fleet handled within the SLA last week: LLMCapacityExceeded speaks there instead.
// The SLA breach alerts (critical) fire whatever the bands say. All behind a minimum-traffic guard.
local lib = import 'lib.libsonnet';

{
  local c = $._config,
  local n = lib.names(c),
  local a = c.adaptive,

  // The two adaptive signals: short name -> [SLA config key, alert name part, human name].
  local signals = {
    itl: ['itlSeconds', 'InterTokenLatency', 'inter-token latency'],
    ttft: ['ttftSeconds', 'TimeToFirstToken', 'time to first token'],
  },
  local names(signal) = {
    local metric = n.histograms[signal],
    level: n.quantile(signal, 0.95),
    centre: 'model_name:' + metric + '_p95:baseline_centre',
    spread: 'model_name:' + metric + '_p95:baseline_spread',
    upper: 'model_name:' + metric + '_p95:upper_band',
    seasonalUpper: 'model_name:' + metric + '_p95:seasonal_upper_band',
    // the load fit: ln(p95) against ln(requests/s per replica)
    wy: 'model_name:' + metric + '_p95:ln_weighted_rate' + c.rateWindow,
    wxy: 'model_name:' + metric + '_p95:ln_load_weighted_rate' + c.rateWindow,
    wyy: 'model_name:' + metric + '_p95:ln_squared_weighted_rate' + c.rateWindow,
    mean: 'model_name:' + metric + '_p95:ln_mean' + a.fitWindow,
    meanXY: 'model_name:' + metric + '_p95:ln_load_product_mean' + a.fitWindow,
    meanYY: 'model_name:' + metric + '_p95:ln_squared_mean' + a.fitWindow,
    cov: 'model_name:' + metric + '_p95:ln_load_covariance' + a.fitWindow,
    slope: 'model_name:' + metric + '_p95:ln_load_slope' + a.fitWindow,
    residual: 'model_name:' + metric + '_p95:ln_residual_stddev' + a.fitWindow,
    loadUpper: 'model_name:' + metric + '_p95:load_upper_band',
    sla: 'model_name:' + metric + '_p95:sla_seconds',
    threshold: 'model_name:' + metric + '_p95:threshold',
  },

  // A window of width seasonalWindow centred on the same time `period` ago, labelled reference=<period>.
  local seasonal(q, level, period) =
    lib.fmt('label_replace(quantile_over_time(%(q)s, %(level)s[%(window)s] offset %(offset)s), "reference", "%(period)s", "", "")', {
      q: q,
      level: level,
      window: a.seasonalWindow,
      offset: lib.duration(lib.seconds(period) - lib.seconds(a.seasonalWindow) / 2),
      period: period,
    }),
  local lastSeasonal(series) = 'last_over_time(' + series + '[' + a.seasonalLookback + '])',
  local guard = 'on (model_name) ' + n.requestRate + ' >= ' + lib.num(c.minRequestRate),
  local baselineGuard = 'on (model_name) ' + n.requestRate + ' >= ' + lib.num(a.minRequestRate),

  // The fit's inputs are recorded every evaluation (weighted by request rate, so noisy low-traffic
  // nights count little), averaged per hour, and the hourly means averaged over fitWindow with an
  // hourly subquery: a week costs 168 lookups per model instead of 10080 samples.
  local fit = {
    x: 'model_name:llm_requests_per_replica:ln_rate' + c.rateWindow,
    w: 'model_name:llm_load_fit_weight:rate' + c.rateWindow,
    wx: 'model_name:llm_requests_per_replica:ln_weighted_rate' + c.rateWindow,
    wxx: 'model_name:llm_requests_per_replica:ln_squared_weighted_rate' + c.rateWindow,
    meanX: 'model_name:llm_requests_per_replica:ln_mean' + a.fitWindow,
    varX: 'model_name:llm_requests_per_replica:ln_variance' + a.fitWindow,
    hours: 'model_name:llm_load_fit_weight:hours' + a.fitWindow,
    weight: 'model_name:llm_load_fit_weight:avg' + a.fitWindow,
    meanXX: 'model_name:llm_requests_per_replica:ln_squared_mean' + a.fitWindow,
  },
  // The hourly mean of a per-evaluation series: ...rate5m -> ...avg1h.
  local hourly(series) =
    local suffix = 'rate' + c.rateWindow;
    assert std.endsWith(series, suffix) : series;
    std.substr(series, 0, std.length(series) - std.length(suffix)) + 'avg1h',
  // Traffic-weighted mean over fitWindow of a per-evaluation product series (one subquery each:
  // subquery steps, not samples, are what these rules cost).
  local weightedMean(series) = lib.fmt('avg_over_time(%(s)s[%(win)s:1h]) / (%(w)s > 0)', {
    s: hourly(series),
    w: fit.weight,
    win: a.fitWindow,
  }),
  // Capacity: load per replica, the part of it that stayed within every latency SLA, its hourly
  // maximum, and the maximum over capacity.window ending capacity.exclude ago (so a new peak does
  // not raise its own bar while it lasts).
  local cap = {
    withinSla: 'model_name:llm_requests_per_replica_within_sla:rate' + c.rateWindow,
    hourlyMax: 'model_name:llm_requests_per_replica_within_sla:max1h',
    handled: 'model_name:llm_requests_per_replica:handled_max' + c.capacity.window,
    hours: 'model_name:llm_requests_per_replica:handled_hours' + c.capacity.window,
  },

  prometheusRules+:: {
    assert lib.seconds(a.seasonalLookback) > lib.seconds(a.seasonalInterval) : 'adaptive.seasonalLookback must exceed seasonalInterval',
    groups+: [
      {
        // Seasonal references change slowly: every seasonalInterval is enough.
        name: 'inferwatch.adaptive.seasonal.rules',
        interval: a.seasonalInterval,
        rules: std.flattenArrays([
          local s = names(signal);
          [
            {
              record: s.centre,
              expr: 'max without (reference) (\n  '
                    + std.join('\n  or\n  ', [seasonal(0.5, s.level, p) for p in a.seasonalPeriods])
                    + '\n)',
            },
            {
              // Upper spread (q90 - median) of each reference window, the larger one, capped so a
              // short spike cannot widen the band for a day.
              record: s.spread,
              expr: lib.fmt(|||
                (
                  max without (reference) (
                    %(spreads)s
                  ) < %(cap)s * %(centre)s
                )
                or
                %(cap)s * %(centre)s
              |||, {
                spreads: std.join('\n    or\n    ', [
                  seasonal(a.spreadQuantile, s.level, p) + ' - ' + seasonal(0.5, s.level, p)
                  for p in a.seasonalPeriods
                ]),
                cap: a.maxSpreadRatio,
                centre: s.centre,
              }),
            },
          ]
          for signal in std.objectFields(signals)
        ]),
      },
      {
        // The load fit's per-evaluation inputs (ln of load and latency, weighted by request rate).
        name: 'inferwatch.adaptive.fit.rules',
        rules: [
          { record: fit.x, expr: 'ln(' + n.loadPerReplica + ')\nand ' + baselineGuard },
          { record: fit.w, expr: n.requestRate + ' and on (model_name) ' + fit.x },
          { record: fit.wx, expr: fit.w + ' * ' + fit.x },
          { record: fit.wxx, expr: fit.w + ' * ' + fit.x + ' ^ 2' },
        ] + std.flattenArrays([
          local s = names(signal);
          [
            { record: s.wy, expr: fit.w + ' * ln(' + s.level + ' > 0)' },
            { record: s.wxy, expr: fit.wx + ' * ln(' + s.level + ' > 0)' },
            { record: s.wyy, expr: fit.w + ' * ln(' + s.level + ' > 0) ^ 2' },
          ]
          for signal in std.objectFields(signals)
        ]),
      },
      {
        name: 'inferwatch.adaptive.fit.hourly.rules',
        rules: [
          { record: hourly(series), expr: 'avg_over_time(' + series + '[1h])' }
          for series in [fit.w, fit.wx, fit.wxx] + std.flattenArrays([
            local s = names(signal);
            [s.wy, s.wxy, s.wyy]
            for signal in std.objectFields(signals)
          ])
        ],
      },
      {
        // Weighted least squares of ln(p95) on ln(load per replica) over fitWindow:
        // slope = cov(x, y) / var(x), clamped to [0, maxSlope]; the residual spread sets the band.
        name: 'inferwatch.adaptive.fit.weekly.rules',
        rules: [
          { record: fit.hours, expr: 'count_over_time(' + hourly(fit.w) + '[' + a.fitWindow + ':1h])' },
          { record: fit.weight, expr: 'avg_over_time(' + hourly(fit.w) + '[' + a.fitWindow + ':1h])' },
          { record: fit.meanX, expr: weightedMean(fit.wx) },
          { record: fit.meanXX, expr: weightedMean(fit.wxx) },
          { record: fit.varX, expr: fit.meanXX + ' - ' + fit.meanX + ' ^ 2' },
        ] + std.flattenArrays([
          local s = names(signal);
          [
            { record: s.mean, expr: weightedMean(s.wy) },
            { record: s.meanXY, expr: weightedMean(s.wxy) },
            { record: s.meanYY, expr: weightedMean(s.wyy) },
            { record: s.cov, expr: s.meanXY + ' - ' + fit.meanX + ' * ' + s.mean },
            {
              record: s.slope,
              expr: lib.fmt(|||
                clamp(%(cov)s / (%(varX)s > %(minVar)s), 0, %(max)s)
                and on (model_name)
                %(hours)s >= %(minHours)s
              |||, { cov: s.cov, varX: fit.varX, minVar: a.minLoadVariance, max: a.maxSlope, hours: fit.hours, minHours: a.fitMinHours }),
            },
            {
              // var(y) - 2 b cov + b^2 var(x): the spread the fitted line leaves unexplained.
              record: s.residual,
              expr: lib.fmt('sqrt(clamp_min(%(yy)s - %(mean)s ^ 2 - 2 * %(b)s * %(cov)s + %(b)s ^ 2 * %(varX)s, 0))', {
                yy: s.meanYY, mean: s.mean, b: s.slope, cov: s.cov, varX: fit.varX,
              }),
            },
          ]
          for signal in std.objectFields(signals)
        ]),
      },
      {
        name: 'inferwatch.adaptive.rules',
        rules: std.flattenArrays([
          local s = names(signal);
          local sla = c.sla[signals[signal][0]];
          local margin = std.log(1 + a.marginFloor);
          [
            {
              record: s.seasonalUpper,
              expr: lib.fmt('%(c)s + ((%(k)s * %(s)s > %(m)s * %(c)s) or %(m)s * %(c)s)', {
                c: lastSeasonal(s.centre),
                s: lastSeasonal(s.spread),
                k: a.sensitivity,
                m: a.marginFloor,
              }),
            },
            {
              // The latency the current load predicts, plus max(k * residual, ln(1 + marginFloor)) in log space.
              record: s.loadUpper,
              expr: lib.fmt('exp(\n  %(mean)s + %(b)s * (%(x)s - %(meanX)s)\n  + ((%(k)s * %(r)s > %(m)s) or 0 * %(r)s + %(m)s)\n)', {
                mean: s.mean, b: s.slope, x: fit.x, meanX: fit.meanX, k: a.sensitivity, r: s.residual, m: margin,
              }),
            },
            // Above both bands to count as a regression; either alone while the other has no history.
            { record: s.upper, expr: '(' + s.seasonalUpper + ' > ' + s.loadUpper + ') or ' + s.loadUpper + ' or ' + s.seasonalUpper },
            // Per-model SLA (sla.<signal>.overrides), the default for every other model.
            { record: s.sla, expr: lib.perModel(s.level, sla.default, sla.overrides) },
            {
              // Never above the SLA; the SLA alone while there is no history yet.
              record: s.threshold,
              expr: '(' + s.upper + ' < ' + s.sla + ') or ' + s.sla,
            },
          ]
          for signal in std.objectFields(signals)
        ]),
      },
      {
        name: 'inferwatch.adaptive.capacity.rules',
        rules: [
          {
            record: cap.withinSla,
            expr: n.loadPerReplica + std.join('', [
              '\nunless on (model_name) ' + names(signal).level + ' > ' + names(signal).sla
              for signal in std.objectFields(signals)
            ]),
          },
          { record: cap.hourlyMax, expr: 'max_over_time(' + cap.withinSla + '[1h])' },
          { record: cap.handled, expr: 'max_over_time(' + cap.hourlyMax + '[' + c.capacity.window + ':1h] offset ' + c.capacity.exclude + ')' },
          { record: cap.hours, expr: 'count_over_time(' + cap.hourlyMax + '[' + c.capacity.window + ':1h] offset ' + c.capacity.exclude + ')' },
        ],
      },
    ],
  },

  prometheusAlerts+:: {
    groups+: [
      {
        name: 'inferwatch.adaptive.alerts',
        rules: std.flattenArrays([
          local s = names(signal);
          local camel = signals[signal][1];
          local human = signals[signal][2];
          [
            lib.alert(
              'LLM' + camel + 'AboveBaseline',
              s.level + ' > ' + s.threshold + '\nand ' + baselineGuard + '\nunless on (model_name) ' + n.loadPerReplica + ' > ' + cap.handled,
              'warning',
              'LLM ' + human + ' is above its adaptive baseline.',
              'p95 ' + human + ' of {{ $labels.model_name }} is {{ $value | humanizeDuration }}: slower than its own history at this hour and at this load per replica.',
              a['for'],
            ),
            lib.alert(
              'LLM' + camel + 'SLABreach',
              s.level + ' > ' + s.sla + '\nand ' + guard,
              'critical',
              'LLM ' + human + ' breaches the SLA.',
              'p95 ' + human + ' of {{ $labels.model_name }} is {{ $value | humanizeDuration }}, above the SLA.',
              c.sla['for'],
            ),
          ]
          for signal in std.objectFields(signals)
        ]) + [
          lib.alert(
            'LLMCapacityExceeded',
            lib.fmt(|||
              %(load)s > %(margin)s * %(handled)s
              and on (model_name)
              %(hours)s >= %(minHours)s
            |||, { load: n.loadPerReplica, margin: c.capacity.margin, handled: cap.handled, hours: cap.hours, minHours: c.capacity.minHistoryHours }),
            'warning',
            'LLM load is above what the fleet has handled within the SLA.',
            '{{ $labels.model_name }} receives {{ $value | humanize }} requests/s per replica, more than ' + lib.num(c.capacity.margin) + 'x the most it served within its latency SLA in the past ' + lib.humanDuration(c.capacity.window) + ': add replicas before latency follows.',
            c.capacity['for'],
          ),
        ],
      },
    ],
  },
}
