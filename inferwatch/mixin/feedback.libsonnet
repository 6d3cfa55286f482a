// Feedback area: user feedback from the feedback service (`inferwatch feedback-server`, scrape job
// feedbackSelector, possibly several replicas: every rule sums over instances). Its counter
// inferwatch_feedback_total carries model_name, version (the version that served the request,
// `unknown` when it could not be resolved), score, value and polarity (positive, negative,
// neutral: the service decides from the score's config). Recorded: feedback volume and the
// negative share per model and version over `window` and versionWindow, the model's baseline
// share, the mean numeric rating, the rejected share. Alerts: a version's negative share far above
// its model's baseline, a served version rated worse than the versions it replaced, feedback
// rejected in bulk.
local lib = import 'lib.libsonnet';

{
  local c = $._config,
  local f = c.feedback,
  local sel = c.feedbackSelector,
  local served = 'inferwatch_model_version_info{' + c.engineExporterSelector + '}',
  local alert = lib.alert,
  local w = f.window,
  local vw = f.versionWindow,
  local rw = f.rejectedWindow,
  assert lib.seconds(f.baselineWindow) % lib.seconds(w) == 0 : 'feedback.baselineWindow must be a multiple of feedback.window',
  assert lib.seconds(vw) % lib.seconds(w) == 0 : 'feedback.versionWindow must be a multiple of feedback.window',

  local names = {
    volume(window):: 'model_name_version:inferwatch_feedback:increase' + window,
    negative(window):: 'model_name_version:inferwatch_feedback_negative:increase' + window,
    ratio(window):: 'model_name_version:inferwatch_feedback_negative_per_feedback:ratio_rate' + window,
    baseline: 'model_name:inferwatch_feedback_negative_per_feedback:baseline_ratio' + f.baselineWindow,
    threshold: 'model_name:inferwatch_feedback_negative_per_feedback:threshold_ratio',
    previous: 'model_name:inferwatch_feedback_previous_versions_negative_per_feedback:ratio_rate' + vw,
    rating: 'model_name_version_score:inferwatch_feedback_score:mean' + w,
    rejected: 'job_reason:inferwatch_feedback_rejected:rate' + rw,
    received: 'job:inferwatch_feedback_received:rate' + rw,
    rejectedRatio: 'job_reason:inferwatch_feedback_rejected_per_received:ratio_rate' + rw,
  },
  // A longer window's feedback as the sum of `window`-long increases, one per `window` step (the
  // steps tile the window): cheap, and a sum stays right across versions that lived for part of it.
  local longer(series, window, offset='') =
    'sum_over_time(' + series + '[' + window + ':' + w + ']' + (if offset == '' then '' else ' offset ' + offset) + ')',
  // The versions of a model that no endpoint serves now (per the engine exporter), `unknown` aside.
  local notServed(series) = series + '{version!="unknown"} unless on (model_name, version) ' + served,

  prometheusRules+:: {
    groups+: [
      {
        name: 'inferwatch.feedback.rules',
        rules: [
          {
            record: names.volume(w),
            expr: 'sum by (model_name, version) (increase(inferwatch_feedback_total{' + sel + '}[' + w + ']))',
          },
          {
            // 0 where a version has feedback but none negative: its ratio is 0, not missing, and a
            // model with no negative feedback at all has a baseline (of 0).
            record: names.negative(w),
            expr: lib.fmt(|||
              sum by (model_name, version) (increase(inferwatch_feedback_total{%(sel)s,polarity="negative"}[%(w)s]))
              or
              0 * %(volume)s
            |||, { sel: sel, w: w, volume: names.volume(w) }),
          },
          { record: names.ratio(w), expr: names.negative(w) + '\n/\n(' + names.volume(w) + ' > 0)' },
          {
            // The model's share over all its versions, in the baselineWindow that ends where the
            // current window starts (a rise in progress is not its own baseline). Too little feedback
            // in it: no baseline.
            record: names.baseline,
            expr: lib.fmt(|||
              sum by (model_name) (%(negative)s)
              /
              (sum by (model_name) (%(volume)s) >= %(min)s)
            |||, {
              negative: longer(names.negative(w), f.baselineWindow, w),
              volume: longer(names.volume(w), f.baselineWindow, w),
              min: f.minBaselineVolume,
            }),
          },
          {
            // max(factor x baseline, baseline + margin): a low baseline needs the margin, a high one the factor.
            record: names.threshold,
            expr: lib.fmt(|||
              %(baseline)s * %(factor)s > %(baseline)s + %(margin)s
              or
              %(baseline)s + %(margin)s
            |||, { baseline: names.baseline, factor: f.negativeFactor, margin: f.negativeMargin }),
          },
          { record: names.volume(vw), expr: longer(names.volume(w), vw) },
          { record: names.negative(vw), expr: longer(names.negative(w), vw) },
          { record: names.ratio(vw), expr: names.negative(vw) + '\n/\n(' + names.volume(vw) + ' > 0)' },
          {
            // The versions a model's served versions replaced: those with feedback in versionWindow
            // that no endpoint serves now (late feedback keeps arriving for them), summed together.
            record: names.previous,
            expr: lib.fmt(|||
              sum by (model_name) (%(negative)s)
              /
              (sum by (model_name) (%(volume)s) >= %(min)s)
            |||, { negative: notServed(names.negative(vw)), volume: notServed(names.volume(vw)), min: f.versionMinVolume }),
          },
          {
            // Mean numeric rating (for dashboards).
            record: names.rating,
            expr: lib.fmt(|||
              sum by (model_name, version, score) (increase(inferwatch_feedback_score_sum{%(sel)s}[%(w)s]))
              /
              (sum by (model_name, version, score) (increase(inferwatch_feedback_score_count{%(sel)s}[%(w)s])) > 0)
            |||, { sel: sel, w: w }),
          },
          {
            record: names.rejected,
            expr: 'sum by (job, reason) (rate(inferwatch_feedback_rejected_total{' + sel + '}[' + rw + ']))',
          },
          {
            // Everything the service received: accepted (inferwatch_feedback_total) or rejected. The
            // two never share a label set (model_name... against reason), so `or` is their union.
            record: names.received,
            expr: lib.fmt(|||
              sum by (job) (
                rate(inferwatch_feedback_total{%(sel)s}[%(w)s])
                or
                rate(inferwatch_feedback_rejected_total{%(sel)s}[%(w)s])
              )
            |||, { sel: sel, w: rw }),
          },
          { record: names.rejectedRatio, expr: names.rejected + '\n/ on (job) group_left ()\n(' + names.received + ' > 0)' },
        ],
      },
    ],
  },

  prometheusAlerts+:: {
    groups+: [
      {
        name: 'inferwatch.feedback.alerts',
        rules: [
          alert('LLMNegativeFeedbackRising',
                // No baseline (a new model, too little feedback in baselineWindow): no alert.
                lib.fmt(|||
                  %(ratio)s
                  > on (model_name) group_left ()
                  %(threshold)s
                  and on (model_name, version)
                  %(volume)s >= %(min)s
                |||, { ratio: names.ratio(w), threshold: names.threshold, volume: names.volume(w), min: f.minVolume }),
                'warning', 'Users rate a model far more negatively than usual.',
                lib.fmt('{{ $value | humanizePercentage }} of the feedback on {{ $labels.model_name }} version {{ $labels.version }} over the last %(window)s is negative: above %(factor)sx, and more than %(margin)s points above, the model\'s share in the %(baseline)s before. Look at recent changes (version, prompt template, sampling, retrieval) and at the comments.', {
                  window: lib.humanDuration(w),
                  factor: lib.num(f.negativeFactor),
                  margin: lib.num(f.negativeMargin * 100),
                  baseline: lib.humanDuration(f.baselineWindow),
                }),
                f['for']),
          alert('LLMModelVersionRatedWorse',
                // Left: the versions an endpoint serves now (inferwatch_model_version_info, matched on
                // model_name and version), with versionMinVolume feedback events of their own in
                // versionWindow. Right: one series per model, the share of the versions that had
                // feedback in versionWindow and that no endpoint serves any more (`unless on
                // (model_name, version)`), `unknown` left out, with versionMinVolume events together.
                // `group_left`: during a rollout several versions are served, each compared with the
                // ones gone. A model with one version, or whose old version is still served
                // somewhere, has no right side: no alert (LLMModelVersionSkew covers a stuck rollout).
                lib.fmt(|||
                  (
                    %(ratio)s{version!="unknown"}
                    and on (model_name, version)
                    %(served)s
                    and on (model_name, version)
                    %(volume)s >= %(min)s
                  )
                  > on (model_name) group_left ()
                  (%(previous)s + %(margin)s)
                |||, {
                  ratio: names.ratio(vw),
                  served: served,
                  volume: names.volume(vw),
                  min: f.versionMinVolume,
                  previous: names.previous,
                  margin: f.versionMargin,
                }),
                'warning', 'A new model version is rated worse than the one it replaced.',
                lib.fmt('{{ $value | humanizePercentage }} of the feedback on {{ $labels.model_name }} version {{ $labels.version }}, served now, over the last %(window)s is negative: more than %(margin)s points above the versions it replaced. Compare the versions\' feedback and probes before rolling forward; roll back if it holds.', {
                  window: lib.humanDuration(vw),
                  margin: lib.num(f.versionMargin * 100),
                }),
                f.versionFor),
          alert('LLMFeedbackRejected',
                lib.fmt(|||
                  %(ratio)s > %(max)s
                  and on (job, reason)
                  %(rate)s * %(seconds)s >= %(min)s
                |||, {
                  ratio: names.rejectedRatio,
                  max: f.rejectedRatio,
                  rate: names.rejected,
                  seconds: lib.seconds(rw),
                  min: f.rejectedMinEvents,
                }),
                'warning', 'The feedback service rejects much of the feedback it receives.',
                lib.fmt('{{ $labels.job }} rejects {{ $value | humanizePercentage }} of the feedback it receives with reason {{ $labels.reason }} (over %(window)s): a client sends unknown scores, out-of-range values or malformed bodies, and that feedback is lost.', {
                  window: lib.humanDuration(rw),
                }),
                f.rejectedFor),
        ],
      },
    ],
  },
}
