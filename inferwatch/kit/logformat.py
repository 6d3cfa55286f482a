"""inferwatch's own log lines: `text` for people, `json` (Elastic Common Schema) for log shippers.

The JSON form is one object per line with ECS fields as *nested* objects (`{"log": {"level": ...}}`),
as ecs-logging-python writes them: Filebeat's `ndjson` parser, Elasticsearch's ECS mappings and
Splunk's `INDEXED_EXTRACTIONS = json` all read nested objects into the dotted field names
(`log.level`, `service.name`) without a processor. Structured fields go in `extra={"labels": {...}}`.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from typing import Any

ECS_VERSION = "8.11.0"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FORMATS = ("text", "json")
_capturing_warnings = False  # set by configure_logging, so text mode undoes only what json did


def service_name(component: str | None) -> str:
    return f"inferwatch-{component}" if component else "inferwatch"


class EcsFormatter(logging.Formatter):
    """A LogRecord as one ECS JSON line; never raises on odd messages, args or labels."""

    def __init__(self, component: str | None = None):
        super().__init__()
        self.service = service_name(component)

    def format(self, record: logging.LogRecord) -> str:
        created = datetime.datetime.fromtimestamp(record.created, tz=datetime.UTC)
        doc: dict[str, Any] = {
            "@timestamp": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "log": {
                "level": record.levelname.lower(),
                "logger": record.name,
                "origin": {"file": {"name": record.filename, "line": record.lineno}, "function": record.funcName},
            },
            "message": _message(record),
            "service": {"name": self.service},
            "process": {"pid": record.process, "thread": {"name": record.threadName}},
            "ecs": {"version": ECS_VERSION},
        }
        labels = getattr(record, "labels", None)
        if isinstance(labels, dict) and labels:
            doc["labels"] = {str(k): v for k, v in labels.items()}
        if record.exc_info and record.exc_info[0] is not None:
            exc_type, exc, _ = record.exc_info
            if not record.exc_text:
                record.exc_text = self.formatException(record.exc_info)
            doc["error"] = {"type": _qualified(exc_type), "message": _safe_str(exc), "stack_trace": record.exc_text}
        elif record.exc_text:  # a record re-emitted from elsewhere: only the formatted text survived
            doc["error"] = {"stack_trace": record.exc_text}
        return json.dumps(doc, default=_safe_str, ensure_ascii=False, separators=(",", ":"))


def _message(record: logging.LogRecord) -> str:
    """`record.getMessage()`, or the raw parts when the args do not fit the format (logging would print a
    traceback to stderr instead of the line; a shipper is better served by the line)."""
    try:
        return record.getMessage()
    except Exception:
        return f"{_safe_str(record.msg)} {_safe_str(record.args)}"


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"


def _qualified(cls: type) -> str:
    module = getattr(cls, "__module__", "builtins")
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at the time (as logging.lastResort does), so a handler set up
    before stderr is swapped (test capture, daemon redirection) never writes to a closed stream."""

    def __init__(self, level: int = logging.NOTSET):
        logging.Handler.__init__(self, level)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:  # StreamHandler.setStream; ours always follows sys.stderr
        pass


def configure_logging(level: str = "info", fmt: str = "text", component: str | None = None) -> None:
    """The root logger's one stderr handler, in `fmt`; calling it again replaces it (idempotent).

    Replaced: our handler and any plain stderr StreamHandler (basicConfig's). Other handlers (a file,
    a test harness's capture) are left alone.
    """
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _StderrHandler) or (
                type(handler) is logging.StreamHandler and handler.stream in (sys.stderr, sys.__stderr__)):
            root.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(EcsFormatter(component) if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(level.upper())
    # In JSON every stderr line must parse: Python's warnings go through logging too.
    global _capturing_warnings
    if fmt == "json" or _capturing_warnings:
        logging.captureWarnings(fmt == "json")
        _capturing_warnings = fmt == "json"
