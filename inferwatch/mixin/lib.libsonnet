// Helpers the mixin areas share (import 'lib.libsonnet'): text templating, durations, PromQL
// strings and per-model branches, and the names one area records and another reads. Everything
// here is a function of its arguments (usually `_config`): no area reads another area's fields.
{
  // `%(key)s` substitution, as `template % values` but fast: std.format (`%`) walks its template
  // one character at a time and formats numbers in jsonnet code, which made rendering the mixin
  // take seconds. So the areas use fmt, `+` and num, never `%`.
  fmt(template, values)::
    std.foldl(
      function(text, key)
        local v = values[key];
        std.strReplace(text, '%(' + key + ')s', if std.isString(v) then v else $.num(v)),
      std.objectFields(values),
      template,
    ),

  // A number as %g would print it ('0.99', '14.4', '2', '900'), fast for the usual config values.
  num(x)::
    local decimals(k) = if k > 9 then null else if std.round(x * std.pow(10, k)) / std.pow(10, k) == x then k else decimals(k + 1);
    local k = decimals(0);
    if k == null || std.abs(x) >= 1e15 then '%g' % x
    else if k == 0 then std.toString(x)
    else
      local digits = std.toString(std.round(std.abs(x) * std.pow(10, k)));
      local padded = std.repeat('0', std.max(0, k + 1 - std.length(digits))) + digits;
      local split = std.length(padded) - k;
      (if x < 0 then '-' else '') + std.substr(padded, 0, split) + '.' + std.substr(padded, split, k),

  // `text` without its final newline (std.rstripChars copies the string once per character: slow).
  chomp(text):: if std.length(text) > 0 && std.substr(text, std.length(text) - 1, 1) == '\n'
  then std.substr(text, 0, std.length(text) - 1) else text,

  // -- durations ----------------------------------------------------------------------------------
  local units = { s: 1, m: 60, h: 3600, d: 86400, w: 604800, y: 31536000 },

  // Seconds in a single-unit Prometheus duration ('90s', '10m', '2h', '1d', '1w').
  seconds(duration)::
    local unit = std.substr(duration, std.length(duration) - 1, 1);
    assert std.objectHas(units, unit) : 'unsupported duration ' + duration + ' (use one unit: s, m, h, d, w, y)';
    std.parseInt(std.substr(duration, 0, std.length(duration) - 1)) * units[unit],

  // A duration for PromQL from seconds: whole minutes as 'Nm', else 'Ns'.
  duration(seconds):: if seconds % 60 == 0 then $.num(seconds / 60) + 'm' else $.num(seconds) + 's',

  // '10m' -> '10 minutes', '1h' -> '1 hour' (for descriptions).
  humanDuration(duration)::
    local words = { s: 'second', m: 'minute', h: 'hour', d: 'day', w: 'week', y: 'year' };
    local n = std.parseInt(std.substr(duration, 0, std.length(duration) - 1));
    std.toString(n) + ' ' + words[std.substr(duration, std.length(duration) - 1, 1)] + (if n == 1 then '' else 's'),

  // -- PromQL text --------------------------------------------------------------------------------
  // The inside of a double-quoted PromQL string.
  quote(text):: std.strReplace(std.strReplace(text, '\\', '\\\\'), '"', '\\"'),
  // A regular expression matching exactly one of `values`, quoted for a =~ / !~ matcher.
  anyOf(values)::
    local escape(text) = std.foldl(function(t, ch) std.strReplace(t, ch, '\\' + ch), std.stringChars('\\.+*?()|[]{}^$'), text);
    $.quote(std.join('|', [escape(v) for v in values])),

  // One value per model from a recorded per-model series `series`: `overrides` (model_name ->
  // number) first, `default` for every other model.
  perModel(series, default, overrides)::
    std.join(' or ', [
      $.fmt('0 * %(s)s{model_name="%(m)s"} + %(v)s', { s: series, m: $.quote(m), v: overrides[m] })
      for m in std.objectFields(overrides)
    ] + [$.fmt('0 * %(s)s + %(v)s', { s: series, v: default })]),

  // Per-model variants of an expression: `branch(matcher, value)` renders it for a label matcher
  // (to add inside the selectors' braces, with its leading comma) and a value. One branch per model
  // whose value differs from `default`, plus a default branch that excludes those models.
  perModelBranches(branch, default, overrides)::
    local special = std.filter(function(m) overrides[m] != default, std.objectFields(overrides));
    local parenthesised(text) = '(\n  ' + std.strReplace($.chomp(text), '\n', '\n  ') + '\n)';
    if special == [] then branch('', default)
    else std.join('\nor\n', [
      parenthesised(branch(',model_name="' + $.quote(m) + '"', overrides[m]))
      for m in special
    ] + [parenthesised(branch(',model_name!~"' + $.anyOf(special) + '"', default))]),

  // -- names shared between areas ----------------------------------------------------------------
  // Recorded by serving.libsonnet, read by the adaptive, errors, engine and GPU areas.
  names(c):: {
    local w = c.rateWindow,
    histograms: {
      // short name -> recorded metric name (engine-neutral)
      ttft: 'llm_time_to_first_token_seconds',
      itl: 'llm_inter_token_latency_seconds',
      e2e: 'llm_e2e_request_latency_seconds',
      queue: 'llm_request_queue_time_seconds',
    },
    quantile(histogram, q):: 'model_name:' + self.histograms[histogram] + ':p' + $.num(q * 100) + '_rate' + w,
    requestRate: 'model_name:llm_requests:rate' + w,
    promptTokensRate: 'model_name:llm_prompt_tokens:rate' + w,
    generationTokensRate: 'model_name:llm_generation_tokens:rate' + w,
    preemptionsRate: 'model_name:llm_preemptions:rate' + w,
    kvCacheUsage: 'model_name:llm_kv_cache_usage:max',
    requestsWaiting: 'model_name:llm_requests_waiting:sum',
    requestsRunning: 'model_name:llm_requests_running:sum',
    requestsByReasonRate: 'model_name_finished_reason:llm_requests:rate' + w,
    replicas: 'model_name:llm_serving_replicas:count',
    loadPerReplica: 'model_name:llm_requests_per_replica:rate' + w,
  },

  // -- alerts -------------------------------------------------------------------------------------
  // An alert without the labels and annotations every alert shares (see withSharedFields).
  alert(name, expr, severity, summary, description, forDuration=null, labels={}):: {
    alert: name,
    expr: expr,
    labels: { severity: severity } + labels,
    annotations: { summary: summary, description: description },
  } + (if forDuration != null then { 'for': forDuration } else {}),

  // The one place alerts get their team/service labels (an area may set its own team) and
  // runbook: runbookBase + lower-case name + '.md' (docs/runbooks/).
  withSharedFields(alerts, c):: alerts {
    groups: [
      group {
        rules: [
          rule {
            labels: { team: c.team, service: c.service } + super.labels,
            annotations+: { runbook_url: c.runbookBase + std.asciiLower(rule.alert) + '.md' },
          }
          for rule in super.rules
        ],
      }
      for group in super.groups
    ],
  },
}
