"""The GPU exporter's metric families, and how each renders in inferwatch or DCGM naming.

Readers produce kit `Sample`s keyed by the *inferwatch* family name in base units; rendering
picks the exposed name, unit and label names. The table is the kit's `FamilyTable`, so
`describe()` lists every family without touching NVML, and the DCGM mode is one lookup per family.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from inferwatch.kit.families import Family, FamilyTable, Kind, Sample

__all__ = ["FAMILIES", "FAMILY_LIST", "GPU_LABELS", "PREFIX", "TABLE", "GpuFamily", "Sample"]

PREFIX = "inferwatch_gpu_"

# Identity labels on every per-GPU series (dcgm-exporter does the same, so no joins are needed).
GPU_LABELS = ("gpu", "uuid", "pci_bus_id", "model", "hostname")

# dcgm-exporter's (legacy, widely deployed) label names for the same identity.
DCGM_LABEL_NAMES = {"uuid": "UUID", "model": "modelName", "hostname": "Hostname"}

MIB = 1024 * 1024


@dataclass(frozen=True)
class GpuFamily(Family):
    """A kit family plus how it renders in dcgm-exporter naming."""

    per_gpu: bool = True
    # DCGM naming: a fixed name, or a function of the sample's extra labels; None = keep ours.
    dcgm: str | Callable[[dict[str, str]], str] | None = None
    dcgm_scale: float = 1.0  # multiply our base-unit value to get DCGM's unit
    dcgm_only: bool = False  # exists only to mirror a DCGM family (e.g. bitmask)


def _F(name: str, kind: Kind, help: str, labels: tuple[str, ...] = (), per_gpu: bool = True,
       **dcgm: Any) -> GpuFamily:
    """Per-GPU families carry the identity labels first, then their own."""
    return GpuFamily(name, kind, help, (*GPU_LABELS, *labels) if per_gpu else labels, per_gpu=per_gpu, **dcgm)


def _dcgm_ecc(labels: dict[str, str]) -> str:
    kind = {"single_bit": "SBE", "double_bit": "DBE"}[labels.pop("error_type")]
    scope = {"volatile": "VOL", "aggregate": "AGG"}[labels.pop("scope")]
    return f"DCGM_FI_DEV_ECC_{kind}_{scope}_TOTAL"


def _dcgm_by_label(label: str, names: dict[str, str]) -> Callable[[dict[str, str]], str]:
    def pick(labels: dict[str, str]) -> str:
        return names[labels.pop(label)]

    return pick


FAMILY_LIST: list[Family] = [
    _F("up", "gauge", "1 if the GPU answered NVML on the last collection, 0 if it is lost or failing."),
    _F("utilization_ratio", "gauge", "Fraction of time a kernel was running on the GPU.",
       dcgm="DCGM_FI_DEV_GPU_UTIL", dcgm_scale=100),
    _F("memory_utilization_ratio", "gauge", "Fraction of time device memory was being read or written.",
       dcgm="DCGM_FI_DEV_MEM_COPY_UTIL", dcgm_scale=100),
    _F("encoder_utilization_ratio", "gauge", "Video encoder utilisation.",
       dcgm="DCGM_FI_DEV_ENC_UTIL", dcgm_scale=100),
    _F("decoder_utilization_ratio", "gauge", "Video decoder utilisation.",
       dcgm="DCGM_FI_DEV_DEC_UTIL", dcgm_scale=100),
    _F("memory_total_bytes", "gauge", "Framebuffer memory in total.",
       dcgm="DCGM_FI_DEV_FB_TOTAL", dcgm_scale=1 / MIB),
    _F("memory_used_bytes", "gauge", "Framebuffer memory in use.",
       dcgm="DCGM_FI_DEV_FB_USED", dcgm_scale=1 / MIB),
    _F("memory_free_bytes", "gauge", "Framebuffer memory free.",
       dcgm="DCGM_FI_DEV_FB_FREE", dcgm_scale=1 / MIB),
    _F("memory_reserved_bytes", "gauge", "Framebuffer memory reserved by the driver.",
       dcgm="DCGM_FI_DEV_FB_RESERVED", dcgm_scale=1 / MIB),
    _F("temperature_celsius", "gauge", "GPU die temperature.", dcgm="DCGM_FI_DEV_GPU_TEMP"),
    _F("memory_temperature_celsius", "gauge", "HBM memory temperature.", dcgm="DCGM_FI_DEV_MEMORY_TEMP"),
    _F("power_usage_watts", "gauge", "Power draw.", dcgm="DCGM_FI_DEV_POWER_USAGE"),
    _F("power_limit_watts", "gauge", "Enforced power limit.", dcgm="DCGM_FI_DEV_ENFORCED_POWER_LIMIT"),
    _F("energy_joules", "counter", "Energy consumed since the driver was loaded.",
       dcgm="DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", dcgm_scale=1000),
    _F("sm_clock_hertz", "gauge", "SM clock.", dcgm="DCGM_FI_DEV_SM_CLOCK", dcgm_scale=1e-6),
    _F("memory_clock_hertz", "gauge", "Memory clock.", dcgm="DCGM_FI_DEV_MEM_CLOCK", dcgm_scale=1e-6),
    _F("clock_event_active", "gauge",
       "1 while this reason is holding clocks down (NVML clock event / throttle reasons).",
       labels=("reason",)),
    _F("clock_event_reasons", "gauge", "Clock event reasons as NVML's bitmask.",
       dcgm="DCGM_FI_DEV_CLOCK_THROTTLE_REASONS", dcgm_only=True),
    _F("clock_event_duration_seconds", "counter", "Time clocks were held down, by policy.",
       labels=("reason",),
       dcgm=_dcgm_by_label("reason", {
           "power": "DCGM_FI_DEV_POWER_VIOLATION", "thermal": "DCGM_FI_DEV_THERMAL_VIOLATION",
           "sync_boost": "DCGM_FI_DEV_SYNC_BOOST_VIOLATION", "board_limit": "DCGM_FI_DEV_BOARD_LIMIT_VIOLATION",
           "low_utilization": "DCGM_FI_DEV_LOW_UTIL_VIOLATION",
           "reliability": "DCGM_FI_DEV_RELIABILITY_VIOLATION"}),
       dcgm_scale=1e9),
    _F("pcie_tx_bytes", "counter", "Bytes sent over PCIe."),
    _F("pcie_rx_bytes", "counter", "Bytes received over PCIe."),
    _F("pcie_replays", "counter", "PCIe replay (retry) events.", dcgm="DCGM_FI_DEV_PCIE_REPLAY_COUNTER"),
    _F("ecc_errors", "counter", "ECC memory errors.", labels=("error_type", "scope"), dcgm=_dcgm_ecc),
    _F("remapped_rows", "counter", "Memory rows remapped, by the error that caused it.",
       labels=("cause",),
       dcgm=_dcgm_by_label("cause", {"correctable": "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
                                     "uncorrectable": "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS"})),
    _F("row_remap_pending", "gauge", "1 if a row remap is pending (GPU reset needed).",
       dcgm="DCGM_FI_DEV_ROW_REMAP_PENDING"),
    _F("row_remap_failure", "gauge", "1 if a row remap failed (GPU needs service).",
       dcgm="DCGM_FI_DEV_ROW_REMAP_FAILURE"),
    _F("xid_errors", "counter", "XID errors reported by the driver, by XID code.", labels=("xid",)),
    _F("xid_last_timestamp_seconds", "gauge", "When each XID code was last seen.", labels=("xid",)),
    _F("xid_last_code", "gauge", "Code of the last XID seen (sticky, as dcgm-exporter).",
       dcgm="DCGM_FI_DEV_XID_ERRORS", dcgm_only=True),
    _F("nvlink_errors", "counter", "NVLink errors summed over links.", labels=("error_type",),
       dcgm=_dcgm_by_label("error_type", {
           "crc_flit": "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL",
           "crc_data": "DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL",
           "replay": "DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL",
           "recovery": "DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL"})),
    _F("mig_mode_enabled", "gauge", "1 if MIG mode is enabled on the GPU."),
    _F("mig_instance_info", "gauge", "One series per MIG instance (value 1).",
       labels=("gpu_instance_id", "compute_instance_id", "mig_uuid", "profile")),
    _F("mig_memory_used_bytes", "gauge", "Memory used inside a MIG instance.",
       labels=("gpu_instance_id", "compute_instance_id", "profile")),
    _F("mig_memory_total_bytes", "gauge", "Memory of a MIG instance.",
       labels=("gpu_instance_id", "compute_instance_id", "profile")),
    _F("container_memory_used_bytes", "gauge",
       "GPU memory used by the processes of one container (container_id \"\" = host processes).",
       labels=("container_id", "container_name", "pod_uid")),
    _F("container_processes", "gauge", "Processes of one container on the GPU.",
       labels=("container_id", "container_name", "pod_uid")),
    _F("driver_info", "gauge", "Driver, CUDA and NVML versions (value 1).",
       labels=("driver_version", "cuda_version", "nvml_version"), per_gpu=False),
    # The exporter's own health, beyond the kit's self-metrics.
    _F("exporter_nvml_up", "gauge", "1 if NVML is initialised; 0 with the reason as `error`.",
       labels=("error",), per_gpu=False),
    _F("exporter_devices", "gauge", "GPUs NVML reports.", per_gpu=False),
    _F("exporter_collect_duration_seconds", "gauge", "Wall time of the last NVML collection.",
       per_gpu=False),
    _F("exporter_collect_timeouts", "counter",
       "Scrapes that gave up waiting for NVML (a hung driver call).", per_gpu=False),
    _F("exporter_unsupported_probes", "gauge",
       "Probes learned as unsupported on this GPU (not retried).", labels=("gpu",), per_gpu=False),
    _F("exporter_xid_watcher_up", "gauge", "1 while the XID event thread is running.", per_gpu=False),
]
TABLE = FamilyTable(PREFIX, FAMILY_LIST)
FAMILIES: dict[str, GpuFamily] = {f.name: f for f in FAMILY_LIST}
# The kit's self-metrics (inferwatch_gpu_exporter_scrapes_total, ..._errors_total{stage,error}
# with stage = the NVML probe) come from `SelfMetrics("gpu")`, not from this table.
