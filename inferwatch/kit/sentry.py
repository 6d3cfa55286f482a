"""Optional error reporting to Sentry (`sentry` extra), on when `SENTRY_DSN` is set.

What goes out is for debugging inferwatch, never the traffic it watches: no frame locals, no request
bodies, no default PII, no Sentry Logs (log records leave only as scrubbed breadcrumbs and events), and a
`before_send` scrubber that drops prompt/output-like keys and redacts quoted text in messages that mention
prompts or outputs. Works with sentry-sdk 2 and 3 (3 renamed the privacy options and sends log records as
Sentry Logs by default). Without a DSN (or without sentry-sdk) every
function here is a cheap no-op, so callers never check; sentry_sdk is imported only by `init`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import time
from typing import Any

log = logging.getLogger(__name__)

EXTRA = "sentry"
TEMPLATES_PER_MINUTE = 10  # token bucket: burst and refill per minute, per process
MAX_SEEN_TEMPLATES = 10_000  # remembered to never send one twice; beyond, no more template events
MAX_TEMPLATE_CHARS = 1000
# Keys whose values are (or may be) user text, dropped wherever they appear in extra/request data.
SENSITIVE_KEYS = frozenset({"prompt", "prompts", "messages", "message_text", "output", "outputs", "text",
                            "completion", "completions", "input", "inputs", "response_text", "body"})
_MENTIONS = re.compile(r"prompt|output|completion|messages|response", re.IGNORECASE)
_QUOTED = re.compile(r"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|`[^`]*`""", re.DOTALL)
REDACTED = "[redacted]"
_LEVELS = {"critical": "fatal", "fatal": "fatal", "emergency": "fatal", "alert": "fatal", "error": "error",
           "err": "error", "warning": "warning", "warn": "warning", "info": "info", "notice": "info",
           "debug": "debug"}

_lock = threading.Lock()
_active = False
_seen: set[bytes] = set()


class TokenBucket:
    """At most `capacity` at once, refilled at `capacity` per `period` seconds."""

    def __init__(self, capacity: int, period: float, clock=time.monotonic):
        self.capacity, self.rate, self.clock = capacity, capacity / period, clock
        self.tokens, self.stamp = float(capacity), clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


_bucket = TokenBucket(TEMPLATES_PER_MINUTE, 60.0)


def init(component: str, dsn: str | None = None) -> bool:
    """Start reporting for `component` (the command name) if a DSN is given or in $SENTRY_DSN; True if on."""
    global _active
    dsn = (dsn or os.environ.get("SENTRY_DSN", "")).strip()
    if not dsn:
        return False
    try:
        import sentry_sdk
        from sentry_sdk.integrations.atexit import AtexitIntegration
        from sentry_sdk.integrations.dedupe import DedupeIntegration
        from sentry_sdk.integrations.excepthook import ExcepthookIntegration
        from sentry_sdk.integrations.logging import LoggingIntegration
        from sentry_sdk.integrations.threading import ThreadingIntegration
    except ImportError:
        log.warning("SENTRY_DSN is set but sentry-sdk is not installed; errors are not reported "
                    "(pip install 'inferwatch[%s]')", EXTRA)
        return False
    from inferwatch import __version__

    try:
        _start(sentry_sdk, dsn, component, __version__, [
            _logging_integration(sentry_sdk, LoggingIntegration),
            ExcepthookIntegration(), DedupeIntegration(), ThreadingIntegration(propagate_scope=True),
            AtexitIntegration(callback=_atexit_message),
        ])
    except Exception as exc:  # a malformed DSN: report nothing, serve anyway
        log.warning("SENTRY_DSN is not usable (%s); errors are not reported", exc)
        return False
    with _lock:
        _active = True
    return True


