// Logs area: engine log lines classified by the log exporter (`inferwatch log-exporter`, scrape job
// logSelector) into error classes per source (`source` is the engine exporter's endpoint name by
// convention; the alerts carry it as `endpoint` too, so an engine that is down mutes its log
// alerts in Alertmanager). Records each source's error-line rate per class and its baseline (the
// day ending an hour ago); alerts on OOM and engine-death lines, on an error class well above its
// baseline, on an error template first seen after a model version change, and on a log source the
// exporter cannot follow.
local lib = import 'lib.libsonnet';

{
  local c = $._config,
  local l = c.logs,
  local sel = c.logSelector,
  local alert = lib.alert,

  local names = {
    rate: 'source_class:inferwatch_engine_log_error_events:rate' + l.rateWindow,
    baseline: 'source_class:inferwatch_engine_log_error_events:baseline_rate' + l.baselineWindow,
  },
  // `source` as `endpoint`, the label the engine exporter's alerts carry.
  local asEndpoint(expr) = 'label_replace(' + expr + ', "endpoint", "$1", "source", "(.*)")',
  local seen(classes) = asEndpoint(
    'sum by (job, source, class) (increase(inferwatch_engine_log_events_total{' + sel + ', class=~"' + classes + '"}[' + l.eventWindow + '])) > 0'),

  prometheusRules+:: {
    groups+: [
      {
        name: 'inferwatch.logs.rules',
        rules: [
          {
            record: names.rate,
            expr: 'sum by (source, class) (rate(inferwatch_engine_log_events_total{' + sel + ', severity=~"error|critical"}[' + l.rateWindow + ']))',
          },
          {
            // A window ending baselineOffset ago, so a burst in progress is not its own baseline.
            record: names.baseline,
            expr: 'avg_over_time(' + names.rate + '[' + l.baselineWindow + '] offset ' + l.baselineOffset + ')',
          },
        ],
      },
    ],
  },

  prometheusAlerts+:: {
    groups+: [
      {
        name: 'inferwatch.logs.alerts',
        rules: [
          alert('LLMEngineLogOutOfMemory', seen('oom_gpu|oom_kv_cache'), 'critical',
                'The engine logged an out-of-memory error.',
                lib.fmt('{{ $labels.source }} logged {{ $value | printf "%.0f" }} {{ $labels.class }} line(s) in the last %(w)s: GPU memory or the KV cache ran out. Check gpu_memory_utilization, max_num_seqs and max_model_len; `inferwatch errors top --source {{ $labels.source }}` shows the lines.', { w: lib.humanDuration(l.eventWindow) })),
          alert('LLMEngineLogEngineDead', seen('engine_dead'), 'critical',
                'The engine logged that its engine core died.',
                lib.fmt('{{ $labels.source }} logged {{ $value | printf "%.0f" }} engine_dead line(s) in the last %(w)s: the engine core process died and requests fail until the server restarts. The lines before it (`inferwatch errors top`) usually say why (OOM, CUDA, NCCL).', { w: lib.humanDuration(l.eventWindow) })),
          alert('LLMEngineLogErrorsAboveBaseline',
                asEndpoint(lib.fmt(|||
                  %(rate)s > %(floor)s
                  unless on (source, class)
                  %(rate)s <= %(factor)s * %(baseline)s
                |||, { rate: names.rate, baseline: names.baseline, floor: l.minErrorRate, factor: l.baselineFactor })),
                'warning', 'Engine error lines of one class are well above their usual rate.',
                lib.fmt('{{ $labels.source }} logs {{ $labels.class }} errors at {{ $value | printf "%.3g" }}/s, over %(factor)s times its mean rate over the %(window)s ending %(offset)s ago (and over %(floor)s/s), for %(for)s. `inferwatch errors top --source {{ $labels.source }}` ranks the lines.', {
                  factor: l.baselineFactor, floor: l.minErrorRate, 'for': lib.humanDuration(l.errorsFor),
                  window: lib.humanDuration(l.baselineWindow), offset: lib.humanDuration(l.baselineOffset),
                }),
                l.errorsFor),
          alert('LLMEngineLogNewErrorAfterDeploy',
                asEndpoint('sum by (job, source) (increase(inferwatch_engine_log_new_version_templates_total{' + sel + '}[' + l.newTemplateWindow + '])) > 0'),
                'warning', 'A model version brought an engine error not seen before it.',
                lib.fmt('{{ $labels.source }} logged {{ $value | printf "%.0f" }} error template(s) in the last %(w)s that it never logged before its model version changed: the deploy brought a new problem. `inferwatch errors top --source {{ $labels.source }}` marks them NEW; consider a rollback.', { w: lib.humanDuration(l.newTemplateWindow) })),
          alert('LLMEngineLogSourceDown', asEndpoint('inferwatch_log_exporter_source_up{' + sel + '} == 0'), 'warning',
                'The log exporter cannot follow an engine log.',
                '{{ $labels.source }} is not being followed (the file is missing or unreadable, the container stopped, or stdin ended): engine log alerts are blind for it.',
                l.sourceDownFor),
        ],
      },
    ],
  },
}
