"""Config loading: the example loads, and every kind of mistake gets one exact, located error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from inferwatch.config import ConfigError, load_config

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "inferwatch" / "examples" / "inferwatch.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "inferwatch.yaml"
    path.write_text(text)
    return path


def error_of(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value)


def test_example_config_loads() -> None:
    config = load_config(EXAMPLE)
    assert config.gpu_exporter.port == 9835
    assert config.gpu_exporter.naming == "inferwatch"
    assert config.engine_exporter.endpoints[0].base_url == "http://127.0.0.1:8000"
    assert config.engine_exporter.endpoints[0].role == "primary"


def test_defaults_without_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INFERWATCH_CONFIG", raising=False)
    assert load_config(None).gpu_exporter.port == 9835


def test_env_var_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "gpu_exporter:\n  port: 9999\n")
    monkeypatch.setenv("INFERWATCH_CONFIG", str(path))
    assert load_config().gpu_exporter.port == 9999


def test_int_accepted_for_float(tmp_path: Path) -> None:
    path = write(tmp_path, "gpu_exporter:\n  nvml_timeout_seconds: 3\n")
    assert load_config(path).gpu_exporter.nvml_timeout_seconds == 3.0


def test_unknown_key(tmp_path: Path) -> None:
    path = write(tmp_path, "gpu_exporter:\n  port: 9000\n  prot: 9001\n")
    assert error_of(path) == (
        f"{path}:3: gpu_exporter.prot: unknown key (expected one of: listen_address, port, naming, "
        "hostname, nvml_timeout_seconds, xid_events, process_attribution, docker_socket, "
        "max_containers_per_gpu, proc_root, simulate, web_config_file)"
    )


def test_unknown_section(tmp_path: Path) -> None:
    path = write(tmp_path, "gpu_exporter: {}\ngpu_exprter:\n  port: 1\n")
    assert error_of(path) == (
        f"{path}:2: gpu_exprter: unknown key (expected one of: gpu_exporter, engine_exporter, probe_exporter, "
        "feedback_server, drift_exporter, log_exporter, logging, remediation, scaler, vllm_plugin, slo, cost)"
    )


def test_wrong_type(tmp_path: Path) -> None:
    path = write(tmp_path, "gpu_exporter:\n  port: abc\n")
    assert error_of(path) == f"{path}:2: gpu_exporter.port: expected an integer, got 'abc'"


def test_bool_is_not_an_integer(tmp_path: Path) -> None:
    path = write(tmp_path, "gpu_exporter:\n  port: true\n")
    assert error_of(path) == f"{path}:2: gpu_exporter.port: expected an integer, got True"


def test_wrong_choice(tmp_path: Path) -> None:
    path = write(tmp_path, "gpu_exporter:\n  naming: prom\n")
    assert error_of(path) == f"{path}:2: gpu_exporter.naming: must be one of: inferwatch, dcgm; got 'prom'"


def test_missing_required_value_in_a_list_item(tmp_path: Path) -> None:
    path = write(tmp_path, (
        "engine_exporter:\n"
        "  endpoints:\n"
        "    - name: a\n"
        "      base_url: http://127.0.0.1:8000\n"
        "      model: m\n"
        "    - name: b\n"
        "      model: m\n"
    ))
    assert error_of(path) == f"{path}:6: engine_exporter.endpoints[1].base_url: required key is missing"


def test_section_must_be_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "gpu_exporter: [1, 2]\n")
    assert error_of(path) == f"{path}:1: gpu_exporter: expected a mapping, got a list"


def test_invalid_yaml(tmp_path: Path) -> None:
    import yaml

    path = write(tmp_path, "gpu_exporter:\n  port: [9000\n")
    problem = ("did not find expected ',' or ']'" if hasattr(yaml, "CSafeLoader")  # libyaml's words
               else "expected ',' or ']', but got '<stream end>'")
    assert error_of(path) == f"{path}:3: invalid YAML: {problem}"


def test_missing_file(tmp_path: Path) -> None:
    assert error_of(tmp_path / "nope.yaml") == f"{tmp_path / 'nope.yaml'}: file not found"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "inferwatch.cli", *args], capture_output=True, text=True,
                          timeout=60)


def test_cli_exits_2_with_the_error(tmp_path: Path) -> None:
    path = write(tmp_path, "gpu_exporter:\n  port: abc\n")
    result = run_cli("--config", str(path), "check-config")
    assert result.returncode == 2
    assert result.stderr == f"inferwatch: config error: {path}:2: gpu_exporter.port: expected an integer, got 'abc'\n"


def test_cli_check_config_prints_effective_settings() -> None:
    result = run_cli("--config", str(EXAMPLE), "check-config")
    assert result.returncode == 0, result.stderr
    assert "naming: inferwatch" in result.stdout
    assert "base_url: http://127.0.0.1:8000" in result.stdout


# -- values, not just types: every rule, word for word ----------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("gpu_exporter:\n  port: 99999\n",
     "2: gpu_exporter.port: must be a port number between 0 and 65535; got 99999"),
    ("engine_exporter:\n  port: -1\n",
     "2: engine_exporter.port: must be a port number between 0 and 65535; got -1"),
    ("gpu_exporter:\n  nvml_timeout_seconds: 0\n",
     "2: gpu_exporter.nvml_timeout_seconds: must be a number of seconds greater than 0 and at most 300; got 0.0"),
    ("gpu_exporter:\n  nvml_timeout_seconds: -1.5\n",
     "2: gpu_exporter.nvml_timeout_seconds: must be a number of seconds greater than 0 and at most 300; got -1.5"),
    ("gpu_exporter:\n  nvml_timeout_seconds: .nan\n",
     "2: gpu_exporter.nvml_timeout_seconds: must be a number of seconds greater than 0 and at most 300; got nan"),
    ("gpu_exporter:\n  nvml_timeout_seconds: .inf\n",
     "2: gpu_exporter.nvml_timeout_seconds: must be a number of seconds greater than 0 and at most 300; got inf"),
    ("engine_exporter:\n  probe_timeout_seconds: .inf\n",
     "2: engine_exporter.probe_timeout_seconds: must be a number of seconds greater than 0 and at most 60; got inf"),
    ("gpu_exporter:\n  max_containers_per_gpu: 0\n",
     "2: gpu_exporter.max_containers_per_gpu: must be at least 1; got 0"),
    ("vllm_plugin:\n  max_lora_adapters: -3\n",
     "2: vllm_plugin.max_lora_adapters: must be at least 0; got -3"),
    ("engine_exporter:\n  endpoints:\n    - {name: a, model: m, base_url: 'http://[::1'}\n",
     "3: engine_exporter.endpoints[0].base_url: not a valid URL (Invalid IPv6 URL): 'http://[::1'"),
    ("engine_exporter:\n  endpoints:\n    - {name: a, model: m, base_url: ''}\n",
     "3: engine_exporter.endpoints[0].base_url: must be an http:// or https:// URL with a host; got ''"),
    ("engine_exporter:\n  endpoints:\n    - {name: a, model: m, base_url: 'localhost:8000'}\n",
     "3: engine_exporter.endpoints[0].base_url: must be an http:// or https:// URL with a host; got 'localhost:8000'"),
    ("engine_exporter:\n  endpoints:\n    - {name: a, model: m, base_url: 'http://h:99999'}\n",
     "3: engine_exporter.endpoints[0].base_url: not a valid URL (Port out of range 0-65535): 'http://h:99999'"),
    ("engine_exporter:\n  endpoints:\n    - {name: '', model: m, base_url: 'http://h'}\n",
     "3: engine_exporter.endpoints[0].name: must not be empty"),
    ("slo:\n  defaults:\n    ttft_target: 1.5\n",
     "3: slo.defaults.ttft_target: must be between 0 and 1 (exclusive); got 1.5"),
    ("slo:\n  models:\n    m:\n      availability_target: -0.1\n",
     "4: slo.models.m.availability_target: must be between 0 and 1 (exclusive); got -0.1"),
    ("slo:\n  defaults:\n    itl_sla_seconds: .nan\n",
     "3: slo.defaults.itl_sla_seconds: must be a number of seconds greater than 0 and at most 3600; got nan"),
    ("cost:\n  gpu_hour_price_usd: -1\n",
     "2: cost.gpu_hour_price_usd: must be a finite number, 0 or more; got -1.0"),
    ("gpu_exporter:\n  port: 1\n  port: 2\n",
     "3: gpu_exporter.port: duplicate key (first given on line 2)"),
    ("gpu_exporter:\n  port: !!int abc\n",
     "2: gpu_exporter.port: expected an integer, got 'abc'"),
    ("gpu_exporter:\n  port: !custom 1\n",
     "2: gpu_exporter.port: YAML tags are not supported (got '!custom')"),
    ("base: &b {port: 1}\n",
     "1: base: unknown key (expected one of: gpu_exporter, engine_exporter, probe_exporter, feedback_server, "
     "drift_exporter, log_exporter, logging, remediation, scaler, vllm_plugin, slo, "
     "cost)"),
    ("gpu_exporter:\n  <<: {port: 1}\n",
     "2: gpu_exporter: YAML merge keys (<<) are not supported"),
    ("gpu_exporter:\n  ? [a, b]\n  : 1\n",
     "2: gpu_exporter: keys must be plain strings, got a list"),
    ("gpu_exporter:\n  hostname: " + "x" * 200 + "\n  naming: " + "y" * 200 + "\n",
     "3: gpu_exporter.naming: must be one of: inferwatch, dcgm; got '" + "y" * 80 + "'... (200 characters)"),
])
def test_value_rules(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    assert error_of(path) == f"{path}:{expected}"


def test_duplicate_endpoint_names_in_linear_time(tmp_path: Path) -> None:
    endpoints = "".join(f"    - {{name: e{i}, base_url: 'http://h', model: m}}\n" for i in range(15_000))
    again = "    - {name: e7, base_url: 'http://h', model: m}\n"
    path = write(tmp_path, "engine_exporter:\n  endpoints:\n" + endpoints + again)
    assert error_of(path) == f"{path}:3: engine_exporter.endpoints: endpoint names must be unique; repeated: e7"


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(b"gpu_exporter:\n  hostname: caf\xe9\n")
    assert error_of(path) == f"{path}:2: not UTF-8 text (byte 0xe9)"


def test_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(b"gpu_exporter:\n  port: 1\x00\x01\n")
    assert error_of(path).startswith(f"{path}: invalid YAML: ")


def test_endless_file_is_capped() -> None:
    assert error_of(Path("/dev/zero")) == "/dev/zero: file is larger than 1024 KiB"


def test_directory(tmp_path: Path) -> None:
    assert error_of(tmp_path) == f"{tmp_path}: is a directory, not a file"


def test_alias_expansion_is_bounded(tmp_path: Path) -> None:
    """Aliases let a small file name the same mapping 100,000 times: the walk stops, cleanly."""
    aliases = ", ".join(["*e"] * 30_000)
    path = write(tmp_path, "engine_exporter:\n  endpoints: [&e {name: x, base_url: 'http://h', model: m}, "
                 + aliases + "]\n")
    message = error_of(path)
    assert message.startswith(f"{path}:2: engine_exporter.endpoints[") and message.endswith(
        ": too many values (more than 100000)"), message
