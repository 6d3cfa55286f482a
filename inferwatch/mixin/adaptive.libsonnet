// Adaptive area (docs/adaptive-thresholds.md): per-model p95 latency bands from the model's own
// history at the same time yesterday and last week, clamped at the per-model SLA; the band
// alerts (warning) and the SLA breach alerts (critical), both behind a minimum-traffic guard.
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
        name: 'inferwatch.adaptive.rules',
        rules: std.flattenArrays([
          local s = names(signal);
          local sla = c.sla[signals[signal][0]];
          [
            {
              record: s.upper,
              expr: lib.fmt('%(c)s + ((%(k)s * %(s)s > %(m)s * %(c)s) or %(m)s * %(c)s)', {
                c: lastSeasonal(s.centre),
                s: lastSeasonal(s.spread),
                k: a.sensitivity,
                m: a.marginFloor,
              }),
            },
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
              s.level + ' > ' + s.threshold + '\nand ' + guard,
              'warning',
              'LLM ' + human + ' is above its adaptive baseline.',
              'p95 ' + human + ' of {{ $labels.model_name }} is {{ $value | humanizeDuration }}, above the band its own history (same hour yesterday and last week) allows.',
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
        ]),
      },
    ],
  },
}
