// Engine area: serving endpoints and models as the inferwatch engine exporter sees them (health,
// redundancy, versions), engine capacity (KV cache, preemptions) and the exporters' own scrapes.
local lib = import 'lib.libsonnet';

{
  local c = $._config,
  local n = lib.names(c),
  local e = c.engine,
  local sel = c.engineExporterSelector,
  local alert = lib.alert,
  local engines = std.join(' or ', ['up{' + s + '}' for s in [c.vllmSelector, c.sglangSelector, c.tgiSelector, c.llamacppSelector]]),
  // The model a scrape target served, from its last samples (a down target has no fresh ones).
  local servedBy = 'group by (job, instance, model_name) (last_over_time(vllm:num_requests_running{' + c.vllmSelector + '}[1h]))',
  // `target` = host:port, on both the scrape-based and the exporter-based down alerts, so
  // Alertmanager can mute one with the other (equal: [target]).
  local asTarget(expr, from, regex) = 'label_replace(' + expr + ', "target", "$1", "' + from + '", "' + regex + '")',

  prometheusAlerts+:: {
    groups+: [
      {
        name: 'inferwatch.engine.alerts',
        rules: [
          alert('LLMEngineDown', 'last_over_time(inferwatch_engine_up{' + sel + '}[' + e.scrapeGapTolerance + ']) == 0', 'critical',
                'An LLM serving endpoint is down.',
                'Endpoint {{ $labels.endpoint }} ({{ $labels.model_name }}, {{ $labels.role }}) on {{ $labels.hostname }} fails its /health probe.',
                e.downFor),
          alert('LLMModelUnavailable', 'sum by (model_name) (last_over_time(inferwatch_model_healthy_endpoints{' + sel + '}[' + e.scrapeGapTolerance + '])) == 0',
                'critical', 'A model has no healthy endpoint.',
                'No endpoint serving {{ $labels.model_name }} is healthy: every request for it fails.', e.modelUnavailableFor),
          alert('LLMModelRedundancyLow',
                lib.fmt(|||
                  sum by (model_name) (inferwatch_model_healthy_endpoints{%(sel)s})
                  < on (model_name)
                  clamp_max(sum by (model_name) (inferwatch_model_configured_endpoints{%(sel)s}), %(min)s)
                  and on (model_name)
                  sum by (model_name) (inferwatch_model_healthy_endpoints{%(sel)s}) > 0
                |||, { sel: sel, min: c.redundancy.minHealthyEndpoints }),
                'warning', 'A model has fewer healthy endpoints than its redundancy target.',
                '{{ $labels.model_name }} has {{ $value }} healthy endpoint(s); one more failure takes it down.', e.redundancyLowFor),
          alert('LLMModelVersionChanged',
                'increase(inferwatch_model_version_changes_total{' + sel + '}[' + e.versionChangeWindow + ']) > 0',
                'info', 'A model version changed (deploy or rollback).',
                'Endpoint {{ $labels.endpoint }} now serves a new version of {{ $labels.model_name }}; compare latency and quality before and after.'),
          alert('LLMModelVersionSkew',
                'count by (model_name) (count by (model_name, version) (inferwatch_model_version_info{' + sel + '})) > 1',
                'warning', 'Replicas of a model serve different versions.',
                '{{ $labels.model_name }} is served in {{ $value }} versions at once; a rollout is stuck or a replica was missed.',
                e.versionSkewFor),
          alert('LLMKVCacheSaturationPredicted',
                lib.fmt(|||
                  predict_linear(%(kv)s[%(window)s], %(ahead)s) > %(sat)s
                  and on (model_name)
                  deriv(%(waiting)s[%(window)s]) > 0
                |||, {
                  kv: n.kvCacheUsage,
                  waiting: n.requestsWaiting,
                  window: c.kvCache.predictWindow,
                  ahead: c.kvCache.predictAhead,
                  sat: c.kvCache.saturation,
                }),
                'warning', 'KV cache will saturate while the queue grows.',
                lib.fmt('At the current trend the KV cache of {{ $labels.model_name }} passes %(pct)s% within %(minutes)s minutes while requests queue up; add replicas or shed load.',
                        { pct: c.kvCache.saturation * 100, minutes: std.floor(c.kvCache.predictAhead / 60) }),
                c.kvCache['for']),
          alert('LLMPreemptionStorm', n.preemptionsRate + ' > ' + lib.num(c.preemptionStormPerSecond), 'warning',
                'An LLM engine is preempting requests continuously.',
                '{{ $labels.model_name }} preempts {{ $value | humanize }} requests/s: the KV cache is too small for the batch; latency suffers.',
                c.preemptionStormFor),
          alert('LLMEngineTargetDown',
                asTarget(lib.fmt(|||
                  (
                    (%(up)s) == 0
                  ) * on (job, instance) group_left (model_name) %(servedBy)s
                  or
                  (
                    (%(up)s) == 0
                  ) unless on (job, instance) %(servedBy)s
                |||, { up: engines, servedBy: servedBy }), 'instance', '(.*)'),
                'critical', 'Prometheus cannot scrape an LLM engine.',
                'Scrapes of {{ $labels.job }} at {{ $labels.instance }} ({{ $labels.model_name }}) fail: the engine is down or unreachable, and its metrics are going stale.',
                e.targetDownFor),
          alert('LLMEngineRestarted',
                'sum by (job, instance, model_name) (resets(vllm:prompt_tokens_total{' + c.vllmSelector + '}[' + e.restartWindow + '])) > 0',
                'info', 'An LLM engine restarted.',
                '{{ $labels.instance }} ({{ $labels.model_name }}) restarted (its counters reset) within the last ' + lib.humanDuration(e.restartWindow) + ': look for a crash or OOM in its log if nobody deployed.'),
          alert('LLMModelSeriesAbsent',
                // `count(up) > 0`: Prometheus is scraping at all (no alert across its own gaps or restarts).
                '(\n' + std.join('\nor\n', [
                  'group by (model_name) (last_over_time(' + n.requestsRunning + '[' + e.seriesAbsentLookback + '])) unless on (model_name) ' + n.requestsRunning,
                  'group by (model_name) (sum by (model_name) (inferwatch_model_configured_endpoints{' + sel + '}) > 0) unless on (model_name) ' + n.requestsRunning,
                ] + [
                  'absent(' + n.requestsRunning + '{model_name="' + lib.quote(m) + '"})'
                  for m in c.expectedModels
                ]) + '\n)\nand on () count(up) > 0',
                'warning', 'A model has no engine metrics.',
                'No engine serving {{ $labels.model_name }} reports metrics, though it did in the last ' + lib.humanDuration(e.seriesAbsentLookback) + ' or is configured: its engines are gone from service discovery, or nothing scrapes them.',
                e.seriesAbsentFor),
          alert('LLMKVCacheSaturated',
                lib.fmt(|||
                  %(kv)s >= %(sat)s
                  and on (model_name)
                  %(waiting)s > 0
                |||, { kv: n.kvCacheUsage, sat: c.kvCache.saturation, waiting: n.requestsWaiting }),
                'warning', 'The KV cache is full and requests queue.',
                lib.fmt('The KV cache of {{ $labels.model_name }} is {{ $value | humanizePercentage }} full while requests wait: latency grows with the queue; add replicas or shed load.', {}),
                c.kvCache.saturatedFor),
          alert('InferwatchExporterDown',
                std.join(' or ', ['up{' + s + '} == 0' for s in [sel, c.gpuSelector, c.probeSelector, c.feedbackSelector,
                                                                c.driftSelector, c.logSelector]]),
                'warning', 'An inferwatch exporter cannot be scraped.',
                '{{ $labels.job }} at {{ $labels.instance }} is not answering scrapes: its alerts are blind.', e.exporterDownFor),
        ],
      },
    ],
  },
}
