// Probe area: the quality-probe exporter (`inferwatch probe-exporter`, scrape job probeSelector)
// sends golden prompts to every endpoint and judges the answers on the client side. Its series
// carry module and model_name; job and instance come from the scrape (instance = the probed
// endpoint for GET /probe, the exporter for scheduled targets, which also carry `target`).
// Alerts: a model failing everywhere (critical) or on some endpoints, a module score below its own
// baseline, an endpoint answering with another model (critical), client-side latency far above
// the engine's own, failing health checks.
local lib = import 'lib.libsonnet';

{
  local c = $._config,
  local n = lib.names(c),
  local p = c.probe,
  local sel = c.probeSelector,
  local alert = lib.alert,

  local names = {
    score: 'model_name_module:inferwatch_probe_module_score_ratio:avg',
    scoreBaseline: 'model_name_module:inferwatch_probe_module_score_ratio:baseline' + p.scoreBaselineWindow,
    clientTtft: 'model_name:inferwatch_probe_case_time_to_first_token_seconds:avg',
  },
  // Where a probe ran, for descriptions: the scrape's instance and, for scheduled probes, the target's name.
  local where = '{{ $labels.instance }} (target "{{ $labels.target }}")',
  local healthChecks = [
    // [series, value of the `check` label]
    ['inferwatch_probe_model_listed', 'model_listed'],
    ['inferwatch_probe_model_context_matches', 'context_matches'],
    ['inferwatch_probe_tokenizer_roundtrip_success', 'tokenizer_roundtrip'],
  ],

  prometheusRules+:: {
    groups+: [
      {
        name: 'inferwatch.probe.rules',
        rules: [
          // Share of a module's cases passed, over the model's probed endpoints.
          { record: names.score, expr: 'avg by (model_name, module) (inferwatch_probe_module_score_ratio{' + sel + '})' },
          {
            // The window ends scoreBaselineOffset ago: a drop in progress is not in its own baseline.
            record: names.scoreBaseline,
            expr: 'avg_over_time(' + names.score + '[' + p.scoreBaselineWindow + '] offset ' + p.scoreBaselineOffset + ')',
          },
          // Client-side time to first token: the mean over the model's cases, endpoints and modules.
          {
            record: names.clientTtft,
            expr: 'avg by (model_name) (inferwatch_probe_case_time_to_first_token_seconds{' + sel + '})',
          },
        ],
      },
    ],
  },

  prometheusAlerts+:: {
    groups+: [
      {
        name: 'inferwatch.probe.alerts',
        rules: [
          alert('LLMProbeFailing', 'max by (model_name) (inferwatch_probe_success{' + sel + '}) == 0', 'critical',
                'Every probed endpoint of a model fails its quality probe.',
                'Every probe of {{ $labels.model_name }} fails, on every endpoint and module: users get errors or wrong answers. inferwatch_probe_failed gives the reasons.',
                p.failingFor),
          alert('LLMProbeFailingOnEndpoint',
                lib.fmt(|||
                  inferwatch_probe_success{%(sel)s} == 0
                  and on (model_name)
                  max by (model_name) (inferwatch_probe_success{%(sel)s}) > 0
                |||, { sel: sel }),
                'warning', 'A model fails its quality probe on some endpoints.',
                'The {{ $labels.module }} probe of {{ $labels.model_name }} fails at ' + where + ' while other probes of the model pass: one replica or route is broken.',
                p.failingOnEndpointFor),
          alert('LLMProbeScoreDropped',
                // No baseline yet (a new model or module): no series to match on, no alert.
                lib.fmt(|||
                  %(score)s
                  < on (model_name, module)
                  (%(baseline)s - %(drop)s)
                |||, { score: names.score, baseline: names.scoreBaseline, drop: p.scoreDrop }),
                'warning', 'A quality probe passes far fewer cases than usual.',
                '{{ $value | humanizePercentage }} of the {{ $labels.module }} cases pass for {{ $labels.model_name }}, more than ' + lib.num(p.scoreDrop * 100) + ' points below its mean over ' + lib.humanDuration(p.scoreBaselineWindow) + ' ending ' + lib.humanDuration(p.scoreBaselineOffset) + ' ago: a model, prompt-template or sampling change.',
                p.scoreDroppedFor),
          alert('LLMProbeModelMismatch', 'inferwatch_probe_failed{' + sel + ',reason="model_mismatch"} == 1', 'critical',
                'An endpoint answers with another model than configured.',
                'Probes of {{ $labels.model_name }} at ' + where + ' are answered by another model (inferwatch_probe_served_model_info): requests are routed to the wrong deployment.',
                p.modelMismatchFor),
          alert('LLMProbeClientLatencyHigh',
                lib.fmt(|||
                  avg_over_time(%(client)s[%(window)s])
                  > on (model_name)
                  %(factor)s * %(engine)s + %(margin)s
                |||, {
                  client: names.clientTtft,
                  window: p.clientLatencyWindow,
                  engine: n.quantile('ttft', 0.95),
                  factor: p.clientLatencyFactor,
                  margin: p.clientLatencyMarginSeconds,
                }),
                'warning', 'Clients wait far longer for the first token than the engine takes.',
                'Probes of {{ $labels.model_name }} wait {{ $value | humanizeDuration }} for the first token, more than ' + lib.num(p.clientLatencyFactor) + 'x the engine\'s own p95 plus ' + lib.num(p.clientLatencyMarginSeconds) + 's: the time is lost in front of the engine (gateway, proxy, load balancer, network).',
                p.clientLatencyFor),
          alert('LLMProbeHealthCheckFailing',
                std.join('\nor\n', [
                  'label_replace(' + h[0] + '{' + sel + '} == 0, "check", "' + h[1] + '", "", "")'
                  for h in healthChecks
                ]),
                'warning', 'An endpoint fails a probe health check.',
                '{{ $labels.model_name }} at ' + where + ' fails the {{ $labels.check }} health check (model_listed: missing from /v1/models; context_matches: another max_model_len than configured; tokenizer_roundtrip: /tokenize then /detokenize changes the text).',
                p.healthCheckFor),
        ],
      },
    ],
  },
}
