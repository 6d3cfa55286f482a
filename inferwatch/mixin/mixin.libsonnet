// The inferwatch monitoring mixin: prometheusRules and prometheusAlerts, configured through _config
// (config.libsonnet). kube-prometheus users import the repository's root mixin.libsonnet, which adds
// grafanaDashboards from dashboards/ (Python sources rendered to JSON by `inferwatch dashboards build`).
//
// One file per area, each reading only $._config (shared helpers and names in lib.libsonnet):
//   serving   per-model serving signals under engine-neutral names (recording rules)
//   slo       SLIs, per-model objectives and error budgets; burn-rate alerts
//   adaptive  seasonal and load-aware latency bands clamped at the per-model SLA; band, SLA and capacity alerts
//   errors    error and abort ratios against their own baseline
//   engine    endpoint/model health, versions, KV cache and preemption alerts
//   gpu       GPU efficiency and cost rules; GPU hardware alerts
//   probe     quality probes (golden prompts) per model and endpoint; probe failure, score and latency alerts
//   feedback  user feedback per model and version: negative share against the model's baseline, a new
//             version rated worse than the one it replaced, rejected feedback
//   drift     input drift per model, feature and method (drift exporter); drift and exporter alerts
//   logs      engine log error classes per source (log exporter); OOM, engine-dead, error-rate, new-error alerts
//   versions  each model version while it is the only one served against the version it replaced (latency,
//             errors with a two-proportion z-test, probes, feedback); new-version-worse alert
// Every alert gets its team/service labels and runbook_url here, in one place.
local lib = import 'lib.libsonnet';

(import 'config.libsonnet') +
(import 'serving.libsonnet') +
(import 'slo.libsonnet') +
(import 'adaptive.libsonnet') +
(import 'errors.libsonnet') +
(import 'engine.libsonnet') +
(import 'gpu.libsonnet') +
(import 'probe.libsonnet') +
(import 'feedback.libsonnet') +
(import 'drift.libsonnet') +
(import 'logs.libsonnet') +
(import 'versions.libsonnet') +
{
  prometheusAlerts:: lib.withSharedFields(super.prometheusAlerts, $._config),
  grafanaDashboards+:: {},
}