def _start(sentry_sdk: Any, dsn: str, component: str, version: str, integrations: list) -> None:
    sentry_sdk.init(
        dsn=dsn,
        release=f"inferwatch@{version}",
        # Only what a daemon needs: no argv (flags may carry secrets), no HTTP breadcrumbs (URLs with
        # tokens), no auto-enabled framework integrations (aiohttp would attach request data).
        default_integrations=False,
        integrations=integrations,
        **_no_user_data(sentry_sdk),
        max_request_body_size="never",
        traces_sample_rate=0,
        before_send=scrub_event,
        before_breadcrumb=scrub_breadcrumb,
    )
    sentry_sdk.get_global_scope().set_tag("component", component)  # every thread's events


def _major(sentry_sdk: Any) -> int:
    head = str(getattr(sentry_sdk, "VERSION", "2")).split(".")[0]
    return int(head) if head.isdigit() else 2


def _logging_integration(sentry_sdk: Any, integration: Any) -> Any:
    """Log records as breadcrumbs (INFO+) and events (ERROR+), never as Sentry Logs: those are sent as they
    are, past `before_send`. sentry-sdk 3 gave `level` to Sentry Logs (2.x: breadcrumbs)."""
    if _major(sentry_sdk) < 3:
        return integration(level=logging.INFO, event_level=logging.ERROR)
    return integration(level=None, event_level=logging.ERROR, breadcrumb_level=logging.INFO)


def _no_user_data(sentry_sdk: Any) -> dict[str, Any]:
    """No user identity, no frame locals, no HTTP bodies, no Sentry Logs, in each major version's own words
    (sentry-sdk 3 replaced `send_default_pii` and `include_local_variables` with `data_collection`, and
    rejects them)."""
    if _major(sentry_sdk) < 3:
        return {"send_default_pii": False, "include_local_variables": False}
    return {"data_collection": {"user_info": False, "stack_frame_variables": False, "http_bodies": []},
            "before_send_log": lambda _log, _hint: None}


def active() -> bool:
    return _active


def capture_exception(exc: BaseException, **tags: object) -> None:
    """Report `exc` (already handled by the caller) with `tags`; a no-op when not initialised."""
    if not _active:
        return
    try:
        import sentry_sdk

        sentry_sdk.capture_exception(exc, tags={k: str(v) for k, v in tags.items()})
    except Exception:  # reporting must never break the thing being reported on
        log.debug("sentry: capture_exception failed", exc_info=True)


def capture_new_template(source: str, klass: str, severity: str, template: str,
                         version: str | None = None) -> bool:
    """One message event per engine error template never seen before, at most TEMPLATES_PER_MINUTE.

    `template` is the masked line (numbers, ids and prompt text already replaced by the caller); it
    still passes through the scrubber. Returns True if an event was sent.
    """
    if not _active:
        return False
    key = hashlib.blake2b(f"{source}\0{klass}\0{template}".encode(), digest_size=16).digest()
    with _lock:
        if key in _seen or len(_seen) >= MAX_SEEN_TEMPLATES or not _bucket.take():
            return False
        _seen.add(key)
    tags = {"source": source, "class": klass, "severity": severity}
    if version:
        tags["version"] = str(version)
    try:
        import sentry_sdk

        sentry_sdk.capture_message(
            f"new {source} error template ({klass}): {template[:MAX_TEMPLATE_CHARS]}",
            level=_LEVELS.get(str(severity).lower(), "error"), tags=tags,
            fingerprint=["inferwatch-new-template", source, klass, template[:MAX_TEMPLATE_CHARS]],
        )
    except Exception:
        log.debug("sentry: capture_new_template failed", exc_info=True)
        return False
    return True


def flush(timeout: float = 2.0) -> None:
    """Send what is queued (shutdown); a no-op when not initialised."""
    if not _active:
        return
    try:
        import sentry_sdk

        sentry_sdk.flush(timeout=timeout)
    except Exception:
        log.debug("sentry: flush failed", exc_info=True)


def redact(text: str) -> str:
    """Quoted strings replaced in a message that mentions prompts or outputs (the quotes are the payload)."""
    if not isinstance(text, str) or not _MENTIONS.search(text):
        return text
    return _redact_quoted(text)


