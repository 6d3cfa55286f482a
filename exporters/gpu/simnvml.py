"""A simulated NVML for tests and the demo: pynvml's function names, return shapes and exceptions.

Only `--simulate` (or `gpu_exporter.simulate`) imports this module. Scenarios are YAML files in
`scenarios/`: a list of GPUs built from profiles, with per-GPU overrides that inject faults
(lost GPU, XID events, throttling, ECC errors, unsupported probes, hung calls, missing driver).

Faults (`unsupported`, `hang`, `fail`) name pynvml functions. A plain name applies to every call
on that GPU, its MIG instances' handles included; `<function>@mig<slot>` applies only to calls on
the handle of MIG slot <slot> (e.g. `fail: {"nvmlDeviceGetMemoryInfo@mig1": NVML_ERROR_UNKNOWN}`:
one broken MIG instance, the GPU and its other instances healthy).

Time: every simulated duration (energy and PCIe counters, throttle time, `lost_after_seconds`,
XID `at_seconds`) is read from the injectable `clock` (default `time.monotonic`). Pass a
`ManualClock` and call `SimulatedNvml.advance(seconds)` for readings that are exactly reproducible
(the golden expositions); event waits still time out in real time, so no thread waits forever.
"""

from __future__ import annotations

import functools
import threading
import time
import uuid as uuidlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pynvml as nv
import yaml

GIB = 1024**3
MIB = 1024**2

PROFILES: dict[str, dict[str, Any]] = {
    "h100-80gb": dict(
        name="NVIDIA H100 80GB HBM3", memory_total=85520809984, memory_reserved=555 * MIB,
        power_limit_mw=700_000, power_mw=412_000, sm_clock_mhz=1980, mem_clock_mhz=2619,
        temperature=58, memory_temperature=66, mig_memory_slice=10 * GIB,
    ),
    "a100-80gb": dict(
        name="NVIDIA A100-SXM4-80GB", memory_total=85899345920, memory_reserved=512 * MIB,
        power_limit_mw=400_000, power_mw=250_000, sm_clock_mhz=1410, mem_clock_mhz=1593,
        temperature=52, memory_temperature=61, mig_memory_slice=10 * GIB,
    ),
}


@dataclass
class SimGpu:
    """One simulated GPU: its readings and the faults it injects."""

    index: int
    name: str
    uuid: str
    pci_bus_id: str
    memory_total: int
    memory_reserved: int
    memory_used: int = 0
    utilization_gpu: int = 0  # percent, like NVML
    utilization_memory: int = 0
    encoder_utilization: int = 0
    decoder_utilization: int = 0
    temperature: int = 50
    memory_temperature: int = 60
    power_mw: int = 100_000
    power_limit_mw: int = 700_000
    sm_clock_mhz: int = 1980
    mem_clock_mhz: int = 2619
    clock_event_reasons: int = 0
    supported_clock_events: int = 0x1FF
    ecc: dict[str, int] = field(default_factory=lambda: {"sbe_vol": 0, "dbe_vol": 0, "sbe_agg": 0, "dbe_agg": 0})
    remapped_rows: dict[str, int] = field(
        default_factory=lambda: {"correctable": 0, "uncorrectable": 0, "pending": 0, "failure": 0})
    pcie_replays: int = 0
    pcie_bytes_per_second: int = 2_000_000_000
    nvlink: bool = True
    mig: list[str] | None = None  # MIG profiles such as "1g.10gb"; None = MIG disabled
    mig_memory_slice: int = 10 * GIB
    processes: list[dict[str, int]] = field(default_factory=list)  # {pid, used_bytes}
    xid: list[dict[str, float]] = field(default_factory=list)  # {code, at_seconds}
    lost: bool = False
    lost_after_seconds: float | None = None  # falls off the bus this long after the driver loads
    # Faults, keyed by pynvml function name (or `<function>@mig<slot>` for one MIG instance only).
    unsupported: list[str] = field(default_factory=list)  # function names or "field:<id>"
    hang: dict[str, float] = field(default_factory=dict)  # function name -> seconds
    fail: dict[str, str] = field(default_factory=dict)  # function name -> NVML_ERROR_* constant name

    def check_faults(self) -> None:
        """Fail at load time on a misspelt function, slot or error name, not silently at run time."""
        for key in [*self.unsupported, *self.hang, *self.fail]:
            if key.startswith("field:"):
                continue
            name, _, slot = key.partition("@mig")
            if not (name.startswith("nvml") and callable(getattr(SimulatedNvml, name, None))):
                raise ValueError(f"GPU scenario: GPU {self.index}: no simulated NVML function {name!r}")
            if slot and not (slot.isdigit() and self.mig is not None and int(slot) < len(self.mig)):
                raise ValueError(f"GPU scenario: GPU {self.index}: {key!r} names no MIG slot of {self.mig}")
        for key, error in self.fail.items():
            if not (error.startswith("NVML_ERROR_") and hasattr(nv, error)):
                raise ValueError(f"GPU scenario: GPU {self.index}: fail {key!r}: unknown NVML error {error!r}")


