"""Reads every GPU through NVML into `Sample`s, one device at a time, surviving broken devices.

Policy per NVML error (see docs/architecture.md): unsupported -> remembered per (GPU, probe) and
never asked again; GPU lost -> that GPU is `up 0` and skipped; anything else -> counted in
`exporter_errors_total{stage,error}` (stage = the probe) and the next probe runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pynvml as nv

from inferwatch.exporters.gpu.containers import ContainerResolver
from inferwatch.exporters.gpu.metrics import Sample
from inferwatch.exporters.gpu.nvml import LOST_CODES, UNSUPPORTED_CODES, error_name, text
from inferwatch.kit.selfmetrics import SelfMetrics

# (field id, family, extra labels, scale to base unit). One nvmlDeviceGetFieldValues call each round.
FIELDS: list[tuple[int, str, dict[str, str], float]] = [
    (nv.NVML_FI_DEV_MEMORY_TEMP, "memory_temperature_celsius", {}, 1.0),
    (nv.NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION, "energy_joules", {}, 1e-3),
    (nv.NVML_FI_DEV_PCIE_REPLAY_COUNTER, "pcie_replays", {}, 1.0),
    (nv.NVML_FI_DEV_PCIE_COUNT_TX_BYTES, "pcie_tx_bytes", {}, 1.0),
    (nv.NVML_FI_DEV_PCIE_COUNT_RX_BYTES, "pcie_rx_bytes", {}, 1.0),
    (nv.NVML_FI_DEV_ECC_SBE_VOL_TOTAL, "ecc_errors", {"error_type": "single_bit", "scope": "volatile"}, 1.0),
    (nv.NVML_FI_DEV_ECC_DBE_VOL_TOTAL, "ecc_errors", {"error_type": "double_bit", "scope": "volatile"}, 1.0),
    (nv.NVML_FI_DEV_ECC_SBE_AGG_TOTAL, "ecc_errors", {"error_type": "single_bit", "scope": "aggregate"}, 1.0),
    (nv.NVML_FI_DEV_ECC_DBE_AGG_TOTAL, "ecc_errors", {"error_type": "double_bit", "scope": "aggregate"}, 1.0),
    (nv.NVML_FI_DEV_REMAPPED_COR, "remapped_rows", {"cause": "correctable"}, 1.0),
    (nv.NVML_FI_DEV_REMAPPED_UNC, "remapped_rows", {"cause": "uncorrectable"}, 1.0),
    (nv.NVML_FI_DEV_REMAPPED_PENDING, "row_remap_pending", {}, 1.0),
    (nv.NVML_FI_DEV_REMAPPED_FAILURE, "row_remap_failure", {}, 1.0),
    # Perf-policy counters are cumulative nanoseconds of clock reduction.
    (nv.NVML_FI_DEV_PERF_POLICY_POWER, "clock_event_duration_seconds", {"reason": "power"}, 1e-9),
    (nv.NVML_FI_DEV_PERF_POLICY_THERMAL, "clock_event_duration_seconds", {"reason": "thermal"}, 1e-9),
    (nv.NVML_FI_DEV_PERF_POLICY_SYNC_BOOST, "clock_event_duration_seconds", {"reason": "sync_boost"}, 1e-9),
    (nv.NVML_FI_DEV_PERF_POLICY_BOARD_LIMIT, "clock_event_duration_seconds", {"reason": "board_limit"}, 1e-9),
    (nv.NVML_FI_DEV_PERF_POLICY_LOW_UTILIZATION, "clock_event_duration_seconds",
     {"reason": "low_utilization"}, 1e-9),
    (nv.NVML_FI_DEV_PERF_POLICY_RELIABILITY, "clock_event_duration_seconds", {"reason": "reliability"}, 1e-9),
    (nv.NVML_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL, "nvlink_errors", {"error_type": "crc_flit"}, 1.0),
    (nv.NVML_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL, "nvlink_errors", {"error_type": "crc_data"}, 1.0),
    (nv.NVML_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL, "nvlink_errors", {"error_type": "replay"}, 1.0),
    (nv.NVML_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL, "nvlink_errors", {"error_type": "recovery"}, 1.0),
]

CLOCK_EVENT_REASONS: dict[str, int] = {
    "gpu_idle": nv.nvmlClocksEventReasonGpuIdle,
    "applications_clocks_setting": nv.nvmlClocksEventReasonApplicationsClocksSetting,
    "sw_power_cap": nv.nvmlClocksEventReasonSwPowerCap,
    "hw_slowdown": nv.nvmlClocksEventReasonHwSlowdown,
    "sync_boost": nv.nvmlClocksEventReasonSyncBoost,
    "sw_thermal_slowdown": nv.nvmlClocksEventReasonSwThermalSlowdown,
    "hw_thermal_slowdown": nv.nvmlClocksEventReasonHwThermalSlowdown,
    "hw_power_brake_slowdown": nv.nvmlClocksEventReasonHwPowerBrakeSlowdown,
    "display_clock_setting": nv.nvmlClocksEventReasonDisplayClockSetting,
}

_VALUE_FIELDS = {
    nv.NVML_VALUE_TYPE_DOUBLE: "dVal",
    nv.NVML_VALUE_TYPE_UNSIGNED_INT: "uiVal",
    nv.NVML_VALUE_TYPE_UNSIGNED_LONG: "ulVal",
    nv.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG: "ullVal",
    nv.NVML_VALUE_TYPE_SIGNED_LONG_LONG: "sllVal",
    nv.NVML_VALUE_TYPE_SIGNED_INT: "siVal",
    nv.NVML_VALUE_TYPE_UNSIGNED_SHORT: "usVal",
}
_MIG_PROFILE = re.compile(r"MIG\s+(\S+)")


class DeviceLost(Exception):
    """The GPU answered GpuIsLost/ResetRequired: stop reading it this round."""


@dataclass
class _Device:
    """What we remember about one GPU index between collections."""

    labels: dict[str, str]
    unsupported: set[str] = field(default_factory=set)


class DeviceReader:
    """Turns NVML into samples. Not thread-safe: the collector calls it from one worker thread."""

    def __init__(
        self,
        nvml: Any,
        hostname: str,
        self_metrics: SelfMetrics,
        containers: ContainerResolver | None = None,
        max_containers_per_gpu: int = 32,
        xid_samples: Callable[[str, dict[str, str]], list[Sample]] | None = None,
    ):
        self.nv = nvml
        self.hostname = hostname
        self.containers = containers
        self.max_containers = max_containers_per_gpu
        self.xid_samples = xid_samples
        self.self_metrics = self_metrics
        self.devices: dict[int, _Device] = {}
        self.device_count = 0

    # -- one collection ------------------------------------------------------------------
    def read(self) -> list[Sample]:
        samples: list[Sample] = []
        samples.extend(self._driver_info())
        count = self._call(None, "device_count", self.nv.nvmlDeviceGetCount)
        self.device_count = count or 0
        for index in range(self.device_count):
            samples.extend(self._read_device(index))
        return samples

    def _driver_info(self) -> list[Sample]:
        driver = self._call(None, "driver_version", self.nv.nvmlSystemGetDriverVersion)
        cuda = self._call(None, "cuda_version", self.nv.nvmlSystemGetCudaDriverVersion)
        nvml = self._call(None, "nvml_version", self.nv.nvmlSystemGetNVMLVersion)
        cuda_text = f"{cuda // 1000}.{cuda % 1000 // 10}" if isinstance(cuda, int) else ""
        labels = {
            "driver_version": text(driver) if driver else "",
            "cuda_version": cuda_text,
            "nvml_version": text(nvml) if nvml else "",
        }
        return [Sample("driver_info", labels, 1.0)]

    def _read_device(self, index: int) -> list[Sample]:
        device = self.devices.get(index)
        try:
            handle = self._raw(self.nv.nvmlDeviceGetHandleByIndex, index)
            if device is None:
                device = self.devices[index] = _Device(self._identity(index, handle))
            labels = device.labels
            samples = [Sample("up", labels, 1.0)]
            samples += self._basic(device, handle)
            samples += self._fields(device, handle)
            samples += self._clock_events(device, handle)
            samples += self._mig(device, handle)
            samples += self._processes(device, handle)
        except DeviceLost:
            labels = device.labels if device else self._unknown_identity(index)
            return [Sample("up", labels, 0.0)]
        except nv.NVMLError as exc:  # handle or identity unreadable: count it, report the GPU down
            self.count_error("device_handle", exc)
            labels = device.labels if device else self._unknown_identity(index)
            return [Sample("up", labels, 0.0)]
        if self.xid_samples is not None:
            samples += self.xid_samples(labels["uuid"], labels)
        return samples

    def _identity(self, index: int, handle: Any) -> dict[str, str]:
        return {
            "gpu": str(index),
            "uuid": text(self._raw(self.nv.nvmlDeviceGetUUID, handle)),
            "pci_bus_id": text(self._raw(self.nv.nvmlDeviceGetPciInfo, handle).busId),
            "model": text(self._raw(self.nv.nvmlDeviceGetName, handle)),
            "hostname": self.hostname,
        }

    def _unknown_identity(self, index: int) -> dict[str, str]:
        return {"gpu": str(index), "uuid": "", "pci_bus_id": "", "model": "", "hostname": self.hostname}

    # -- probes ------------------------------------------------------------------------
    def _basic(self, dev: _Device, h: Any) -> list[Sample]:
        out: list[Sample] = []
        add = out.append
        labels = dev.labels
        util = self._call(dev, "utilization", self.nv.nvmlDeviceGetUtilizationRates, h)
        if util is not None:
            add(Sample("utilization_ratio", labels, util.gpu / 100))
            add(Sample("memory_utilization_ratio", labels, util.memory / 100))
        for probe, fn, family in (
            ("encoder_utilization", self.nv.nvmlDeviceGetEncoderUtilization, "encoder_utilization_ratio"),
            ("decoder_utilization", self.nv.nvmlDeviceGetDecoderUtilization, "decoder_utilization_ratio"),
        ):
            value = self._call(dev, probe, fn, h)
            if value is not None:
                add(Sample(family, labels, value[0] / 100))
        mem = self._call(dev, "memory_v2", self.nv.nvmlDeviceGetMemoryInfo, h, self.nv.nvmlMemory_v2)
        if mem is None:
            mem = self._call(dev, "memory", self.nv.nvmlDeviceGetMemoryInfo, h)
        if mem is not None:
            add(Sample("memory_total_bytes", labels, float(mem.total)))
            add(Sample("memory_used_bytes", labels, float(mem.used)))
            add(Sample("memory_free_bytes", labels, float(mem.free)))
            if hasattr(mem, "reserved"):
                add(Sample("memory_reserved_bytes", labels, float(mem.reserved)))
        temp = self._call(dev, "temperature", self.nv.nvmlDeviceGetTemperature, h, self.nv.NVML_TEMPERATURE_GPU)
        if temp is not None:
            add(Sample("temperature_celsius", labels, float(temp)))
        power = self._call(dev, "power_usage", self.nv.nvmlDeviceGetPowerUsage, h)
        if power is not None:
            add(Sample("power_usage_watts", labels, power / 1000))
        limit = self._call(dev, "power_limit", self.nv.nvmlDeviceGetEnforcedPowerLimit, h)
        if limit is not None:
            add(Sample("power_limit_watts", labels, limit / 1000))
        for probe, clock, family in (
            ("sm_clock", self.nv.NVML_CLOCK_SM, "sm_clock_hertz"),
            ("memory_clock", self.nv.NVML_CLOCK_MEM, "memory_clock_hertz"),
        ):
            mhz = self._call(dev, probe, self.nv.nvmlDeviceGetClockInfo, h, clock)
            if mhz is not None:
                add(Sample(family, labels, mhz * 1e6))
        return out

    def _fields(self, dev: _Device, h: Any) -> list[Sample]:
        wanted = [f for f in FIELDS if f"field:{f[0]}" not in dev.unsupported]
        if not wanted:
            return []
        values = self._call(dev, "field_values", self.nv.nvmlDeviceGetFieldValues, h, [f[0] for f in wanted])
        if values is None:
            # Drivers without the field-values API: the main counters one call at a time.
            return self._fields_one_by_one(dev, h) if "field_values" in dev.unsupported else []
        out: list[Sample] = []
        for (field_id, family, extra, scale), value in zip(wanted, values, strict=True):
            ret = value.nvmlReturn
            if ret in LOST_CODES:
                raise DeviceLost
            if ret in UNSUPPORTED_CODES:
                dev.unsupported.add(f"field:{field_id}")
                continue
            if ret != nv.NVML_SUCCESS:
                self.count_error(f"field:{field_id}", nv.NVMLError(ret))
                continue
            attr = _VALUE_FIELDS.get(value.valueType)
            if attr is None:
                self.count_error(f"field:{field_id}", ValueError("valueType"))
                continue
            out.append(Sample(family, {**dev.labels, **extra}, float(getattr(value.value, attr)) * scale))
        return out

    def _fields_one_by_one(self, dev: _Device, h: Any) -> list[Sample]:
        out: list[Sample] = []
        energy = self._call(dev, "energy", self.nv.nvmlDeviceGetTotalEnergyConsumption, h)
        if energy is not None:
            out.append(Sample("energy_joules", dev.labels, energy / 1000))
        replays = self._call(dev, "pcie_replays", self.nv.nvmlDeviceGetPcieReplayCounter, h)
        if replays is not None:
            out.append(Sample("pcie_replays", dev.labels, float(replays)))
        for error_type, kind in (("single_bit", nv.NVML_MEMORY_ERROR_TYPE_CORRECTED),
                                 ("double_bit", nv.NVML_MEMORY_ERROR_TYPE_UNCORRECTED)):
            for scope, counter in (("volatile", nv.NVML_VOLATILE_ECC), ("aggregate", nv.NVML_AGGREGATE_ECC)):
                count = self._call(dev, f"ecc_{error_type}_{scope}", self.nv.nvmlDeviceGetTotalEccErrors, h, kind,
                                   counter)
                if count is not None:
                    labels = {**dev.labels, "error_type": error_type, "scope": scope}
                    out.append(Sample("ecc_errors", labels, float(count)))
        rows = self._call(dev, "remapped_rows", self.nv.nvmlDeviceGetRemappedRows, h)
        if rows is not None:
            correctable, uncorrectable, pending, failure = rows
            out.append(Sample("remapped_rows", {**dev.labels, "cause": "correctable"}, float(correctable)))
            out.append(Sample("remapped_rows", {**dev.labels, "cause": "uncorrectable"}, float(uncorrectable)))
            out.append(Sample("row_remap_pending", dev.labels, float(bool(pending))))
            out.append(Sample("row_remap_failure", dev.labels, float(bool(failure))))
        return out

    def _clock_events(self, dev: _Device, h: Any) -> list[Sample]:
        current = self._call(dev, "clock_events", self.nv.nvmlDeviceGetCurrentClocksEventReasons, h)
        if current is None:
            return []
        supported = self._call(dev, "clock_events_supported", self.nv.nvmlDeviceGetSupportedClocksEventReasons, h)
        mask = supported if supported is not None else ~0
        out = [Sample("clock_event_reasons", dev.labels, float(current))]
        for reason, bit in CLOCK_EVENT_REASONS.items():
            if mask & bit:
                out.append(Sample("clock_event_active", {**dev.labels, "reason": reason}, float(bool(current & bit))))
        return out

    def _mig(self, dev: _Device, h: Any) -> list[Sample]:
        mode = self._call(dev, "mig_mode", self.nv.nvmlDeviceGetMigMode, h)
        if mode is None:
            return []
        enabled = mode[0] == self.nv.NVML_DEVICE_MIG_ENABLE
        out = [Sample("mig_mode_enabled", dev.labels, float(enabled))]
        if not enabled:
            return out
        slots = self._call(dev, "mig_max_devices", self.nv.nvmlDeviceGetMaxMigDeviceCount, h) or 0
        for slot in range(slots):
            try:
                out += self._mig_slot(dev, h, slot)
            except nv.NVMLError as exc:  # one broken MIG instance: count it, keep the GPU and the others
                if exc.value not in UNSUPPORTED_CODES:  # unsupported = an empty slot, normal
                    self.count_error("mig_device", exc)
        return out

    def _mig_slot(self, dev: _Device, h: Any, slot: int) -> list[Sample]:
        mig = self._raw(self.nv.nvmlDeviceGetMigDeviceHandleByIndex, h, slot)
        ids = {
            "gpu_instance_id": str(self._raw(self.nv.nvmlDeviceGetGpuInstanceId, mig)),
            "compute_instance_id": str(self._raw(self.nv.nvmlDeviceGetComputeInstanceId, mig)),
        }
        match = _MIG_PROFILE.search(text(self._raw(self.nv.nvmlDeviceGetName, mig)))
        ids["profile"] = match.group(1) if match else ""
        uuid = text(self._raw(self.nv.nvmlDeviceGetUUID, mig))
        mem = self._raw(self.nv.nvmlDeviceGetMemoryInfo, mig)
        return [
            Sample("mig_instance_info", {**dev.labels, **ids, "mig_uuid": uuid}, 1.0),
            Sample("mig_memory_used_bytes", {**dev.labels, **ids}, float(mem.used)),
            Sample("mig_memory_total_bytes", {**dev.labels, **ids}, float(mem.total)),
        ]

    def _processes(self, dev: _Device, h: Any) -> list[Sample]:
        if self.containers is None:
            return []
        try:
            procs = self._call(dev, "processes", self.nv.nvmlDeviceGetComputeRunningProcesses, h)
        except self.nv.NVMLLibraryMismatchError:  # driver older than the binding's _v3 struct
            procs = self._call(dev, "processes_v2", self.nv.nvmlDeviceGetComputeRunningProcesses_v2, h)
        if procs is None:
            return []
        usage: dict[tuple[str, str, str], list[float]] = {}
        for proc in procs:
            key = self.containers.resolve(proc.pid)
            used = float(proc.usedGpuMemory or 0)  # None = not available (Windows WDDM)
            entry = usage.setdefault(key, [0.0, 0.0])
            entry[0] += used
            entry[1] += 1
        # Bounded cardinality: keep the biggest containers, fold the rest into "other".
        ranked = sorted(usage.items(), key=lambda item: -item[1][0])
        if len(ranked) > self.max_containers:
            keep, rest = ranked[: self.max_containers - 1], ranked[self.max_containers - 1 :]
            other = [sum(v[0] for _, v in rest), sum(v[1] for _, v in rest)]
            ranked = [*keep, (("other", "", ""), other)]
        out: list[Sample] = []
        for (cid, name, pod_uid), (used, count) in ranked:
            labels = {**dev.labels, "container_id": cid, "container_name": name, "pod_uid": pod_uid}
            out.append(Sample("container_memory_used_bytes", labels, used))
            out.append(Sample("container_processes", labels, count))
        return out

    # -- error policy -----------------------------------------------------------------
    def _raw(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Call NVML where failure is not optional; only GPU loss is translated."""
        try:
            return fn(*args)
        except nv.NVMLError as exc:
            if exc.value in LOST_CODES:
                raise DeviceLost from exc
            raise

    def _call(self, dev: _Device | None, probe: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Call an optional NVML probe: None when unsupported (remembered) or failing (counted)."""
        if dev is not None and probe in dev.unsupported:
            return None
        try:
            return fn(*args)
        except nv.NVMLError as exc:
            if exc.value in LOST_CODES and dev is not None:
                raise DeviceLost from exc
            if exc.value in UNSUPPORTED_CODES and dev is not None:
                dev.unsupported.add(probe)
                return None
            self.count_error(probe, exc)
            return None

    def count_error(self, probe: str, exc: BaseException) -> None:
        """NVML failures are the kit's `errors_total{stage=<probe>, error=<NVML error>}`."""
        self.self_metrics.error(probe, error_name(exc))
