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
        "max_containers_per_gpu, proc_root, simulate)"
    )


def test_unknown_section(tmp_path: Path) -> None:
    path = write(tmp_path, "gpu_exporter: {}\ngpu_exprter:\n  port: 1\n")
    assert error_of(path) == (
        f"{path}:2: gpu_exprter: unknown key (expected one of: gpu_exporter, engine_exporter, vllm_plugin, slo, cost)"
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
    path = write(tmp_path, "gpu_exporter:\n  port: [9000\n")
    assert error_of(path) == f"{path}:3: invalid YAML: expected ',' or ']', but got '<stream end>'"


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