class ManualClock:
    """A clock that moves only when told to: simulated time that is exactly reproducible."""

    def __init__(self, start: float = 0.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class SimHandle:
    gpu: int
    mig_slot: int | None = None


def scenario_names() -> list[str]:
    folder = resources.files("inferwatch.exporters.gpu") / "scenarios"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_scenario(name_or_path: str) -> dict[str, Any]:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return yaml.safe_load(path.read_text())
    folder = resources.files("inferwatch.exporters.gpu") / "scenarios"
    candidate = folder / f"{name_or_path}.yaml"
    if not candidate.is_file():
        raise ValueError(f"unknown GPU scenario {name_or_path!r} (known: {', '.join(scenario_names())})")
    return yaml.safe_load(candidate.read_text())


def _fault_key(faults: Any, name: str, handle: SimHandle) -> str | None:
    """The key of `faults` that applies to this call: this MIG slot's own first, then the GPU's."""
    if handle.mig_slot is not None and f"{name}@mig{handle.mig_slot}" in faults:
        return f"{name}@mig{handle.mig_slot}"
    return name if name in faults else None


def _device_call(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Count the call and apply the GPU's faults before answering, as a broken driver would."""

    @functools.wraps(fn)
    def wrapper(self: SimulatedNvml, handle: SimHandle, *args: Any, **kwargs: Any) -> Any:
        self._check_init()
        name = fn.__name__
        self.calls[name] += 1
        gpu = self.gpus[handle.gpu]
        if gpu.lost or (gpu.lost_after_seconds is not None
                        and self.clock() - self.started >= gpu.lost_after_seconds):
            raise nv.NVMLError(nv.NVML_ERROR_GPU_IS_LOST)
        hang = _fault_key(gpu.hang, name, handle)
        if hang is not None:
            self._release.wait(gpu.hang[hang])
        if _fault_key(gpu.unsupported, name, handle) is not None:
            raise nv.NVMLError(nv.NVML_ERROR_NOT_SUPPORTED)
        fail = _fault_key(gpu.fail, name, handle)
        if fail is not None:
            raise nv.NVMLError(getattr(nv, gpu.fail[fail]))
        return fn(self, gpu, handle, *args, **kwargs)

    return wrapper


class SimulatedNvml:
    """Drop-in for the `pynvml` module: same call names, return types and error classes."""

    def __init__(self, gpus: list[SimGpu], driver: dict[str, Any] | None = None, driver_missing: bool = False,
                 clock: Callable[[], float] = time.monotonic):
        self.gpus = gpus
        self.clock = clock
        driver = driver or {}
        self.driver_version = str(driver.get("version", "550.54.15"))
        self.cuda_version = int(driver.get("cuda", 12040))
        self.nvml_version = str(driver.get("nvml", f"12.{self.driver_version}"))
        self.driver_missing = driver_missing
        self.calls: Counter[str] = Counter()
        self.started = clock()  # when "the driver loaded": simulated durations count from here
        self._initialised = 0
        self._release = threading.Event()  # set() ends every simulated hang
        self._events: list[tuple[float, int, int]] = []  # (due on self.clock, gpu, xid)
        self._event_cond = threading.Condition()

    @classmethod
    def from_scenario(cls, name_or_path: str | dict[str, Any],
                      clock: Callable[[], float] = time.monotonic) -> SimulatedNvml:
        spec = name_or_path if isinstance(name_or_path, dict) else load_scenario(name_or_path)
        known = {f.name for f in fields(SimGpu)}
        gpus: list[SimGpu] = []
        for group in spec.get("gpus", []):
            group = dict(group)
            count = int(group.pop("count", 1))
            profile = dict(PROFILES[group.pop("profile", "h100-80gb")])
            for _ in range(count):
                index = len(gpus)
                values = {**profile, **group}
                values.update((spec.get("overrides") or {}).get(index, {}))
                unknown = set(values) - known
                if unknown:
                    raise ValueError(f"GPU scenario: unknown GPU field(s) {sorted(unknown)}")
                seed = f"{values['name']}/{index}"
                values.setdefault("uuid", "GPU-" + str(uuidlib.uuid5(uuidlib.NAMESPACE_DNS, seed)))
                values.setdefault("pci_bus_id", f"00000000:{0x18 + index * 0x10 & 0xFF:02X}:00.0")
                gpu = SimGpu(index=index, **values)
                gpu.check_faults()
                gpus.append(gpu)
        return cls(gpus, spec.get("driver"), bool(spec.get("driver_missing", False)), clock=clock)

    # -- controls for tests and the demo --------------------------------------------------
    def release_hangs(self) -> None:
        self._release.set()

    def inject_xid(self, gpu: int, code: int) -> None:
        with self._event_cond:
            self._events.append((self.clock(), gpu, code))
            self._event_cond.notify_all()

    def advance(self, seconds: float) -> None:
        """Move a `ManualClock` on, and wake event waiters so XIDs that became due are delivered."""
        advance = getattr(self.clock, "advance", None)
        if advance is None:
            raise TypeError("advance() needs a SimulatedNvml built with clock=ManualClock()")
        with self._event_cond:
            advance(seconds)
            self._event_cond.notify_all()

    def pending_xids(self) -> int:
        """XID events scheduled (by the scenario or `inject_xid`) and not yet delivered."""
        with self._event_cond:
            return len(self._events) + sum(len(gpu.xid) for gpu in self.gpus)

    def __getattr__(self, name: str) -> Any:
        value = getattr(nv, name)  # constants, structs and error classes come from the real binding
        if name.startswith("nvml") and callable(value) and not isinstance(value, type):
            def not_found(*_args: Any, **_kwargs: Any) -> Any:
                raise nv.NVMLError(nv.NVML_ERROR_FUNCTION_NOT_FOUND)

            return not_found
        return value

    # -- library --------------------------------------------------------------------------
    def _check_init(self) -> None:
        if not self._initialised:
            raise nv.NVMLError(nv.NVML_ERROR_UNINITIALIZED)

    def nvmlInit(self) -> None:
        self.calls["nvmlInit"] += 1
        if self.driver_missing:
            raise nv.NVMLError(nv.NVML_ERROR_LIBRARY_NOT_FOUND)
        self._initialised += 1

    def nvmlShutdown(self) -> None:
        self._check_init()
        self._initialised -= 1

    def nvmlSystemGetDriverVersion(self) -> str:
        self._check_init()
        return self.driver_version

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        self._check_init()
        return self.cuda_version

    def nvmlSystemGetNVMLVersion(self) -> str:
        self._check_init()
        return self.nvml_version

    def nvmlDeviceGetCount(self) -> int:
        self._check_init()
        self.calls["nvmlDeviceGetCount"] += 1
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> SimHandle:
        self._check_init()
        if not 0 <= index < len(self.gpus):
            raise nv.NVMLError(nv.NVML_ERROR_INVALID_ARGUMENT)
        return SimHandle(index)

    # -- identity -------------------------------------------------------------------------
    @_device_call
    def nvmlDeviceGetUUID(self, gpu: SimGpu, handle: SimHandle) -> str:
        if handle.mig_slot is not None:
            return "MIG-" + str(uuidlib.uuid5(uuidlib.NAMESPACE_DNS, f"{gpu.uuid}/{handle.mig_slot}"))
        return gpu.uuid

    @_device_call
    def nvmlDeviceGetName(self, gpu: SimGpu, handle: SimHandle) -> str:
        if handle.mig_slot is not None and gpu.mig:
            return f"{gpu.name} MIG {gpu.mig[handle.mig_slot]}"
        return gpu.name

    @_device_call
    def nvmlDeviceGetPciInfo(self, gpu: SimGpu, handle: SimHandle) -> Any:
        info = nv.nvmlPciInfo_t()
        info.busId = gpu.pci_bus_id.encode()
        info.busIdLegacy = gpu.pci_bus_id[4:].encode()
        return info

    # -- readings -------------------------------------------------------------------------
    @_device_call
    def nvmlDeviceGetUtilizationRates(self, gpu: SimGpu, handle: SimHandle) -> Any:
        if gpu.mig is not None:  # NVML has no per-GPU utilisation under MIG
            raise nv.NVMLError(nv.NVML_ERROR_NOT_SUPPORTED)
        return nv.c_nvmlUtilization_t(gpu=gpu.utilization_gpu, memory=gpu.utilization_memory)

    @_device_call
    def nvmlDeviceGetEncoderUtilization(self, gpu: SimGpu, handle: SimHandle) -> list[int]:
        return [gpu.encoder_utilization, 167000]

    @_device_call
    def nvmlDeviceGetDecoderUtilization(self, gpu: SimGpu, handle: SimHandle) -> list[int]:
        return [gpu.decoder_utilization, 167000]

    @_device_call
    def nvmlDeviceGetMemoryInfo(self, gpu: SimGpu, handle: SimHandle, version: int | None = None) -> Any:
        if handle.mig_slot is not None and gpu.mig:
            total = self._mig_slices(gpu.mig[handle.mig_slot]) * gpu.mig_memory_slice
            used = total // 4
            reserved = 0
        else:
            total, used, reserved = gpu.memory_total, gpu.memory_used, gpu.memory_reserved
        if version:
            mem = nv.c_nvmlMemory_v2_t()
            mem.version, mem.total, mem.reserved, mem.used = version, total, reserved, used
            mem.free = total - reserved - used
            return mem
        mem = nv.c_nvmlMemory_t()
        mem.total, mem.used, mem.free = total, used + reserved, total - used - reserved
        return mem

    @_device_call
    def nvmlDeviceGetTemperature(self, gpu: SimGpu, handle: SimHandle, sensor: int) -> int:
        return gpu.temperature

    @_device_call
    def nvmlDeviceGetPowerUsage(self, gpu: SimGpu, handle: SimHandle) -> int:
        return gpu.power_mw

    @_device_call
    def nvmlDeviceGetEnforcedPowerLimit(self, gpu: SimGpu, handle: SimHandle) -> int:
        return gpu.power_limit_mw

    @_device_call
    def nvmlDeviceGetClockInfo(self, gpu: SimGpu, handle: SimHandle, clock: int) -> int:
        return gpu.sm_clock_mhz if clock == nv.NVML_CLOCK_SM else gpu.mem_clock_mhz

    @_device_call
    def nvmlDeviceGetCurrentClocksEventReasons(self, gpu: SimGpu, handle: SimHandle) -> int:
        return gpu.clock_event_reasons

    @_device_call
    def nvmlDeviceGetSupportedClocksEventReasons(self, gpu: SimGpu, handle: SimHandle) -> int:
        return gpu.supported_clock_events

    @_device_call
    def nvmlDeviceGetFieldValues(self, gpu: SimGpu, handle: SimHandle, field_ids: list[Any]) -> Any:
        values = (nv.c_nvmlFieldValue_t * len(field_ids))()
        now_us = int(time.time() * 1e6)
        for slot, field_id in zip(values, field_ids, strict=True):
            slot.fieldId = field_id
            slot.timestamp = now_us
            reading = self._field(gpu, field_id)
            if reading is None or f"field:{field_id}" in gpu.unsupported:
                slot.nvmlReturn = nv.NVML_ERROR_NOT_SUPPORTED
                continue
            slot.nvmlReturn = nv.NVML_SUCCESS
            slot.valueType = nv.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG
            slot.value.ullVal = int(reading)
        return values

    def _field(self, gpu: SimGpu, field_id: int) -> float | None:
        elapsed = self.clock() - self.started
        thermal = gpu.clock_event_reasons & (nv.nvmlClocksEventReasonSwThermalSlowdown
                                             | nv.nvmlClocksEventReasonHwThermalSlowdown)
        power = gpu.clock_event_reasons & nv.nvmlClocksEventReasonSwPowerCap
        table: dict[int, float | None] = {
            nv.NVML_FI_DEV_MEMORY_TEMP: gpu.memory_temperature,
            nv.NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION: 5e9 + gpu.power_mw * elapsed,  # mJ
            nv.NVML_FI_DEV_PCIE_REPLAY_COUNTER: gpu.pcie_replays,
            nv.NVML_FI_DEV_PCIE_COUNT_TX_BYTES: gpu.pcie_bytes_per_second * elapsed,
            nv.NVML_FI_DEV_PCIE_COUNT_RX_BYTES: gpu.pcie_bytes_per_second * 2 * elapsed,
            nv.NVML_FI_DEV_ECC_SBE_VOL_TOTAL: gpu.ecc["sbe_vol"],
            nv.NVML_FI_DEV_ECC_DBE_VOL_TOTAL: gpu.ecc["dbe_vol"],
            nv.NVML_FI_DEV_ECC_SBE_AGG_TOTAL: gpu.ecc["sbe_agg"],
            nv.NVML_FI_DEV_ECC_DBE_AGG_TOTAL: gpu.ecc["dbe_agg"],
            nv.NVML_FI_DEV_REMAPPED_COR: gpu.remapped_rows["correctable"],
            nv.NVML_FI_DEV_REMAPPED_UNC: gpu.remapped_rows["uncorrectable"],
            nv.NVML_FI_DEV_REMAPPED_PENDING: gpu.remapped_rows["pending"],
            nv.NVML_FI_DEV_REMAPPED_FAILURE: gpu.remapped_rows["failure"],
            nv.NVML_FI_DEV_PERF_POLICY_POWER: elapsed * 1e9 if power else 0,
            nv.NVML_FI_DEV_PERF_POLICY_THERMAL: elapsed * 1e9 if thermal else 0,
            nv.NVML_FI_DEV_PERF_POLICY_SYNC_BOOST: 0,
            nv.NVML_FI_DEV_PERF_POLICY_BOARD_LIMIT: 0,
            nv.NVML_FI_DEV_PERF_POLICY_LOW_UTILIZATION: 0,
            nv.NVML_FI_DEV_PERF_POLICY_RELIABILITY: 0,
        }
        nvlink = {
            nv.NVML_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL, nv.NVML_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL,
            nv.NVML_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL, nv.NVML_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL,
        }
        if field_id in nvlink:
            return 0 if gpu.nvlink else None
        return table.get(field_id)

    # The per-call equivalents of the fields above, for drivers without the field-values API.
    @_device_call
    def nvmlDeviceGetTotalEnergyConsumption(self, gpu: SimGpu, handle: SimHandle) -> int:
        return int(self._field(gpu, nv.NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION))

    @_device_call
    def nvmlDeviceGetPcieReplayCounter(self, gpu: SimGpu, handle: SimHandle) -> int:
        return gpu.pcie_replays

    @_device_call
    def nvmlDeviceGetTotalEccErrors(self, gpu: SimGpu, handle: SimHandle, error_type: int, counter: int) -> int:
        kind = "sbe" if error_type == nv.NVML_MEMORY_ERROR_TYPE_CORRECTED else "dbe"
        return gpu.ecc[f"{kind}_{'vol' if counter == nv.NVML_VOLATILE_ECC else 'agg'}"]

    @_device_call
    def nvmlDeviceGetRemappedRows(self, gpu: SimGpu, handle: SimHandle) -> tuple[int, int, int, int]:
        rows = gpu.remapped_rows
        return rows["correctable"], rows["uncorrectable"], rows["pending"], rows["failure"]

    # -- MIG ------------------------------------------------------------------------------
    @staticmethod
    def _mig_slices(profile: str) -> int:
        return int(profile.split("g.", 1)[1].removesuffix("gb")) // 10 or 1

    @_device_call
    def nvmlDeviceGetMigMode(self, gpu: SimGpu, handle: SimHandle) -> list[int]:
        mode = nv.NVML_DEVICE_MIG_ENABLE if gpu.mig is not None else nv.NVML_DEVICE_MIG_DISABLE
        return [mode, mode]

    @_device_call
    def nvmlDeviceGetMaxMigDeviceCount(self, gpu: SimGpu, handle: SimHandle) -> int:
        return 7 if gpu.mig is not None else 0

    @_device_call
    def nvmlDeviceGetMigDeviceHandleByIndex(self, gpu: SimGpu, handle: SimHandle, slot: int) -> SimHandle:
        if gpu.mig is None or slot >= len(gpu.mig):
            raise nv.NVMLError(nv.NVML_ERROR_NOT_FOUND)
        return SimHandle(gpu.index, slot)

    @_device_call
    def nvmlDeviceGetGpuInstanceId(self, gpu: SimGpu, handle: SimHandle) -> int:
        return (handle.mig_slot or 0) + 1

    @_device_call
    def nvmlDeviceGetComputeInstanceId(self, gpu: SimGpu, handle: SimHandle) -> int:
        return 0

    # -- processes ------------------------------------------------------------------------
    @_device_call
    def nvmlDeviceGetComputeRunningProcesses(self, gpu: SimGpu, handle: SimHandle) -> list[Any]:
        return [
            nv.nvmlFriendlyObject({"pid": p["pid"], "usedGpuMemory": p["used_bytes"],
                                   "gpuInstanceId": 0xFFFFFFFF, "computeInstanceId": 0xFFFFFFFF})
            for p in gpu.processes
        ]

    # -- events ---------------------------------------------------------------------------
    def nvmlEventSetCreate(self) -> list[int]:
        self._check_init()
        return []  # the registered GPU indexes

    def nvmlEventSetFree(self, event_set: list[int]) -> None:
        event_set.clear()

    @_device_call
    def nvmlDeviceGetSupportedEventTypes(self, gpu: SimGpu, handle: SimHandle) -> int:
        return nv.nvmlEventTypeXidCriticalError | nv.nvmlEventTypeDoubleBitEccError

    @_device_call
    def nvmlDeviceRegisterEvents(self, gpu: SimGpu, handle: SimHandle, types: int, event_set: list[int]) -> None:
        event_set.append(gpu.index)
        now = self.clock()
        with self._event_cond:
            for xid in gpu.xid:
                self._events.append((now + float(xid.get("at_seconds", 0)), gpu.index, int(xid["code"])))
            gpu.xid = []  # scheduled once, like a real one-off fault
            self._event_cond.notify_all()

    def nvmlEventSetWait(self, event_set: list[int], timeout_ms: int) -> Any:
        # Whether an event is due is simulated time (self.clock); the timeout is real time, so a
        # waiter on a ManualClock still returns, and `advance()` wakes it when events become due.
        deadline = time.monotonic() + timeout_ms / 1000
        with self._event_cond:
            while True:
                now = self.clock()
                due = [e for e in self._events if e[0] <= now and e[1] in event_set]
                if due:
                    event = min(due)
                    self._events.remove(event)
                    return SimpleNamespace(
                        device=SimHandle(event[1]), eventType=nv.nvmlEventTypeXidCriticalError,
                        eventData=event[2], gpuInstanceId=0xFFFFFFFF, computeInstanceId=0xFFFFFFFF)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise nv.NVMLError(nv.NVML_ERROR_TIMEOUT)
                pending = [e[0] - now for e in self._events if e[1] in event_set]
                self._event_cond.wait(min([remaining, *pending]))
