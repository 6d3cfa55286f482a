"""inferwatch's own logs: ECS JSON lines a shipper can parse, text by default, chosen by flag or config."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from inferwatch.kit.logformat import ECS_VERSION, EcsFormatter, _StderrHandler, configure_logging

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def lines_of(formatter: logging.Formatter, emit) -> list[dict]:
    """Records `emit(logger)` logs, formatted by `formatter`, parsed back line by line."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    logger = logging.getLogger("inferwatch.test.logformat")
    logger.addHandler(handler)
    logger.propagate, logger.level = False, logging.DEBUG
    try:
        emit(logger)
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    text = out.getvalue()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_ecs_fields_present_and_typed() -> None:
    [doc] = lines_of(EcsFormatter("gpu-exporter"),
                     lambda log: log.warning("GPU %d is hot:\n%s", 3, "line two", extra={"labels": {"gpu": "3"}}))
    assert TIMESTAMP.match(doc["@timestamp"]), doc["@timestamp"]
    assert doc["log"]["level"] == "warning"
    assert doc["log"]["logger"] == "inferwatch.test.logformat"
    assert doc["message"] == "GPU 3 is hot:\nline two"  # a multi-line message is still one JSON line
    assert doc["service"] == {"name": "inferwatch-gpu-exporter"}
    assert doc["process"]["pid"] == os.getpid() and isinstance(doc["process"]["pid"], int)
    assert doc["ecs"] == {"version": ECS_VERSION}
    assert doc["labels"] == {"gpu": "3"}
    assert isinstance(doc["log"]["origin"]["file"]["line"], int)
    assert "error" not in doc
    assert not any("." in key for key in doc if key != "@timestamp"), "nested objects, not dotted keys"
    [plain] = lines_of(EcsFormatter(), lambda log: log.info("hello"))
    assert plain["service"]["name"] == "inferwatch" and "labels" not in plain


def test_exception_fields_carry_the_stack_trace() -> None:
    def emit(log: logging.Logger) -> None:
        try:
            {}["missing"]
        except KeyError:
            log.exception("lookup failed")

    [doc] = lines_of(EcsFormatter("engine-exporter"), emit)
    assert doc["log"]["level"] == "error" and doc["message"] == "lookup failed"
    assert doc["error"]["type"] == "KeyError"
    assert doc["error"]["message"] == "'missing'"
    assert doc["error"]["stack_trace"].startswith("Traceback (most recent call last):")
    assert 'in emit\n    {}["missing"]' in doc["error"]["stack_trace"]
    assert doc["error"]["stack_trace"].endswith("KeyError: 'missing'")


def test_odd_args_and_labels_never_crash_the_line() -> None:
    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no")

    def emit(log: logging.Logger) -> None:
        log.info("set %s", {1, 2})  # a set: not JSON, formatted by the message already
        log.info("count %d", "not a number")  # args that do not fit the format
        log.info("odd labels", extra={"labels": {"when": object(), "bad": Unprintable(), 3: b"x"}})

    first, second, third = lines_of(EcsFormatter(), emit)
    assert first["message"] == "set {1, 2}"
    assert second["message"].startswith("count %d") and "not a number" in second["message"]
    assert third["labels"]["when"].startswith("<object object")
    assert third["labels"]["bad"] == "<unprintable Unprintable>"
    assert third["labels"]["3"] == "b'x'"


@pytest.fixture
def root_logging() -> Iterator[logging.Logger]:
    """The root logger restored after a test that configures it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(False)


def test_configure_logging_replaces_its_handler(root_logging: logging.Logger) -> None:
    configure_logging("debug", "text", "gpu-exporter")
    configure_logging("warning", "json", "gpu-exporter")
    ours = [h for h in root_logging.handlers if isinstance(h, _StderrHandler)]
    assert len(ours) == 1 and isinstance(ours[0].formatter, EcsFormatter)
    assert root_logging.level == logging.WARNING
    assert ours[0].stream is sys.stderr  # follows sys.stderr, whatever it is now
    with pytest.raises(ValueError, match="log format"):
        configure_logging("info", "xml", "x")


# End to end: a real command that logs (the simulated GPU exporter says where it listens), stopped by SIGTERM.

def run_exporter(*flags: str, config: Path | None = None) -> list[str]:
    """`inferwatch gpu-exporter --simulate` until its first log line, then SIGTERM: all of stderr's lines."""
    args = [sys.executable, "-m", "inferwatch.cli", "gpu-exporter", "--simulate", "h100x2",
            "--listen-address", "127.0.0.1", "--port", "0", *flags]
    if config is not None:
        args += ["-c", str(config)]
    env = {k: v for k, v in os.environ.items() if k not in ("SENTRY_DSN", "INFERWATCH_CONFIG")}
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    killer = threading.Timer(60, proc.kill)  # a hang fails the test instead of blocking it
    killer.start()
    try:
        first = proc.stderr.readline()
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=30)
    finally:
        killer.cancel()
        proc.kill()
    assert proc.returncode == 0, first + rest
    return [line for line in (first + rest).splitlines() if line]


def test_log_format_json_flag_end_to_end() -> None:
    lines = run_exporter("--log-format", "json")
    docs = [json.loads(line) for line in lines]  # every stderr line is a JSON object
    listening = next(d for d in docs if d["message"].startswith("GPU exporter on http://127.0.0.1:"))
    assert listening["log"]["level"] == "info"
    assert listening["log"]["logger"] == "inferwatch.exporters.gpu.server"
    assert listening["service"]["name"] == "inferwatch-gpu-exporter"
    assert TIMESTAMP.match(listening["@timestamp"]) and listening["ecs"]["version"] == ECS_VERSION


def test_text_is_the_default() -> None:
    lines = run_exporter()
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO inferwatch\.exporters\.gpu\.server: GPU exporter on ",
                    lines[0]), lines


def test_config_logging_format_json(tmp_path: Path) -> None:
    config = tmp_path / "inferwatch.yaml"
    config.write_text("logging:\n  format: json\n")
    docs = [json.loads(line) for line in run_exporter(config=config)]
    assert any(d["message"].startswith("GPU exporter on ") for d in docs)
    # The flag wins over the file.
    assert not run_exporter("--log-format", "text", config=config)[0].startswith("{")


def test_config_error_is_still_one_plain_line(tmp_path: Path) -> None:
    config = tmp_path / "inferwatch.yaml"
    config.write_text("logging:\n  format: xml\n")
    code = "import sys\nfrom inferwatch.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    result = subprocess.run([sys.executable, "-c", code, "--log-format", "json", "check-config", "-c", str(config)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith(f"inferwatch: config error: {config}:2: logging.format: must be one of text, json")
    assert len(result.stderr.splitlines()) == 1
