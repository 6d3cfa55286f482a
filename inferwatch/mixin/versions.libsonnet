// Versions area: a model's new version against the one it replaced, on the model's own serving
// signals. vLLM's series carry no version and the engine exporter's inferwatch_model_version_info
// carries `endpoint`, not vLLM's `instance`, and PromQL cannot map one to the other soundly. So the
// join is per model over time (sequential, not canary): while one version is the only one any
// endpoint serves, the model's signals are that version's. Recorded: the served-version count per
// model, the sole version, its age (inferwatch_model_version_since_timestamp_seconds, restamped by the
// exporter on a change), `settled` (sole for `window` + rateWindow, so a window holds no sample of the
// old version; every endpoint up throughout), each metric's mean over `window` labelled with the
// settled version, and the previous version's last such mean (the window ending just before it
// stopped being the only one served, or before its endpoints went down for the change).
// During a canary (two versions at once) nothing is attributed: no comparison until it completes.
// Alert: LLMNewVersionWorse (latency p95 relative + absolute; error ratio relative + two-proportion
// z-test), within compareWithin of the change, with enough requests on both sides.
local lib = import 'lib.libsonnet';

{
  local c = $._config,
  local n = lib.names(c),
  local v = c.versions,
  local w = v.window,
  local info = 'inferwatch_model_version_info{' + c.engineExporterSelector + '}',
  local since = 'inferwatch_model_version_since_timestamp_seconds{' + c.engineExporterSelector + '}',
  local up = 'inferwatch_engine_up{' + c.engineExporterSelector + '}',
  local settleSeconds = lib.seconds(w) + lib.seconds(c.rateWindow),
  local errors = 'finished_reason=~"' + lib.anyOf(v.errorReasons) + '"',

  local names = {
    count: 'model_name:inferwatch_model_versions:count',
    current: 'model_name_version:inferwatch_model_version:current',
    age: 'model_name:inferwatch_model_version:age_seconds',
    settled: 'model_name_version:inferwatch_model_version:settled',
    settledAt: 'model_name_version:inferwatch_model_version:settled_timestamp',
    previous: 'model_name_version:inferwatch_model_version:previous',
    pooled: 'model_name_version:llm_request_errors_per_requests:pooled_ratio_avg' + w,
    z: 'model_name_version:llm_request_errors_per_requests:zscore_avg' + w,
  },
  // [key, recorded mean of the settled version, the previous version's, how it is computed]
  local perModel(series) = 'avg_over_time(' + series + '[' + w + '])\n* on (model_name) group_left (version)\n' + names.settled,
  local metrics = {
    ttft: {
      cur: 'model_name_version:llm_time_to_first_token_seconds:p95_rate' + c.rateWindow + '_avg' + w,
      prev: 'model_name:llm_time_to_first_token_seconds:previous_p95_rate' + c.rateWindow + '_avg' + w,
      expr: perModel(n.quantile('ttft', 0.95)),
    },
    itl: {
      cur: 'model_name_version:llm_inter_token_latency_seconds:p95_rate' + c.rateWindow + '_avg' + w,
      prev: 'model_name:llm_inter_token_latency_seconds:previous_p95_rate' + c.rateWindow + '_avg' + w,
      expr: perModel(n.quantile('itl', 0.95)),
    },
    requests: {
      cur: 'model_name_version:llm_requests:rate' + c.rateWindow + '_avg' + w,
      prev: 'model_name:llm_requests:previous_rate' + c.rateWindow + '_avg' + w,
      expr: perModel(n.requestRate),
    },
    errors: {
      // Error requests/s (reasons errorReasons), 0 where a model had none: the z-test's counts.
      cur: 'model_name_version:llm_request_errors:rate' + c.rateWindow + '_avg' + w,
      prev: 'model_name:llm_request_errors:previous_rate' + c.rateWindow + '_avg' + w,
      expr: lib.fmt(|||
        (
          sum by (model_name) (avg_over_time(%(reasons)s{%(errors)s}[%(w)s]))
          or
          0 * avg_over_time(%(requests)s[%(w)s])
        )
        * on (model_name) group_left (version)
        %(settled)s
      |||, { reasons: n.requestsByReasonRate, errors: errors, w: w, requests: n.requestRate, settled: names.settled }),
    },
    errorRatio: {
      // Traffic-weighted (errors / requests over the window), as the z-test needs.
      cur: 'model_name_version:llm_request_errors_per_requests:ratio_avg' + w,
      prev: 'model_name:llm_request_errors_per_requests:previous_ratio_avg' + w,
      expr: metrics.errors.cur + '\n/\n(' + metrics.requests.cur + ' > 0)',
    },
    probe: {
      cur: 'model_name_module_version:inferwatch_probe_module_score_ratio:avg' + w,
      prev: 'model_name_module:inferwatch_probe_module_score_ratio:previous_avg' + w,
      expr: perModel('model_name_module:inferwatch_probe_module_score_ratio:avg'),
    },
    feedback: {
      // Already per version (the version that served each request): no attribution needed.
      cur: 'model_name_version:inferwatch_feedback_negative_per_feedback:ratio_rate1h_avg' + w,
      prev: 'model_name:inferwatch_feedback_negative_per_feedback:previous_ratio_rate1h_avg' + w,
      expr: 'avg_over_time(model_name_version:inferwatch_feedback_negative_per_feedback:ratio_rate1h[' + w + '])\nand on (model_name, version)\n' + names.settled,
    },
  },
  local order = ['ttft', 'itl', 'requests', 'errors', 'errorRatio', 'probe', 'feedback'],
  local m = metrics,
  // A per-model comparison of the settled version (left, with `version`) and the previous one.
  local vs(cur, op, prev) = cur + ' ' + op + ' on (model_name) group_left ()\n' + prev,
  local guard = lib.fmt(|||
    and on (model_name, version)
    %(req)s >= %(min)s
    and on (model_name)
    %(prevReq)s >= %(min)s
    and on (model_name)
    %(age)s <= %(within)s
  |||, { req: m.requests.cur, prevReq: m.requests.prev, min: v.minRequestRate, age: names.age,
         within: lib.seconds(v.compareWithin) }),
  local withMetric(expr, metric) = 'label_replace(\n  (\n    ' + std.strReplace(lib.chomp(expr), '\n', '\n    ') + '\n  ),\n  "metric", "' + metric + '", "model_name", ".*"\n)',
  local latency(key, metric, floor) = withMetric(lib.fmt(|||
    %(ratio)s > %(factor)s
    and on (model_name, version)
    (%(diff)s > %(floor)s)
    and on (model_name, version)
    (%(load)s <= %(maxLoad)s)
    %(guard)s
  |||, {
    ratio: vs(m[key].cur, '/', m[key].prev),
    diff: vs(m[key].cur, '-', m[key].prev),
    load: vs(m.requests.cur, '/', m.requests.prev),
    factor: v.latencyFactor,
    floor: floor,
    maxLoad: v.maxLoadRatio,
    guard: lib.chomp(guard),
  }), metric),

  prometheusRules+:: {
    groups+: [
      {
        name: 'inferwatch.versions.rules',
        rules: [
          { record: names.count, expr: 'count by (model_name) (group by (model_name, version) (' + info + '))' },
          {
            // The version every endpoint of the model serves (none during a canary or a rollout).
            record: names.current,
            expr: 'group by (model_name, version) (' + info + ')\nand on (model_name)\n' + names.count + ' == 1',
          },
          { record: names.age, expr: 'time() - max by (model_name) (' + since + ')' },
          {
            // The only version for window + rateWindow (the restamped since-timestamp), no second
            // version in that time (a canary endpoint removed rather than reverted), and every endpoint
            // of the model up throughout: the exporter keeps reporting a down endpoint's last version,
            // and a window holding an outage or a restart's drain measures the outage, not the version.
            record: names.settled,
            expr: lib.fmt(|||
              %(current)s
              and on (model_name)
              %(age)s >= %(settle)s
              and on (model_name)
              max_over_time(%(count)s[%(settleWindow)s]) == 1
              and on (model_name)
              min by (model_name) (min_over_time(%(up)s[%(settleWindow)s])) == 1
            |||, { current: names.current, age: names.age, settle: settleSeconds, count: names.count,
                   settleWindow: lib.duration(settleSeconds), up: up }),
          },
          { record: names.settledAt, expr: '0 * ' + names.settled + ' + time()' },
          {
            // The version settled most recently before the current one (value: when it last was).
            record: names.previous,
            expr: lib.fmt(|||
              (last_over_time(%(at)s[%(lookback)s]) unless on (model_name, version) %(current)s)
              == on (model_name) group_left ()
              max by (model_name) (last_over_time(%(at)s[%(lookback)s]) unless on (model_name, version) %(current)s)
            |||, { at: names.settledAt, lookback: v.previousLookback, current: names.current }),
          },
        ],
      },
      {
        name: 'inferwatch.versions.compare.rules',
        rules: [{ record: m[k].cur, expr: m[k].expr } for k in order] + [
          {
            // The previous version's last window: its mean over the `window` ending when it was last settled.
            record: m[k].prev,
            expr: 'max without (version) (\n  last_over_time(' + m[k].cur + '[' + v.previousLookback + '])\n  and on (model_name, version)\n  ' + names.previous + '\n)',
          }
          for k in order
        ] + [
          {
            // Pooled error ratio of both windows (the z-test's null hypothesis: one common ratio).
            record: names.pooled,
            expr: lib.fmt(|||
              (%(err)s)
              /
              ((%(req)s) > 0)
            |||, { err: vs(m.errors.cur, '+', m.errors.prev), req: vs(m.requests.cur, '+', m.requests.prev) }),
          },
          {
            // Two-proportion z-test: z = (p_new - p_old) / sqrt(p (1 - p) (1/n_new + 1/n_old)),
            // p pooled, n = requests in each window (mean rate x window seconds).
            record: names.z,
            expr: lib.fmt(|||
              (%(diff)s)
              / on (model_name, version)
              sqrt(
                (%(pooled)s * (1 - %(pooled)s) > 0)
                * on (model_name, version)
                (1 / (%(req)s * %(s)s) + on (model_name) group_left () (1 / (%(prevReq)s * %(s)s)))
              )
            |||, { diff: vs(m.errorRatio.cur, '-', m.errorRatio.prev), pooled: names.pooled, req: m.requests.cur,
                   prevReq: m.requests.prev, s: lib.seconds(w) }),
          },
        ],
      },
    ],
  },

  prometheusAlerts+:: {
    groups+: [
      {
        name: 'inferwatch.versions.alerts',
        rules: [
          lib.alert('LLMNewVersionWorse',
                    // Value: new / previous. The previous version's name joins as previous_version.
                    lib.fmt(|||
                      (
                      %(ttft)s
                      or
                      %(itl)s
                      or
                      %(errors)s
                      )
                      + on (model_name) group_left (previous_version)
                      0 * max without (version) (label_replace(%(previous)s, "previous_version", "$1", "version", "(.*)"))
                    |||, {
                      ttft: latency('ttft', 'ttft_p95', v.ttftFloorSeconds),
                      itl: latency('itl', 'itl_p95', v.itlFloorSeconds),
                      // Errors: relative (errorFactor) and significant (z > errorZ): at thousands of
                      // requests a window the normal approximation of the two-proportion test holds.
                      errors: withMetric(lib.fmt(|||
                        %(ratio)s > %(factor)s
                        and on (model_name, version)
                        %(z)s > %(zmin)s
                        %(guard)s
                      |||, { ratio: vs(m.errorRatio.cur, '/', m.errorRatio.prev), factor: v.errorFactor, z: names.z,
                             zmin: v.errorZ, guard: lib.chomp(guard) }), 'error_ratio'),
                      previous: names.previous,
                    }),
                    'warning', 'A new model version is significantly worse than the one it replaced.',
                    lib.fmt('{{ $labels.metric }} of {{ $labels.model_name }} version {{ $labels.version }} over the last %(window)s is {{ $value | printf "%.3g" }}x that of version {{ $labels.previous_version }} over its last %(window)s before the change, at comparable traffic. Compare the versions (`inferwatch versions --model {{ $labels.model_name }}`) and roll back if it holds.', {
                      window: lib.humanDuration(w),
                    }),
                    v['for']),
        ],
      },
    ],
  },
}
