"""The CLI convention: global flags anywhere, one-line errors on stderr, exit codes, extras named."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from inferwatch.cli import COMMANDS, build_parser

EXAMPLE = Path(__file__).resolve().parent.parent / "inferwatch" / "examples" / "inferwatch.yaml"


def run_cli(*args: str, blocked: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run `inferwatch ARGS` in a fresh interpreter; `blocked` modules import as if not installed."""
    code = ("import sys\n"
            f"for name in {blocked!r}: sys.modules[name] = None\n"
            "from inferwatch.cli import main\n"
            "sys.exit(main(sys.argv[1:]))\n")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "inferwatch.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("order", ["before", "after"])
def test_global_flags_before_or_after_the_command(tmp_path: Path, order: str) -> None:
    path = write(tmp_path, "gpu_exporter:\n  port: 9999\n")
    flags = ["-c", str(path), "--log-level", "warning"]
    args = [*flags, "check-config"] if order == "before" else ["check-config", *flags]
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    assert "port: 9999" in result.stdout


def test_global_flags_reach_nested_actions(tmp_path: Path) -> None:
    parser = build_parser()
    args = parser.parse_args(["engine", "status", "--name", "x", "-c", "f.yaml", "--log-level", "debug"])
    assert (args.config, args.log_level, args.name) == ("f.yaml", "debug", "x")
    args = parser.parse_args(["-c", "first.yaml", "engine", "status"])
    assert args.config == "first.yaml", "a flag given before the command is not reset by the subparser"


def test_config_error_after_the_command(tmp_path: Path) -> None:
    path = write(tmp_path, "gpu_exporter:\n  port: abc\n")
    result = run_cli("gpu-exporter", "--config", str(path))
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"inferwatch: config error: {path}:2: gpu_exporter.port: expected an integer, got 'abc'\n"


@pytest.mark.parametrize(("args", "blocked", "extra"), [
    (["inject", "--url", "http://127.0.0.1:1"], ("aiohttp",), "inject"),
    (["recommend", "sweep", "--url", "http://127.0.0.1:1", "--model", "m", "--out", "/nonexistent/x.json"],
     ("aiohttp",), "inject"),
    (["demo", "--no-engine", "--duration", "1"], ("_jsonnet",), "demo"),
])
def test_missing_extra_is_one_line_and_exit_2(args: list[str], blocked: tuple[str, ...], extra: str) -> None:
    result = run_cli(*args, blocked=blocked)
    assert result.returncode == 2
    command = args[0]
    assert result.stderr == f"inferwatch: {command} needs the '{extra}' extra: pip install 'inferwatch[{extra}]'\n"


def test_every_command_has_help_without_its_extras() -> None:
    for command in COMMANDS:
        result = run_cli(command.name, "--help", blocked=("aiohttp", "_jsonnet", "docker"))
        assert result.returncode == 0, f"{command.name}: {result.stderr}"
        assert result.stdout.startswith("usage: inferwatch " + command.name)


def test_busy_port_is_one_line_and_exit_1() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli("gpu-exporter", "--simulate", "h100x2", "--listen-address", "127.0.0.1", "--port", str(port))
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].startswith(f"inferwatch: cannot listen on 127.0.0.1:{port}: ")
    assert "Traceback" not in result.stderr


def test_unknown_scenario_is_a_usage_error() -> None:
    result = run_cli("gpu-exporter", "--simulate", "h200x9", "--port", "0")
    assert result.returncode == 2
    assert result.stderr.startswith("inferwatch: unknown GPU scenario 'h200x9' (known: ")


def test_engine_exporter_without_endpoints(tmp_path: Path) -> None:
    result = run_cli("engine-exporter", "-c", str(write(tmp_path, "engine_exporter: {port: 0}\n")))
    assert result.returncode == 2
    assert result.stderr == ("inferwatch: engine_exporter.endpoints is empty: nothing to probe "
                             "(see the example config)\n")


def test_check_config_prints_the_slo_of_every_model(tmp_path: Path) -> None:
    path = write(tmp_path, "slo:\n  models:\n    big: {ttft_sla_seconds: 4.0}\n")
    result = run_cli("check-config", "-c", str(path))
    assert result.returncode == 0, result.stderr
    assert "ttft_sla_seconds: 4.0" in result.stdout and "ttft_sla_seconds: 2.0" in result.stdout


def test_slo_threshold_must_be_a_vllm_bucket(tmp_path: Path) -> None:
    path = write(tmp_path, "slo:\n  defaults:\n    ttft_seconds: 0.3\n")
    result = run_cli("check-config", "-c", str(path))
    assert result.returncode == 2
    assert result.stderr.startswith(f"inferwatch: config error: {path}:3: slo.defaults.ttft_seconds: "
                                    "must be one of vLLM's bucket bounds (")