def _redact_quoted(text: str) -> str:
    return _QUOTED.sub(lambda m: f"{m.group(0)[0]}{REDACTED}{m.group(0)[-1]}", text)


def _drop_sensitive(value: Any, depth: int = 0) -> Any:
    if depth > 8:
        return REDACTED
    if isinstance(value, dict):
        return {k: REDACTED if str(k).lower() in SENSITIVE_KEYS else _drop_sensitive(v, depth + 1)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_drop_sensitive(v, depth + 1) for v in value]
    return redact(value) if isinstance(value, str) else value


def _scrub_frames(container: Any) -> None:
    for item in (container or {}).get("values") or []:
        for frame in (item.get("stacktrace") or {}).get("frames") or []:
            frame.pop("vars", None)


def scrub_event(event: dict[str, Any], hint: Any = None) -> dict[str, Any]:
    """Sentry's before_send: no locals, no prompt-like keys, quoted text redacted in prompt-ish messages."""
    _scrub_frames(event.get("exception"))
    _scrub_frames(event.get("threads"))
    for item in (event.get("exception") or {}).get("values") or []:
        if isinstance(item.get("value"), str):
            item["value"] = redact(item["value"])
    if "extra" in event:
        event["extra"] = _drop_sensitive(event["extra"])
    request = event.get("request")
    if isinstance(request, dict):
        for key in ("data", "cookies", "query_string"):
            request.pop(key, None)
    if isinstance(event.get("message"), str):
        event["message"] = redact(event["message"])
    entry = event.get("logentry")
    if isinstance(entry, dict):
        _scrub_logentry(entry)
    for crumb in (event.get("breadcrumbs") or {}).get("values") or []:
        scrub_breadcrumb(crumb)
    return event


def _scrub_logentry(entry: dict[str, Any]) -> None:
    """A log message's args may be the prompt itself: when the line mentions prompts, none are kept."""
    template, formatted = entry.get("message"), entry.get("formatted")
    if not any(isinstance(t, str) and _MENTIONS.search(t) for t in (template, formatted)):
        entry["params"] = _drop_sensitive(list(entry.get("params") or ()))
        return
    params = entry.get("params")
    entry["params"] = [REDACTED] * len(params) if isinstance(params, list | tuple) else []
    if isinstance(template, str):
        entry["message"] = _redact_quoted(template)
    if isinstance(formatted, str):
        entry["formatted"] = _redacted_line(template, params, formatted)


def _redacted_line(template: object, params: object, formatted: str) -> str:
    """The log line again with every arg redacted, quoted or not ("prompt %s too long")."""
    if isinstance(template, str) and isinstance(params, list | tuple) and params:
        try:
            return _redact_quoted(template % ((REDACTED,) * len(params)))
        except (TypeError, ValueError, KeyError):  # %d and friends: keep the text, quotes redacted
            pass
    return _redact_quoted(formatted)


def scrub_breadcrumb(crumb: dict[str, Any], hint: Any = None) -> dict[str, Any]:
    """Log lines become breadcrumbs of later events: the same rules as for messages."""
    record = hint.get("log_record") if isinstance(hint, dict) else None
    message = crumb.get("message")
    if isinstance(message, str) and _MENTIONS.search(message):
        if isinstance(record, logging.LogRecord) and isinstance(record.args, tuple):
            crumb["message"] = _redacted_line(record.msg, record.args, message)
        else:
            crumb["message"] = _redact_quoted(message)
    if isinstance(crumb.get("data"), dict):
        crumb["data"] = _drop_sensitive(crumb["data"])
    return crumb


def _atexit_message(pending: int, timeout: float) -> None:
    """Instead of sentry's default, which prints to stderr (and would break JSON log lines)."""
    log.info("sentry: sending %d pending event(s), waiting up to %gs", pending, timeout)


def _reset_for_tests() -> None:
    global _active, _bucket
    with _lock:
        _active = False
        _seen.clear()
        _bucket = TokenBucket(TEMPLATES_PER_MINUTE, 60.0)
