// GPU area: fleet efficiency and cost (tokens per GPU-second, USD per million tokens) and the
// GPU hardware alerts (team gpuTeam), from the inferwatch GPU exporter.
local lib = import 'lib.libsonnet';

{
  local c = $._config,
  local n = lib.names(c),
  local g = c.gpu,
  local w = c.rateWindow,
  local sel = c.gpuSelector,
  local alert(name, expr, severity, summary, description, forDuration=null) =
    lib.alert(name, expr, severity, summary, description, forDuration, labels={ team: c.gpuTeam }),

  prometheusRules+:: {
    groups+: [
      {
        name: 'inferwatch.gpu.rules',
        rules: [
          {
            record: ':llm_generation_tokens_per_gpu_second:ratio_rate' + w,
            expr: lib.fmt(|||
              sum(%(generated)s)
              /
              (sum(inferwatch_gpu_up{%(gpu)s}) > 0)
            |||, { generated: n.generationTokensRate, gpu: sel }),
          },
          {
            record: ':llm_cost_usd_per_million_tokens:ratio_rate' + w,
            expr: lib.fmt(|||
              (sum(inferwatch_gpu_up{%(gpu)s}) * %(price)s / 3600)
              /
              ((sum(%(prompt)s) + sum(%(generated)s)) / 1e6 > 0)
            |||, { gpu: sel, price: c.gpuHourPriceUsd, prompt: n.promptTokensRate, generated: n.generationTokensRate }),
          },
        ],
      },
    ],
  },

  prometheusAlerts+:: {
    groups+: [
      {
        name: 'inferwatch.gpu.alerts',
        rules: [
          alert('GPULost', 'inferwatch_gpu_up{' + sel + '} == 0', 'critical',
                'A GPU has fallen off the bus or needs a reset.',
                'GPU {{ $labels.gpu }} ({{ $labels.uuid }}) on {{ $labels.hostname }} no longer answers NVML.', g.lostFor),
          alert('GPUNvmlUnavailable', 'inferwatch_gpu_exporter_nvml_up{' + sel + '} == 0', 'critical',
                'NVML is unavailable on a GPU host.',
                'The GPU exporter on {{ $labels.instance }} cannot initialise NVML ({{ $labels.error }}): driver missing or mismatched.',
                g.nvmlUnavailableFor),
          alert('GPUXidCriticalError',
                lib.fmt('time() - inferwatch_gpu_xid_last_timestamp_seconds{%(sel)s,xid=~"%(xids)s"} < %(window)s',
                        { sel: sel, xids: g.criticalXids, window: lib.seconds(g.xidWindow) }),
                'critical', 'A GPU reported a critical XID error.',
                'GPU {{ $labels.gpu }} on {{ $labels.hostname }} reported XID {{ $labels.xid }} in the last '
                + lib.humanDuration(g.xidWindow) + '.'),
          alert('GPUEccDoubleBitError',
                'inferwatch_gpu_ecc_errors_total{' + sel + ',error_type="double_bit",scope="volatile"} > 0',
                'critical', 'A GPU has uncorrectable (double-bit) ECC errors.',
                'GPU {{ $labels.gpu }} on {{ $labels.hostname }} has {{ $value }} double-bit ECC errors since the driver loaded.'),
          alert('GPURowRemapFailure', 'inferwatch_gpu_row_remap_failure{' + sel + '} == 1', 'critical',
                'A GPU failed to remap a memory row.',
                'GPU {{ $labels.gpu }} ({{ $labels.uuid }}) on {{ $labels.hostname }} could not remap a faulty row: it needs service.'),
          alert('GPURowRemapPending', 'inferwatch_gpu_row_remap_pending{' + sel + '} == 1', 'warning',
                'A GPU has a row remap pending.',
                'GPU {{ $labels.gpu }} on {{ $labels.hostname }} needs a reset to apply a pending row remap.', g.rowRemapPendingFor),
          alert('GPUThermalThrottling',
                'max without (reason) (inferwatch_gpu_clock_event_active{' + sel
                + ',reason=~"hw_thermal_slowdown|sw_thermal_slowdown|hw_slowdown"}) == 1',
                'warning', 'A GPU is held down by thermal slowdown.',
                'GPU {{ $labels.gpu }} on {{ $labels.hostname }} has been thermally throttled for ' + g.thermalFor + ': check cooling.',
                g.thermalFor),
          alert('GPUPowerThrottling',
                lib.fmt(|||
                  inferwatch_gpu_clock_event_active{%(sel)s,reason="hw_power_brake_slowdown"} == 1
                  or
                  avg_over_time(inferwatch_gpu_clock_event_active{%(sel)s,reason="sw_power_cap"}[%(window)s]) > 0.5
                |||, { sel: sel, window: g.powerCapWindow }),
                'warning', 'A GPU is held down by its power limit.',
                'GPU {{ $labels.gpu }} on {{ $labels.hostname }} is power-throttled ({{ $labels.reason }}).', g.powerThrottlingFor),
          alert('GPUExporterCollectTimeouts',
                'increase(inferwatch_gpu_exporter_collect_timeouts_total{' + sel + '}[' + g.collectTimeoutWindow + ']) > 0',
                'warning', 'NVML calls are hanging on a GPU host.',
                'The GPU exporter on {{ $labels.instance }} gave up waiting for NVML in the last '
                + lib.humanDuration(g.collectTimeoutWindow) + ': a driver call hangs.'),
        ],
      },
    ],
  },
}
