"""GPU: per node and GPU, utilisation, memory, power, heat, clocks and throttling, hardware errors, the exporter.

Reads the inferwatch GPU exporter's own names (`inferwatch_gpu_*`); `hostname` is the node.
"""

from __future__ import annotations

from inferwatch.dashboards import common as c

NAME = "gpu"
G = 'hostname=~"$node", gpu=~"$gpu"'
LEGEND = "{{hostname}} GPU {{gpu}}"

HEALTH_MAPPINGS = [
    {"type": "value", "options": {"0": {"text": "ok", "color": "green", "index": 0}}},
    {"type": "range", "options": {"from": 1, "to": 1e12, "result": {"text": "event", "color": "red", "index": 1}}},
]
UP_MAPPINGS = [
    {"type": "value", "options": {"1": {"text": "up", "color": "green", "index": 0},
                                  "0": {"text": "lost", "color": "red", "index": 1}}},
]


def build():
    node = c.query_variable("node", "Node", "label_values(inferwatch_gpu_up, hostname)")
    gpu = c.query_variable("gpu", "GPU", 'label_values(inferwatch_gpu_up{hostname=~"$node"}, gpu)')
    y = 0
    top = [
        c.stat("GPUs up", "GPUs answering NVML out of those the exporter knows. Fewer than expected: GPULost"
               " (fell off the bus or needs a reset) or an exporter down.",
               [c.target(f"sum(inferwatch_gpu_up{{{G}}})", "up"), c.target(f"count(inferwatch_gpu_up{{{G}}})",
                                                                           "known", "B")],
               "short", c.grid(0, y, 4, 4)),
        c.stat("Mean utilisation", "Mean kernel-busy fraction over the selected GPUs. Low utilisation with queued"
               " requests means the engine, not the GPU, is the bottleneck.",
               [c.target(f"avg(inferwatch_gpu_utilization_ratio{{{G}}})")], "percentunit", c.grid(4, y, 4, 4),
               thresholds=c.steps((c.BLUE, None))),
        c.stat("Memory used", "Framebuffer memory in use over the selected GPUs (vLLM reserves most of it for the"
               " KV cache up front, so high is normal).",
               [c.target(f"sum(inferwatch_gpu_memory_used_bytes{{{G}}})"
                         f" / sum(inferwatch_gpu_memory_total_bytes{{{G}}})")],
               "percentunit", c.grid(8, y, 4, 4), thresholds=c.steps((c.BLUE, None), (c.ORANGE, 0.97))),
        c.stat("Power draw", "Total board power of the selected GPUs. Far below the limits under load: the GPUs"
               " wait on the engine.",
               [c.target(f"sum(inferwatch_gpu_power_usage_watts{{{G}}})")], "watt", c.grid(12, y, 4, 4)),
        c.stat("Hottest GPU", "Highest core temperature. Above ~85 °C most GPUs start thermal slowdown.",
               [c.target(f"max(inferwatch_gpu_temperature_celsius{{{G}}})")], "celsius", c.grid(16, y, 4, 4),
               thresholds=c.steps((c.GREEN, None), (c.ORANGE, 80), (c.RED, 87))),
        c.stat("Throttled GPUs", "GPUs whose clocks a thermal or power reason is holding down now"
               " (idle and application-clock reasons are not counted).",
               [c.target(f"count(max by (hostname, gpu) (inferwatch_gpu_clock_event_active{{{G},"
                         ' reason!~"gpu_idle|applications_clocks_setting|display_clock_setting"}) > 0) or vector(0)')],
               "short", c.grid(20, y, 4, 4), thresholds=c.steps((c.GREEN, None), (c.ORANGE, 1))),
    ]
    y = 4
    usage = [
        c.row("Utilisation and memory", y),
        c.timeseries("GPU utilisation", "Fraction of time a kernel was running, per GPU.",
                     c.targets((f"inferwatch_gpu_utilization_ratio{{{G}}}", LEGEND)), "percentunit",
                     c.grid(0, y + 1, 12, 8), min_value=0, max_value=1),
        c.timeseries("Memory used", "Framebuffer memory used per GPU; the dashed line is each GPU's total.",
                     c.targets((f"inferwatch_gpu_memory_used_bytes{{{G}}}", LEGEND),
                               (f"inferwatch_gpu_memory_total_bytes{{{G}}}", LEGEND + " total")),
                     "bytes", c.grid(12, y + 1, 12, 8), fill=0,
                     overrides=[c.dashed(".* total")]),
        c.bargauge("Memory used per container", "GPU memory held by each container's processes (container_id \"\""
                   " is processes on the host). One container far above its share: a leak or a second engine.",
                   [c.target(f"sum by (hostname, gpu, container_name, container_id) "
                             f"(inferwatch_gpu_container_memory_used_bytes{{{G}}})",
                             "{{hostname}} GPU {{gpu}} {{container_name}} {{container_id}}", instant=True)],
                   "bytes", c.grid(0, y + 9, 12, 8), thresholds=c.NEUTRAL, min_value=0, max_value=None),
        c.timeseries("Memory bandwidth utilisation", "Fraction of time device memory was being read or written;"
                     " decode is memory-bound, so this tracks generated tokens.",
                     c.targets((f"inferwatch_gpu_memory_utilization_ratio{{{G}}}", LEGEND)), "percentunit",
                     c.grid(12, y + 9, 12, 8), min_value=0, max_value=1),
    ]
    y = 21
    power = [
        c.row("Power, temperature and clocks", y),
        c.timeseries("Power draw", "Board power per GPU; dashed: the enforced power limit. At the limit, clocks"
                     " drop (see throttle reasons).",
                     c.targets((f"inferwatch_gpu_power_usage_watts{{{G}}}", LEGEND),
                               (f"inferwatch_gpu_power_limit_watts{{{G}}}", LEGEND + " limit")),
                     "watt", c.grid(0, y + 1, 8, 8), fill=0,
                     overrides=[c.dashed(".* limit")]),
        c.timeseries("Temperature", "Core (and, where reported, memory) temperature per GPU.",
                     c.targets((f"inferwatch_gpu_temperature_celsius{{{G}}}", LEGEND),
                               (f"inferwatch_gpu_memory_temperature_celsius{{{G}}}", LEGEND + " memory")),
                     "celsius", c.grid(8, y + 1, 8, 8), fill=0,
                     thresholds=c.steps((c.GREEN, None), (c.RED, 87))),
        c.timeseries("Clocks", "SM and memory clocks per GPU. SM clock dropping under load with a throttle reason"
                     " active: thermal or power limits are costing throughput.",
                     c.targets((f"inferwatch_gpu_sm_clock_hertz{{{G}}}", LEGEND + " SM"),
                               (f"inferwatch_gpu_memory_clock_hertz{{{G}}}", LEGEND + " memory")),
                     "hertz", c.grid(16, y + 1, 8, 8), fill=0),
        c.state_timeline("Throttle reasons", "Which reasons hold clocks down over time, per GPU (1 = active)."
                         " hw_slowdown, thermal or power brake: check cooling and power; sw_power_cap: at the power"
                         " limit.",
                         [c.target(f"max by (hostname, gpu, reason) (inferwatch_gpu_clock_event_active{{{G},"
                                   ' reason!~"gpu_idle|applications_clocks_setting|display_clock_setting"})',
                                   LEGEND + " {{reason}}")],
                         "none", c.grid(0, y + 9, 24, 8),
                         mappings=[{"type": "value", "options": {"0": {"text": "none", "color": "green", "index": 0},
                                                                 "1": {"text": "active", "color": "orange",
                                                                       "index": 1}}}],
                         thresholds=c.steps((c.GREEN, None), (c.ORANGE, 1))),
    ]
    y = 38
    errors = [
        c.row("Hardware errors", y),
        c.state_timeline("ECC, XID and row-remap events", "New hardware errors per GPU over the last interval:"
                         " double-bit ECC errors, XID errors (any code), rows remapped, a pending remap (reset"
                         " needed) or a failed remap (service the GPU). Green is none.",
                         [c.target(f"sum by (hostname, gpu) (increase(inferwatch_gpu_ecc_errors_total{{{G},"
                                   f' error_type="double_bit", scope="volatile"}}[$__rate_interval]))',
                                   LEGEND + " ECC DBE"),
                          c.target(f"sum by (hostname, gpu) (increase(inferwatch_gpu_xid_errors_total{{{G}}}"
                                   "[$__rate_interval]))", LEGEND + " XID", "B"),
                          c.target(f"sum by (hostname, gpu) (increase(inferwatch_gpu_remapped_rows_total{{{G}}}"
                                   "[$__rate_interval]))", LEGEND + " rows remapped", "C"),
                          c.target(f"max by (hostname, gpu) (inferwatch_gpu_row_remap_pending{{{G}}}"
                                   f" + inferwatch_gpu_row_remap_failure{{{G}}})", LEGEND + " remap pending/failed",
                                   "D")],
                         "short", c.grid(0, y + 1, 16, 8), mappings=HEALTH_MAPPINGS,
                         thresholds=c.steps((c.GREEN, None), (c.RED, 1))),
        c.table("Error totals", "Counts since the exporter started, per GPU: single- and double-bit ECC"
                " (aggregate), XID errors by code, PCIe replays. A rising single-bit count predicts a row remap.",
                [c.target(f"sum by (hostname, gpu, error_type) (inferwatch_gpu_ecc_errors_total{{{G},"
                          ' scope="aggregate"})', instant=True, fmt="table"),
                 c.target(f"sum by (hostname, gpu, xid) (inferwatch_gpu_xid_errors_total{{{G}}})", ref="B",
                          instant=True, fmt="table"),
                 c.target(f"sum by (hostname, gpu) (inferwatch_gpu_pcie_replays_total{{{G}}})", ref="C",
                          instant=True, fmt="table")],
                "short", c.grid(16, y + 1, 8, 8),
                transformations=[{"id": "merge", "options": {}},
                                 {"id": "organize", "options": {"excludeByName": {"Time": True}}}]),
    ]
    y = 47
    exporter = [
        c.row("Exporter health", y),
        c.state_timeline("GPU and NVML state", "Each GPU up (answering NVML) or lost, and NVML itself on each node"
                         " (0 = not initialised, driver missing or broken).",
                         [c.target(f"inferwatch_gpu_up{{{G}}}", LEGEND),
                          c.target("max by (instance) (inferwatch_gpu_exporter_nvml_up)", "NVML {{instance}}", "B")],
                         "none", c.grid(0, y + 1, 12, 7), mappings=UP_MAPPINGS,
                         thresholds=c.steps((c.RED, None), (c.GREEN, 1))),
        c.timeseries("Collection time and errors", "How long the exporter's NVML collection takes, and its errors"
                     " and timeouts per second. Timeouts mean a hung NVML call (the scrape answers without GPU"
                     " data); errors name the probe in `stage`.",
                     c.targets(("max by (instance) (inferwatch_gpu_exporter_collect_duration_seconds)",
                                "{{instance}} collect"),
                               ("sum by (instance) (rate(inferwatch_gpu_exporter_collect_timeouts_total"
                                "[$__rate_interval]))", "{{instance}} timeouts/s"),
                               ("sum by (instance, stage) (rate(inferwatch_gpu_exporter_errors_total"
                                "[$__rate_interval]))", "{{instance}} errors/s {{stage}}")),
                     "s", c.grid(12, y + 1, 12, 7), fill=0,
                     overrides=[{"matcher": {"id": "byRegexp", "options": ".*/s.*"},
                                 "properties": [{"id": "unit", "value": "short"},
                                                {"id": "custom.axisPlacement", "value": "right"}]}]),
    ]
    return c.dashboard(
        NAME, "inferwatch / GPU",
        "Per node and GPU: utilisation, memory (per container too), power, temperature, clocks and throttle reasons,"
        " ECC/XID/row-remap events and the GPU exporter's own health.",
        [node, gpu], [*top, *usage, *power, *errors, *exporter])
