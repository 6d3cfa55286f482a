// inferwatch mixin configuration: the only thing the area files (serving, slo, adaptive, errors,
// engine, gpu, probe, feedback, drift, logs, versions) read. Override any field in your own jsonnet:
//   (import 'inferwatch/mixin/mixin.libsonnet') + { _config+:: { slo+: { availabilityTarget: 0.995 } } }
// `inferwatch rules render --config inferwatch.yaml` generates the slo/sla/price overrides from
// the file's `slo:` and `cost:` sections (`inferwatch rules overrides` prints them as jsonnet).
{
  _config+:: {
    // Selectors for each scrape job (add e.g. cluster="prod" to scope them).
    vllmSelector: 'job=~".*vllm.*"',
    sglangSelector: 'job=~".*sglang.*"',
    tgiSelector: 'job=~".*tgi.*"',
    llamacppSelector: 'job=~".*llama.*cpp.*"',  // llama.cpp series carry no model label: the job names the model
    gpuSelector: 'job=~".*inferwatch-gpu.*"',
    engineExporterSelector: 'job=~".*inferwatch-engine.*"',
    probeSelector: 'job=~".*inferwatch-probe.*"',
    feedbackSelector: 'job=~".*inferwatch-feedback.*"',
    driftSelector: 'job=~".*inferwatch-drift.*"',
    logSelector: 'job=~".*inferwatch-log.*"',

    // Rate window of the basic recording rules and of the SLIs (recorded names end in rate<window>).
    rateWindow: '5m',

    // Requests/s below which a model's latency is too noisy to judge (minimum-traffic guard of the SLA alerts).
    minRequestRate: 0.1,

    // Adaptive thresholds (docs/adaptive-thresholds.md).
    adaptive: {
      // How much the level may exceed the band's centre before alerting, at least.
      marginFloor: 0.25,
      // Band half-width = max(sensitivity * spread, marginFloor * centre).
      sensitivity: 3,
      // One spike cannot widen the band by more than this fraction of the centre.
      maxSpreadRatio: 0.5,
      // Spread = this quantile minus the median of each reference window.
      spreadQuantile: 0.9,
      // Seasonal references: the same time this long ago (yesterday, last week), each a window this wide.
      seasonalPeriods: ['1d', '1w'],
      seasonalWindow: '2h',
      // The seasonal group's evaluation interval, and how far back the band looks for its last value
      // (longer than the interval, so the band has no gaps between seasonal evaluations).
      seasonalInterval: '5m',
      seasonalLookback: '10m',
      'for': '5m',
      // The baseline alerts' own traffic guard, stricter: 100 requests in 5 minutes. Below it a p95
      // is one of the five slowest requests, and a quiet evening looks like a regression.
      minRequestRate: 0.33,
      // Load-aware band (docs/adaptive-thresholds.md): ln(p95) ~ ln(requests/s per replica), a
      // traffic-weighted least-squares fit over the last fitWindow of hourly means.
      fitWindow: '1w',
      fitMinHours: 24,  // hours of history before the fitted band is used
      maxSlope: 3,  // the fitted elasticity is clamped to [0, maxSlope]
      minLoadVariance: 0.01,  // of ln(load): below it the history cannot tell load effects apart
    },

    // Capacity: load per replica above what the fleet handled within the SLA over the past week
    // (the latency-regression alerts stay quiet there; LLMCapacityExceeded speaks instead).
    capacity: {
      window: '1w',
      // The window ends this long ago, so a long peak does not raise its own bar while it lasts.
      exclude: '1d',
      margin: 1.1,  // warn above this multiple of the handled maximum
      minHistoryHours: 144,  // six days: a weekly maximum needs most of a week
      'for': '10m',
    },

    // Error and abort ratios against their own day-before baseline (finished_reason values).
    errorRatio: {
      reasons: {
        'error': { factor: 10, floor: 0.01, minEvents: 5 },
        abort: { factor: 4, floor: 0.1, minEvents: 10 },
      },
      baselineWindow: '1d',
      'for': '2m',
    },

    // HTTP answers of vLLM's generation routes by status class (its http_requests_total): requests
    // it rejects (4xx: over-long prompts, bad parameters after a client deploy) or fails (5xx) never
    // reach a finish reason, so they get the same floor-factor-volume test against their own day.
    httpErrorRatio: {
      handlers: ['/v1/completions', '/v1/chat/completions', '/v1/responses', '/v1/messages'],
      statuses: {
        '5xx': { factor: 10, floor: 0.01, minEvents: 5 },
        '4xx': { factor: 4, floor: 0.1, minEvents: 20 },
      },
      baselineWindow: '1d',
      // http_requests_total has no model label: the model comes from the instance's last
      // vllm:num_requests_running sample this recent. A plain instant lookup lost it on every failed
      // scrape, which emptied the ratio for one evaluation and restarted the alert's `for` (a fire
      // drill on a loaded machine stayed pending 8 minutes). A model renamed on the same instance
      // maps to both names for this long: the join then errors and the ratio is absent meanwhile.
      modelLookback: '2m',
      'for': '2m',
    },

    // Latency SLA per model (seconds): the threshold is never above it, and crossing it always fires.
    sla: {
      ttftSeconds: { default: 2.0, overrides: {} },  // overrides: model_name -> seconds
      itlSeconds: { default: 0.2, overrides: {} },
      // Short: the SLA is far above normal latency, and a breach should page within 5 minutes.
      'for': '2m',
    },

    // SLOs and multi-window multi-burn-rate tiers (Google SRE workbook).
    slo: {
      period: '30d',  // the error budget's window
      // SLI windows: rateWindow is the base rate; longer ones average it. Must hold every burn-rate window and the period.
      windows: ['5m', '30m', '1h', '2h', '6h', '1d', '3d', '30d'],
      availabilityTarget: 0.99,
      ttftTarget: 0.95,  // share of requests with TTFT under ttftThresholdSeconds
      ttftThresholdSeconds: '1.0',  // must be a bucket bound as vLLM exposes it (le="1.0")
      itlTarget: 0.95,
      itlThresholdSeconds: '0.1',
      // Per-model overrides, keyed by model_name: any of availabilityTarget, ttftTarget,
      // ttftThresholdSeconds, itlTarget, itlThresholdSeconds.
      models: {},
      burnRates: [
        { long: '1h', short: '5m', factor: 14.4, severity: 'critical', 'for': '2m' },
        { long: '6h', short: '30m', factor: 6, severity: 'critical', 'for': '15m' },
        { long: '1d', short: '2h', factor: 3, severity: 'warning', 'for': '1h' },
        { long: '3d', short: '6h', factor: 1, severity: 'warning', 'for': '3h' },
      ],
    },

    // Health and capacity (engine exporter and engine metrics).
    engine: {
      downFor: '2m',
      // The exporter's last reported state is held this long across its failed scrapes: a scrape
      // timeout marks every series stale, which restarted LLMEngineDown's `for` (the fire drill, on
      // a busy machine, saw it pending for minutes and never firing).
      scrapeGapTolerance: '2m',
      // Prometheus' own up == 0 for an engine target. Longer than downFor: where the engine exporter
      // probes the engine, its LLMEngineDown fires first and inhibits this one (same target), so one
      // outage pages once (the fire drill found both paging at 1m and 2m).
      targetDownFor: '3m',
      restartWindow: '10m',  // LLMEngineRestarted: a counter reset this recent
      seriesAbsentLookback: '6h',  // a model whose series existed this recently and are gone
      seriesAbsentFor: '5m',
      modelUnavailableFor: '1m',
      redundancyLowFor: '5m',
      versionChangeWindow: '10m',  // LLMModelVersionChanged: a version change within this window
      versionSkewFor: '30m',
      exporterDownFor: '5m',
    },
    redundancy: { minHealthyEndpoints: 2 },
    kvCache: { saturation: 0.9, predictWindow: '30m', predictAhead: 900, 'for': '10m', saturatedFor: '1m' },
    // Models that must always have series (absent() alert); `rules render --config` adds slo.models.
    expectedModels: [],
    preemptionStormPerSecond: 1,
    preemptionStormFor: '10m',
    gpu: {
      criticalXids: '48|62|63|64|74|79|92|94|95|119|120',
      xidWindow: '10m',  // a critical XID this recent fires
      lostFor: '1m',
      nvmlUnavailableFor: '5m',
      rowRemapPendingFor: '15m',
      thermalFor: '10m',
      powerCapWindow: '15m',  // share of this window spent at the software power cap
      powerThrottlingFor: '15m',
      collectTimeoutWindow: '10m',
    },

    // Quality probes (inferwatch probe-exporter, scraped by probeSelector): golden prompts sent to
    // every endpoint, judged on the client side (docs/runbooks/llmprobe*.md).
    probe: {
      failingFor: '5m',  // LLMProbeFailing: every probed endpoint of a model fails
      failingOnEndpointFor: '10m',  // LLMProbeFailingOnEndpoint: some endpoints fail while others pass
      // LLMProbeScoreDropped: a module's score (share of cases passed, averaged over endpoints) more
      // than scoreDrop below its mean over scoreBaselineWindow ending scoreBaselineOffset ago (the
      // drop in progress is not its own baseline).
      scoreDrop: 0.2,
      scoreBaselineWindow: '1d',
      scoreBaselineOffset: '1h',
      scoreDroppedFor: '15m',
      modelMismatchFor: '2m',  // LLMProbeModelMismatch: an endpoint answers with another model
      // LLMProbeClientLatencyHigh: the probes' client-side TTFT (mean over a model's cases, averaged
      // over clientLatencyWindow) above clientLatencyFactor x the engine's own p95 TTFT plus
      // clientLatencyMarginSeconds: the time is lost in front of the engine.
      clientLatencyFactor: 2,
      clientLatencyMarginSeconds: 0.5,
      clientLatencyWindow: '10m',
      clientLatencyFor: '10m',
      healthCheckFor: '5m',  // LLMProbeHealthCheckFailing: model not listed, wrong context, tokenizer round trip
    },

    // User feedback (inferwatch feedback-server, scraped by feedbackSelector; docs/quality-alerts.md):
    // the share of negative feedback per model and version.
    feedback: {
      // LLMNegativeFeedbackRising: negative / all feedback of a model version over `window`, above
      // max(negativeFactor x, negativeMargin points +) the model's ratio over baselineWindow ending
      // `window` ago, with at least minVolume feedback events in `window`.
      window: '1h',  // also the step of the hourly sums the longer windows add up
      baselineWindow: '7d',  // a multiple of `window`
      negativeFactor: 1.5,
      negativeMargin: 0.1,
      minVolume: 20,
      minBaselineVolume: 100,  // feedback events in baselineWindow: below it there is no baseline, and no alert
      'for': '15m',
      // LLMModelVersionRatedWorse: a served version's negative ratio over versionWindow more than
      // versionMargin points above that of the model's versions no longer served (the ones it
      // replaced), with at least versionMinVolume feedback events on each side.
      versionWindow: '1d',  // a multiple of `window`
      versionMargin: 0.1,
      versionMinVolume: 50,
      versionFor: '30m',
      // LLMFeedbackRejected: more than rejectedRatio of the feedback the service receives is
      // rejected for one reason, at least rejectedMinEvents times in rejectedWindow.
      rejectedWindow: '15m',
      rejectedRatio: 0.1,
      rejectedMinEvents: 10,
      rejectedFor: '15m',
    },

    // A model's new version against the one it replaced (docs/versions.md, sequential comparison:
    // each version while it is the only one served). LLMNewVersionWorse: a metric's mean over
    // `window` of the new version against the previous version's last `window`, with at least
    // minRequestRate requests/s on both sides, within compareWithin of the change.
    versions: {
      window: '30m',
      previousLookback: '1d',  // how long a previous version's last window is remembered
      compareWithin: '4h',  // alert only this soon after the change (later, time of day dominates)
      latencyFactor: 1.25,  // p95 above this multiple of the previous version's ...
      ttftFloorSeconds: 0.05,  // ... and this much higher
      itlFloorSeconds: 0.005,
      maxLoadRatio: 1.5,  // latency compared only when traffic is at most this multiple of before
      errorReasons: ['error', 'abort'],  // as model_name:llm_request_errors_per_requests:ratio_rate5m
      errorFactor: 1.5,  // error ratio above this multiple of the previous version's ...
      errorZ: 3,  // ... and significant: two-proportion z-test statistic above this
      minRequestRate: 0.2,  // requests/s in each window (360 in 30 minutes)
      'for': '15m',
    },

    // Input drift (inferwatch drift-exporter, scraped by driftSelector): the exporter compares each
    // feature's current window with its reference window and applies each method's threshold.
    drift: {
      'for': '30m',  // LLMInputDriftDetected: drift detected this long (one run's blip is not drift)
      minSamples: 200,  // requests/samples both windows must hold for the drift to count
      prometheusDownFor: '10m',  // LLMDriftPrometheusUnreachable: the exporter cannot query Prometheus
    },

    // Engine logs (inferwatch log-exporter, scraped by logSelector): error classes per source.
    logs: {
      eventWindow: '5m',  // LLMEngineLogOutOfMemory / EngineDead: any such line this recently
      rateWindow: '5m',  // the recorded error-line rate per source and class
      baselineFactor: 5,  // LLMEngineLogErrorsAboveBaseline: over this multiple of the baseline
      baselineWindow: '1d',  // the baseline: the mean error-line rate over this window ...
      baselineOffset: '1h',  // ... ending this long ago
      minErrorRate: 0.05,  // ... and over this many error lines per second (3 a minute)
      errorsFor: '10m',
      newTemplateWindow: '30m',  // LLMEngineLogNewErrorAfterDeploy: a new template this recently
      sourceDownFor: '5m',
    },

    // Cost: price of one GPU-hour, for cost per million tokens.
    gpuHourPriceUsd: 2.5,

    // Routing labels and runbooks (stamped on every alert by lib.withSharedFields).
    team: 'ml-platform',  // serving, model and SLO alerts
    gpuTeam: 'infra',  // GPU hardware alerts
    service: 'llm-serving',
    runbookBase: 'https://github.com/inferwatch/inferwatch/blob/main/docs/runbooks/',
  },
}
