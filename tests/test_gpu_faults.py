"""The GPU exporter under faults: it keeps serving and says what is wrong in metrics."""

from __future__ import annotations

from pathlib import Path

import pynvml
import pytest
from helpers import scrape
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from inferwatch.config import GpuExporterConfig
from inferwatch.exporters.gpu.collector import GpuCollector
from inferwatch.exporters.gpu.containers import ContainerResolver, parse_cgroup
from inferwatch.exporters.gpu.simnvml import SimulatedNvml


def two_h100(**gpu_fields) -> dict:
    return {"gpus": [{"profile": "h100-80gb", "count": 2, "utilization_gpu": 50, **gpu_fields}]}


def samples(port: int, name: str) -> dict[tuple, float]:
    """Scrape and return {tuple(sorted labels): value} for one sample name."""
    out = {}
    for family in text_string_to_metric_families(scrape(port)):
        for sample in family.samples:
            if sample.name == name:
                out[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def by_gpu(port: int, name: str) -> dict[str, float]:
    """{gpu index: value} for a family with one series per GPU (a second series per GPU is an error)."""
    found = samples(port, name)
    out = {dict(k)["gpu"]: v for k, v in found.items()}
    assert len(out) == len(found), f"{name}: more than one series per GPU: {found}"
    return out


def by_labels(port: int, name: str, *labels: str) -> dict[tuple[str, ...], float]:
    """{(values of `labels`): value}, one entry per series (a collision is an error)."""
    found = samples(port, name)
    out = {tuple(dict(k)[label] for label in labels): v for k, v in found.items()}
    assert len(out) == len(found), f"{name}: {labels} do not tell its series apart: {found}"
    return out


def test_unsupported_probe_is_learned_once(gpu_exporters) -> None:
    scenario = two_h100(unsupported=["nvmlDeviceGetEncoderUtilization", "field:82"])
    exporter = gpu_exporters.start(scenario, xid_events=False)
    for _ in range(3):
        text = scrape(exporter.port)
    assert exporter.collector.nv.calls["nvmlDeviceGetEncoderUtilization"] == 2, "asked once per GPU, then remembered"
    assert exporter.collector.nv.calls["nvmlDeviceGetDecoderUtilization"] == 6
    assert "inferwatch_gpu_encoder_utilization_ratio{" not in text
    assert "inferwatch_gpu_decoder_utilization_ratio{" in text, "its sibling probe is exported (the name is right)"
    assert "inferwatch_gpu_memory_temperature_celsius{" not in text, "an unsupported field is omitted, not 0"
    assert "inferwatch_gpu_energy_joules_total{" in text, "the other fields of the batch still arrive"
    assert by_gpu(exporter.port, "inferwatch_gpu_exporter_unsupported_probes") == {"0": 2.0, "1": 2.0}
    assert samples(exporter.port, "inferwatch_gpu_exporter_errors_total") == {}


def test_failing_probe_is_counted_and_retried(gpu_exporters) -> None:
    exporter = gpu_exporters.start(two_h100(fail={"nvmlDeviceGetPowerUsage": "NVML_ERROR_UNKNOWN"}),
                                   xid_events=False)
    scrape(exporter.port)
    errors = samples(exporter.port, "inferwatch_gpu_exporter_errors_total")
    assert errors == {(("error", "Unknown"), ("stage", "power_usage")): 4.0}, "2 GPUs x 2 scrapes"
    assert by_gpu(exporter.port, "inferwatch_gpu_utilization_ratio") == {"0": 0.5, "1": 0.5}


def test_gpu_lost_at_runtime_then_back(gpu_exporters) -> None:
    exporter = gpu_exporters.start(two_h100(), xid_events=False)
    before = samples(exporter.port, "inferwatch_gpu_up")
    exporter.collector.nv.gpus[1].lost = True
    after = samples(exporter.port, "inferwatch_gpu_up")
    assert {dict(k)["gpu"]: v for k, v in after.items()} == {"0": 1.0, "1": 0.0}
    assert set(after) == set(before), "the lost GPU keeps its uuid/model/pci labels"
    assert by_gpu(exporter.port, "inferwatch_gpu_utilization_ratio") == {"0": 0.5}
    exporter.collector.nv.gpus[1].lost = False
    assert by_gpu(exporter.port, "inferwatch_gpu_up") == {"0": 1.0, "1": 1.0}


def test_hung_nvml_call_cannot_hang_scrapes(gpu_exporters) -> None:
    exporter = gpu_exporters.start(two_h100(hang={"nvmlDeviceGetPowerUsage": 120}), xid_events=False,
                                   nvml_timeout_seconds=0.5)
    first = scrape(exporter.port)  # returns while the driver call is still stuck (it would take 120 s)
    second = scrape(exporter.port)
    assert "inferwatch_gpu_exporter_scrapes_total" in first, "the scrape answered, with the exporter's own series"
    assert "inferwatch_gpu_up{" not in first and "inferwatch_gpu_up{" not in second
    assert samples(exporter.port, "inferwatch_gpu_exporter_collect_timeouts_total") == {(): 3.0}
    assert exporter.collector.nv.calls["nvmlDeviceGetPowerUsage"] == 1, "later scrapes share the stuck call"
    exporter.collector.nv.gpus[0].hang.clear()
    exporter.collector.nv.gpus[1].hang.clear()
    exporter.collector.nv.release_hangs()
    # The stuck round finishes; the next scrape starts a fresh round and gets GPU data again.
    scrape(exporter.port)
    assert by_gpu(exporter.port, "inferwatch_gpu_up") == {"0": 1.0, "1": 1.0}


def test_describe_does_not_touch_nvml() -> None:
    nvml = SimulatedNvml.from_scenario("h100x2")
    collector = GpuCollector(GpuExporterConfig(hostname="h", xid_events=False), nvml)
    registry = CollectorRegistry()
    registry.register(collector)
    assert sum(nvml.calls.values()) == 0
    names = {m.name for m in collector.describe()}
    assert "inferwatch_gpu_utilization_ratio" in names and "inferwatch_gpu_energy_joules" in names
    dcgm_config = GpuExporterConfig(hostname="h", naming="dcgm", xid_events=False)
    dcgm = {m.name for m in GpuCollector(dcgm_config, nvml).describe()}
    assert "DCGM_FI_DEV_GPU_UTIL" in dcgm and "inferwatch_gpu_utilization_ratio" not in dcgm


def test_dcgm_naming_mirrors_dcgm_exporter(gpu_exporters) -> None:
    exporter = gpu_exporters.start("h100x2", naming="dcgm", xid_events=False)
    util = samples(exporter.port, "DCGM_FI_DEV_GPU_UTIL")
    labels = {dict(k)["gpu"]: dict(k) for k in util}
    assert sorted(labels) == ["0", "1"]
    for gpu in labels.values():
        assert set(gpu) == {"gpu", "UUID", "pci_bus_id", "device", "modelName", "Hostname", "DCGM_FI_DRIVER_VERSION"}
    gpu0, gpu1 = labels["0"], labels["1"]
    assert (gpu0["device"], gpu0["modelName"], gpu0["Hostname"], gpu0["DCGM_FI_DRIVER_VERSION"]) == (
        "nvidia0", "NVIDIA H100 80GB HBM3", "testhost", "550.54.15")
    assert gpu1["device"] == "nvidia1"
    assert gpu0["UUID"].startswith("GPU-") and gpu0["UUID"] != gpu1["UUID"]
    assert gpu0["pci_bus_id"] != gpu1["pci_bus_id"]
    assert sorted(util.values()) == [87.0, 87.0], "percent, as DCGM"
    assert sorted(by_gpu(exporter.port, "DCGM_FI_DEV_FB_USED").values()) == [76e9 / 2**20] * 2, "MiB"
    assert by_gpu(exporter.port, "DCGM_FI_DEV_SM_CLOCK")["0"] == 1980, "MHz"
    assert by_gpu(exporter.port, "DCGM_FI_DEV_POWER_USAGE")["0"] == 512
    assert by_gpu(exporter.port, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION")["0"] > 5e9, "mJ"
    assert by_gpu(exporter.port, "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL") == {"0": 0.0, "1": 0.0}
    assert by_gpu(exporter.port, "DCGM_FI_DEV_XID_ERRORS") == {}, "xid watcher off here"
    assert by_gpu(exporter.port, "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS") == {"0": 0.0, "1": 0.0}
    assert samples(exporter.port, "inferwatch_gpu_utilization_ratio") == {}


def test_dcgm_xid_is_last_code(gpu_exporters) -> None:
    exporter = gpu_exporters.start("xid79", naming="dcgm")
    exporter.collector.nv.inject_xid(0, 48)
    from inferwatch.lab.stack import wait_until

    wait_until(lambda: by_gpu(exporter.port, "DCGM_FI_DEV_XID_ERRORS") == {"0": 48.0, "1": 79.0}, 15,
               what="both XIDs")


CGROUP_V2_DOCKER = "0::/system.slice/docker-" + "a" * 64 + ".scope\n"
CGROUP_V1_K8S = (
    "12:memory:/kubepods/burstable/pod0f5d3b2a-1c2d-4e5f-8a9b-0123456789ab/" + "b" * 64 + "\n"
    "11:cpu,cpuacct:/kubepods/burstable/pod0f5d3b2a-1c2d-4e5f-8a9b-0123456789ab/" + "b" * 64 + "\n"
)
CGROUP_V2_SYSTEMD_K8S = (
    "0::/kubepods.slice/kubepods-pod0f5d3b2a_1c2d_4e5f_8a9b_0123456789ab.slice/cri-containerd-"
    + "c" * 64 + ".scope\n"
)


def test_parse_cgroup() -> None:
    assert parse_cgroup(CGROUP_V2_DOCKER) == ("a" * 64, "")
    assert parse_cgroup(CGROUP_V1_K8S) == ("b" * 64, "0f5d3b2a-1c2d-4e5f-8a9b-0123456789ab")
    assert parse_cgroup(CGROUP_V2_SYSTEMD_K8S) == ("c" * 64, "0f5d3b2a-1c2d-4e5f-8a9b-0123456789ab")
    assert parse_cgroup("0::/user.slice/user-0.slice/session-1.scope\n") == ("", "")


def fake_proc(root: Path, pid: int, cgroup: str) -> None:
    (root / str(pid)).mkdir(parents=True)
    (root / str(pid) / "cgroup").write_text(cgroup)


def test_container_attribution_and_cap(gpu_exporters, tmp_path: Path) -> None:
    fake_proc(tmp_path, 100, CGROUP_V2_DOCKER)
    fake_proc(tmp_path, 101, CGROUP_V2_DOCKER)
    fake_proc(tmp_path, 200, CGROUP_V1_K8S)
    fake_proc(tmp_path, 300, CGROUP_V2_SYSTEMD_K8S)
    procs = [{"pid": 100, "used_bytes": 10}, {"pid": 101, "used_bytes": 20}, {"pid": 200, "used_bytes": 5},
             {"pid": 300, "used_bytes": 1}, {"pid": 999, "used_bytes": 2}]
    scenario = {"gpus": [{"profile": "h100-80gb", "count": 1, "processes": procs}]}
    exporter = gpu_exporters.start(scenario, proc_root=str(tmp_path), max_containers_per_gpu=3, xid_events=False)
    used_samples = samples(exporter.port, "inferwatch_gpu_container_memory_used_bytes")
    used = {dict(k)["container_id"]: v for k, v in used_samples.items()}
    assert used == {"a" * 64: 30.0, "b" * 64: 5.0, "other": 3.0}, "top 2 kept, the rest folded into other"
    count_samples = samples(exporter.port, "inferwatch_gpu_container_processes")
    count = {dict(k)["container_id"]: v for k, v in count_samples.items()}
    assert count == {"a" * 64: 2.0, "b" * 64: 1.0, "other": 2.0}
    pods = {dict(k)["container_id"]: dict(k)["pod_uid"]
            for k in samples(exporter.port, "inferwatch_gpu_container_processes")}
    assert pods["b" * 64] == "0f5d3b2a-1c2d-4e5f-8a9b-0123456789ab"


def test_resolver_cache_is_bounded(tmp_path: Path) -> None:
    resolver = ContainerResolver(str(tmp_path), docker_socket=None, cache_size=10)
    for pid in range(100):
        resolver.resolve(pid)
    assert len(resolver._pids) == 10


def test_old_driver_without_field_values_falls_back_to_single_calls(gpu_exporters) -> None:
    """Same counters either way: the batched field-values path and the per-call path agree."""
    faulty = {"ecc": {"sbe_vol": 3, "dbe_vol": 1, "sbe_agg": 9, "dbe_agg": 2},
              "remapped_rows": {"correctable": 4, "uncorrectable": 1, "pending": 1, "failure": 0}}
    batched = gpu_exporters.start({"gpus": [{"profile": "h100-80gb", "count": 1, **faulty}]}, xid_events=False)
    old = gpu_exporters.start({"gpus": [{"profile": "h100-80gb", "count": 1, **faulty,
                                         "unsupported": ["nvmlDeviceGetFieldValues"]}]}, xid_events=False)
    # The scenario's own numbers, not just "both paths agree" (two empty answers would agree too).
    expected = {
        ("inferwatch_gpu_ecc_errors_total", ("error_type", "scope")): {
            ("single_bit", "volatile"): 3.0, ("double_bit", "volatile"): 1.0,
            ("single_bit", "aggregate"): 9.0, ("double_bit", "aggregate"): 2.0},
        ("inferwatch_gpu_remapped_rows_total", ("cause",)): {("correctable",): 4.0, ("uncorrectable",): 1.0},
        ("inferwatch_gpu_row_remap_pending", ()): {(): 1.0},
        ("inferwatch_gpu_row_remap_failure", ()): {(): 0.0},
        ("inferwatch_gpu_pcie_replays_total", ()): {(): 0.0},
    }
    for (name, labels), want in expected.items():
        assert by_labels(batched.port, name, *labels) == want, f"batched: {name}"
        assert by_labels(old.port, name, *labels) == want, f"one call at a time: {name}"
    assert by_gpu(old.port, "inferwatch_gpu_energy_joules_total")["0"] > 5e6, "J since the driver loaded"
    assert old.collector.nv.calls["nvmlDeviceGetFieldValues"] == 1, "learned unsupported once"
    assert samples(old.port, "inferwatch_gpu_exporter_errors_total") == {}


def test_simulated_fault_can_target_one_mig_instance() -> None:
    """`<function>@mig<slot>` breaks that call on one MIG instance's handle only."""
    scenario = {"gpus": [{"profile": "a100-80gb", "mig": ["1g.10gb", "1g.10gb"],
                          "fail": {"nvmlDeviceGetMemoryInfo@mig1": "NVML_ERROR_UNKNOWN"}}]}
    sim = SimulatedNvml.from_scenario(scenario)
    sim.nvmlInit()
    gpu = sim.nvmlDeviceGetHandleByIndex(0)
    slot0, slot1 = (sim.nvmlDeviceGetMigDeviceHandleByIndex(gpu, slot) for slot in (0, 1))
    assert sim.nvmlDeviceGetMemoryInfo(gpu).total == 85899345920, "the GPU itself answers"
    assert sim.nvmlDeviceGetMemoryInfo(slot0).total == 10 * 2**30, "so does the other instance"
    with pytest.raises(pynvml.NVMLError_Unknown):
        sim.nvmlDeviceGetMemoryInfo(slot1)
    assert sim.nvmlDeviceGetUUID(slot1).startswith("MIG-"), "only the named function fails"


@pytest.mark.parametrize(("fault", "message"), [
    ({"fail": {"nvmlDeviceGetMemoryInfo@mig2": "NVML_ERROR_UNKNOWN"}}, "names no MIG slot"),
    ({"fail": {"nvmlDeviceGetMemroyInfo": "NVML_ERROR_UNKNOWN"}}, "no simulated NVML function"),
    ({"fail": {"nvmlDeviceGetMemoryInfo": "NVML_ERROR_UNKNWON"}}, "unknown NVML error"),
    ({"hang": {"nvmlDeviceGetPowerUsage@mig0": 1.0}, "mig": None}, "names no MIG slot"),
])
def test_misspelt_scenario_faults_fail_at_load(fault: dict, message: str) -> None:
    gpu = {"profile": "a100-80gb", "mig": ["3g.40gb", "3g.40gb"], **fault}
    with pytest.raises(ValueError, match=message):
        SimulatedNvml.from_scenario({"gpus": [gpu]})
