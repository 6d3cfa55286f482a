// Drift area: input drift from the drift exporter (`inferwatch drift-exporter`, scrape job
// driftSelector). Per model, source (`histogram`: the engines' token histograms, read from
// Prometheus; `samples`: sampled request texts and embeddings), feature and method (psi,
// jensenshannon, ks, mmd), it exports the drift score, whether it passes the method's threshold
// (inferwatch_drift_detected, the exporter applies the thresholds) and how many requests each
// window (current, reference) held. Alerts: sustained drift on enough samples, the exporter unable
// to query Prometheus (its histogram-source scores go stale). A failed scrape of the exporter
// itself is up == 0, which InferwatchExporterDown (engine area) does not read yet.
local lib = import 'lib.libsonnet';

{
  local c = $._config,
  local d = c.drift,
  local sel = c.driftSelector,
  local alert = lib.alert,

  local names = {
    score: 'model_name_source_feature_method:inferwatch_drift_score:max',
    detected: 'model_name_source_feature_method:inferwatch_drift_detected:max',
    samples: 'model_name_source_feature:inferwatch_drift_samples:min',
  },

  prometheusRules+:: {
    groups+: [
      {
        name: 'inferwatch.drift.rules',
        rules: [
          {
            record: names.score,
            expr: 'max by (model_name, source, feature, method) (inferwatch_drift_score{' + sel + '})',
          },
          {
            record: names.detected,
            expr: 'max by (model_name, source, feature, method) (inferwatch_drift_detected{' + sel + '})',
          },
          {
            // The smaller of the two windows (label `window`: current, reference): a drift test
            // on a handful of requests is noise.
            record: names.samples,
            expr: 'min by (model_name, source, feature) (inferwatch_drift_samples{' + sel + '})',
          },
        ],
      },
    ],
  },

  prometheusAlerts+:: {
    groups+: [
      {
        name: 'inferwatch.drift.alerts',
        rules: [
          alert('LLMInputDriftDetected',
                // The score as the value; detected as the exporter decided it (method thresholds),
                // both windows of that model/source/feature with minSamples requests.
                lib.fmt(|||
                  %(score)s
                  and on (model_name, source, feature, method)
                  %(detected)s == 1
                  and on (model_name, source, feature)
                  %(samples)s >= %(min)s
                |||, { score: names.score, detected: names.detected, samples: names.samples, min: d.minSamples }),
                'warning', 'The inputs a model receives drift from their reference.',
                lib.fmt('Feature {{ $labels.feature }} ({{ $labels.source }} source) of {{ $labels.model_name }} drifts from its reference window: {{ $labels.method }} score {{ $value | printf \"%.3g\" }} (ks: the KS statistic) passes the method\'s threshold, with at least %(min)s requests in each window, for %(for)s. New users, a new client or prompt template, or an upstream change: check the quality alerts and probes before retraining or re-tuning anything.', {
                  min: d.minSamples,
                  'for': lib.humanDuration(d['for']),
                }),
                d['for']),
          alert('LLMDriftPrometheusUnreachable', 'inferwatch_drift_prometheus_up{' + sel + '} == 0', 'warning',
                'The drift exporter cannot query Prometheus.',
                '{{ $labels.job }} at {{ $labels.instance }} cannot query Prometheus: its histogram-source drift scores (token counts) are stale, and LLMInputDriftDetected is blind to them.',
                d.prometheusDownFor),
        ],
      },
    ],
  },
}
