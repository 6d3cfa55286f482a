// Alerts: adaptive latency bands (warning), SLA breaches and fast SLO burns (critical),
// engine and GPU health, capacity. Every alert has severity/team/service labels, a static
// summary, a templated description and a runbook in docs/runbooks/<lower-case name>.md.
{
  local c = $._config,
  local w = c.rateWindow,

  local alert(name, expr, severity, summary, description, forDuration=null, extraLabels={}, team=c.team) = {
    alert: name,
    expr: expr,
    labels: { severity: severity, team: team, service: c.service } + extraLabels,
    annotations: {
      summary: summary,
      description: description,
      runbook_url: c.runbookBase + std.asciiLower(name) + '.md',
    },
  } + (if forDuration != null then { 'for': forDuration } else {}),

  local guard = 'on (model_name) %s >= %g' % [$.requestRate, c.minRequestRate],
  local camel(s) = { ttft: 'TimeToFirstToken', itl: 'InterTokenLatency' }[s],

  prometheusAlerts+:: {
    groups+: [
      {
        name: 'inferwatch.latency.alerts',
        rules: std.flattenArrays([
          local s = $.adaptive[name];
          [
            alert(
              'LLM%sAboveBaseline' % camel(name),
              '%s > %s\nand %s' % [s.level, s.threshold, guard],
              'warning',
              'LLM %s is above its adaptive baseline.' % s.human,
              'p95 %s of {{ $labels.model_name }} is {{ $value | humanizeDuration }}, above the band its own history (same hour yesterday and last week) allows.' % s.human,
              c.adaptive['for'],
            ),
            alert(
              'LLM%sSLABreach' % camel(name),
              '%s > %s\nand %s' % [s.level, s.sla, guard],
              'critical',
              'LLM %s breaches the SLA.' % s.human,
              'p95 %s of {{ $labels.model_name }} is {{ $value | humanizeDuration }}, above the SLA.' % s.human,
              c.sla['for'],
            ),
          ]
          for name in std.objectFields($.adaptive)
        ]),
      },
      {
        name: 'inferwatch.slo.alerts',
        rules: std.flattenArrays([
          local sli = $.slis[slo];
          local burn(tier) = '(\n  %s > %g\n  and\n  %s > %g\n)' % [
            $.sliName(slo, tier.long), tier.factor * (1 - sli.target),
            $.sliName(slo, tier.short), tier.factor * (1 - sli.target),
          ];
          local name = 'LLM%sBudgetBurn' % { availability: 'Availability', ttft: 'TTFT', itl: 'ITL' }[slo];
          [
            alert(
              name,
              std.join('\nor\n', [burn(t) for t in c.slo.burnRates if t.severity == severity]),
              severity,
              'LLM %s SLO error budget is burning fast.' % sli.human,
              'Model {{ $labels.model_name }} is spending its %s error budget (objective %g) %s.' % [sli.human, sli.target, if severity == 'critical' then 'at 6x-14.4x the sustainable rate: it is gone within days' else 'at 1x-3x the sustainable rate: it runs out before the 30-day window ends'],
              std.filter(function(t) t.severity == severity, c.slo.burnRates)[0]['for'],
              { slo: slo },
            )
            for severity in ['critical', 'warning']
          ]
          for slo in std.objectFields($.slis)
        ]),
      },
      {
        name: 'inferwatch.engine.alerts',
        rules: [
          alert('LLMEngineDown', 'inferwatch_engine_up{%s} == 0' % c.engineExporterSelector, 'critical',
                'An LLM serving endpoint is down.',
                'Endpoint {{ $labels.endpoint }} ({{ $labels.model_name }}, {{ $labels.role }}) on {{ $labels.hostname }} fails its /health probe.',
                '2m'),
          alert('LLMModelUnavailable', 'sum by (model_name) (inferwatch_model_healthy_endpoints{%s}) == 0' % c.engineExporterSelector,
                'critical', 'A model has no healthy endpoint.',
                'No endpoint serving {{ $labels.model_name }} is healthy: every request for it fails.', '1m'),
          alert('LLMModelRedundancyLow',
                |||
                  sum by (model_name) (inferwatch_model_healthy_endpoints{%(sel)s})
                  < on (model_name)
                  clamp_max(sum by (model_name) (inferwatch_model_configured_endpoints{%(sel)s}), %(min)s)
                  and on (model_name)
                  sum by (model_name) (inferwatch_model_healthy_endpoints{%(sel)s}) > 0
                ||| % { sel: c.engineExporterSelector, min: c.redundancy.minHealthyEndpoints },
                'warning', 'A model has fewer healthy endpoints than its redundancy target.',
                '{{ $labels.model_name }} has {{ $value }} healthy endpoint(s); one more failure takes it down.', '5m'),
          alert('LLMModelVersionChanged',
                'increase(inferwatch_model_version_changes_total{%s}[10m]) > 0' % c.engineExporterSelector,
                'info', 'A model version changed (deploy or rollback).',
                'Endpoint {{ $labels.endpoint }} now serves a new version of {{ $labels.model_name }}; compare latency and quality before and after.'),
          alert('LLMModelVersionSkew',
                'count by (model_name) (count by (model_name, version) (inferwatch_model_version_info{%s})) > 1' % c.engineExporterSelector,
                'warning', 'Replicas of a model serve different versions.',
                '{{ $labels.model_name }} is served in {{ $value }} versions at once; a rollout is stuck or a replica was missed.', '30m'),
          alert('LLMKVCacheSaturationPredicted',
                |||
                  predict_linear(model_name:llm_kv_cache_usage:max[%(window)s], %(ahead)s) > %(sat)g
                  and on (model_name)
                  deriv(model_name:llm_requests_waiting:sum[%(window)s]) > 0
                ||| % { window: c.kvCache.predictWindow, ahead: c.kvCache.predictAhead, sat: c.kvCache.saturation },
                'warning', 'KV cache will saturate while the queue grows.',
                'At the current trend the KV cache of {{ $labels.model_name }} passes %g%% within %d minutes while requests queue up; add replicas or shed load.' % [c.kvCache.saturation * 100, c.kvCache.predictAhead / 60],
                '10m'),
          alert('LLMPreemptionStorm', 'model_name:llm_preemptions:rate%s > %s' % [w, c.preemptionStormPerSecond], 'warning',
                'An LLM engine is preempting requests continuously.',
                '{{ $labels.model_name }} preempts {{ $value | humanize }} requests/s: the KV cache is too small for the batch; latency suffers.',
                '10m'),
          alert('InferwatchExporterDown', 'up{%s} == 0 or up{%s} == 0' % [c.engineExporterSelector, c.gpuSelector],
                'warning', 'An inferwatch exporter cannot be scraped.',
                '{{ $labels.job }} at {{ $labels.instance }} is not answering scrapes: its alerts are blind.', '5m'),
        ],
      },
      {
        name: 'inferwatch.gpu.alerts',
        rules: [gpuRule { labels+: { team: c.gpuTeam } } for gpuRule in [
          alert('GPULost', 'inferwatch_gpu_up{%s} == 0' % c.gpuSelector, 'critical',
                'A GPU has fallen off the bus or needs a reset.',
                'GPU {{ $labels.gpu }} ({{ $labels.uuid }}) on {{ $labels.hostname }} no longer answers NVML.', '1m'),
          alert('GPUNvmlUnavailable', 'inferwatch_gpu_exporter_nvml_up{%s} == 0' % c.gpuSelector, 'critical',
                'NVML is unavailable on a GPU host.',
                'The GPU exporter on {{ $labels.instance }} cannot initialise NVML ({{ $labels.error }}): driver missing or mismatched.', '5m'),
          alert('GPUXidCriticalError',
                'time() - inferwatch_gpu_xid_last_timestamp_seconds{%s,xid=~"%s"} < 600' % [c.gpuSelector, c.gpu.criticalXids],
                'critical', 'A GPU reported a critical XID error.',
                'GPU {{ $labels.gpu }} on {{ $labels.hostname }} reported XID {{ $labels.xid }} in the last 10 minutes.'),
          alert('GPUEccDoubleBitError',
                'inferwatch_gpu_ecc_errors_total{%s,error_type="double_bit",scope="volatile"} > 0' % c.gpuSelector,
                'critical', 'A GPU has uncorrectable (double-bit) ECC errors.',
                'GPU {{ $labels.gpu }} on {{ $labels.hostname }} has {{ $value }} double-bit ECC errors since the driver loaded.'),
          alert('GPURowRemapFailure', 'inferwatch_gpu_row_remap_failure{%s} == 1' % c.gpuSelector, 'critical',
                'A GPU failed to remap a memory row.',
                'GPU {{ $labels.gpu }} ({{ $labels.uuid }}) on {{ $labels.hostname }} could not remap a faulty row: it needs service.'),
          alert('GPURowRemapPending', 'inferwatch_gpu_row_remap_pending{%s} == 1' % c.gpuSelector, 'warning',
                'A GPU has a row remap pending.',
                'GPU {{ $labels.gpu }} on {{ $labels.hostname }} needs a reset to apply a pending row remap.', '15m'),
          alert('GPUThermalThrottling',
                'max without (reason) (inferwatch_gpu_clock_event_active{%s,reason=~"hw_thermal_slowdown|sw_thermal_slowdown|hw_slowdown"}) == 1' % c.gpuSelector,
                'warning', 'A GPU is held down by thermal slowdown.',
                'GPU {{ $labels.gpu }} on {{ $labels.hostname }} has been thermally throttled for %s: check cooling.' % c.gpu.thermalFor,
                c.gpu.thermalFor),
          alert('GPUPowerThrottling',
                |||
                  inferwatch_gpu_clock_event_active{%(sel)s,reason="hw_power_brake_slowdown"} == 1
                  or
                  avg_over_time(inferwatch_gpu_clock_event_active{%(sel)s,reason="sw_power_cap"}[15m]) > 0.5
                ||| % { sel: c.gpuSelector },
                'warning', 'A GPU is held down by its power limit.',
                'GPU {{ $labels.gpu }} on {{ $labels.hostname }} is power-throttled ({{ $labels.reason }}).', '15m'),
          alert('GPUExporterCollectTimeouts',
                'increase(inferwatch_gpu_exporter_collect_timeouts_total{%s}[10m]) > 0' % c.gpuSelector,
                'warning', 'NVML calls are hanging on a GPU host.',
                'The GPU exporter on {{ $labels.instance }} gave up waiting for NVML in the last 10 minutes: a driver call hangs.'),
        ]],
      },
    ],
  },
}
