// inferwatch mixin configuration. Override any field in your own jsonnet:
//   (import 'inferwatch/mixin/mixin.libsonnet') + { _config+:: { slo+: { availabilityTarget: 0.995 } } }
{
  _config+:: {
    // Selectors for each scrape job (add e.g. cluster="prod" to scope them).
    vllmSelector: 'job=~".*vllm.*"',
    sglangSelector: 'job=~".*sglang.*"',
    tgiSelector: 'job=~".*tgi.*"',
    llamacppSelector: 'job=~".*llama.*cpp.*"',  // llama.cpp series carry no model label: the job names the model
    gpuSelector: 'job=~".*inferwatch-gpu.*"',
    engineExporterSelector: 'job=~".*inferwatch-engine.*"',

    // Windows used by the basic recording rules.
    rateWindow: '5m',

    // Requests/s below which a model's latency is too noisy to judge (minimum-traffic guard).
    minRequestRate: 0.1,

    // Adaptive thresholds (docs/adaptive-thresholds.md).
    adaptive: {
      // How much the level may exceed the band's centre before alerting, at least.
      marginFloor: 0.25,
      // Band half-width = max(sensitivity * spread, marginFloor * centre).
      sensitivity: 3,
      // One spike cannot widen the band by more than this fraction of the centre.
      maxSpreadRatio: 0.5,
      // Seasonal references: the same time yesterday and a week ago, each a window this wide.
      seasonalWindow: '2h',
      'for': '5m',
    },

    // Latency SLA per model (seconds): the threshold is never above it, and crossing it always fires.
    sla: {
      ttftSeconds: { default: 2.0, overrides: {} },
      itlSeconds: { default: 0.2, overrides: {} },
      'for': '5m',
    },

    // SLOs (30-day window) and multi-window multi-burn-rate tiers (Google SRE workbook).
    slo: {
      availabilityTarget: 0.99,
      ttftTarget: 0.95,  // share of requests with TTFT under ttftThresholdSeconds
      ttftThresholdSeconds: '1.0',  // must be a bucket bound vLLM exposes (le="1.0")
      itlTarget: 0.95,
      itlThresholdSeconds: '0.1',
      burnRates: [
        { long: '1h', short: '5m', factor: 14.4, severity: 'critical', 'for': '2m' },
        { long: '6h', short: '30m', factor: 6, severity: 'critical', 'for': '15m' },
        { long: '1d', short: '2h', factor: 3, severity: 'warning', 'for': '1h' },
        { long: '3d', short: '6h', factor: 1, severity: 'warning', 'for': '3h' },
      ],
    },

    // Health and capacity.
    redundancy: { minHealthyEndpoints: 2 },
    kvCache: { saturation: 0.9, predictWindow: '30m', predictAhead: 900 },
    preemptionStormPerSecond: 1,
    gpu: {
      criticalXids: '48|62|63|64|74|79|92|94|95|119|120',
      thermalFor: '10m',
    },

    // Cost: price of one GPU-hour, for cost per million tokens.
    gpuHourPriceUsd: 2.5,

    // Routing labels and runbooks.
    team: 'ml-platform',  // serving, model and SLO alerts
    gpuTeam: 'infra',  // GPU hardware alerts
    service: 'llm-serving',
    runbookBase: 'https://github.com/inferwatch/inferwatch/blob/main/docs/runbooks/',
  },
}
