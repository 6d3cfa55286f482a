// The inferwatch monitoring mixin: prometheusRules, prometheusAlerts and grafanaDashboards,
// configured through _config (config.libsonnet). kube-prometheus users import this file.
(import 'config.libsonnet') +
(import 'rules.libsonnet') +
(import 'alerts.libsonnet') +
{
  grafanaDashboards+:: {},
}
