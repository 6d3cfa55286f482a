"""What an action does for one alert: render it into an exact request or argv (`plan`), then run it.

Rendering happens before anything is decided or queued, so a dry run audits precisely what would
have run, and a label value that would inject a flag fails the action before it exists. The three
kinds: `http` (urllib, no redirects, no environment proxies), `command` (subprocess without a
shell, minimal environment), `kubernetes` (a kubectl argv, run like a command).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from inferwatch.config import RemediationActionConfig
from inferwatch.remediate.templates import Context, RenderError, render

OUTPUT_LIMIT = 2048  # bytes of a command's output or an HTTP answer kept in the audit record
REDACTED = "<redacted>"
_SECRET_HEADERS = ("authorization", "proxy-authorization", "cookie", "x-api-key", "api-key")
# Kubernetes object names (DNS-1123 labels) and label values: what kubectl would accept anyway,
# checked here so a label value can never become something else on the command line.
_K8S_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z")
_K8S_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?\Z")


@dataclass(frozen=True)
class Plan:
    """One rendered action: exactly what runs (or, in a dry run, what would have)."""

    action: str
    kind: str
    timeout: float
    argv: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    method: str = ""
    url: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    precondition: str = ""  # GET first; run only on a 2xx

    def describe(self) -> dict[str, Any]:
        """The audit view: secrets in headers redacted, the body as text."""
        precondition = {"precondition_url": self.precondition} if self.precondition else {}
        if self.argv:
            return {"argv": list(self.argv), **precondition}
        headers = {k: (REDACTED if k.lower() in _SECRET_HEADERS else v) for k, v in self.headers.items()}
        body = self.body.decode("utf-8", "replace") if self.body is not None else None
        return {"method": self.method, "url": self.url, "headers": headers, "body": body, **precondition}

    def summary(self) -> str:
        return " ".join(self.argv) if self.argv else f"{self.method} {self.url}"


@dataclass(frozen=True)
class Outcome:
    succeeded: bool
    reason: str | None  # why it failed: timeout, exit_status, http_status, connection_error, not_found
    detail: dict[str, Any]  # exit code or HTTP status, output (truncated), duration


def template_values(alert: Any, group_key: str) -> dict[str, object]:
    return {"alertname": alert.alertname, "status": alert.status, "fingerprint": alert.fingerprint,
            "group_key": group_key, "labels": alert.labels, "annotations": alert.annotations}


def plan(action: RemediationActionConfig, values: Mapping[str, object], token: str | None = None) -> Plan:
    """Render `action` for one alert's `values`, or RenderError (the action fails, nothing runs)."""
    planned = _plan(action, values, token)
    if action.precondition_url is None:
        return planned
    return replace(planned, precondition=render(action.precondition_url, values, "url"))


def _plan(action: RemediationActionConfig, values: Mapping[str, object], token: str | None) -> Plan:
    if action.kind == "http":
        headers = {k: render(v, values, "header") for k, v in action.headers.items()}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        body = render(action.body, values, "body").encode() if action.body is not None else None
        if body is not None and not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
        return Plan(action.name, "http", action.timeout_seconds, method=action.method,
                    url=render(action.url or "", values, "url"), headers=headers, body=body)
    if action.kind == "command":
        argv = tuple(render(v, values, "argv") for v in action.argv)
        return Plan(action.name, "command", action.timeout_seconds, argv=argv, env=minimal_env())
    return Plan(action.name, "kubernetes", action.timeout_seconds, argv=tuple(kubectl_argv(action, values)),
                env=minimal_env(kubernetes=True))


def kubectl_argv(action: RemediationActionConfig, values: Mapping[str, object]) -> list[str]:
    def name(key: str) -> str:
        value = _render_checked(getattr(action, key), values, "argv", key)
        if not _K8S_NAME.match(value):
            raise RenderError("bad_value", f"{key} {value[:80]!r} is not a Kubernetes object name")
        return value

    argv = [action.kubectl, *(["--context", action.context] if action.context else [])]
    namespace = name("namespace")
    if action.operation == "rollout_undo":
        return [*argv, "rollout", "undo", f"deployment/{name('deployment')}", "-n", namespace]
    selector = {}
    for label, template in action.selector.items():
        value = _render_checked(template, values, "plain", f"selector.{label}")
        if not _K8S_LABEL_VALUE.match(value) or len(value) > 63:
            raise RenderError("bad_value", f"selector.{label} {value[:80]!r} is not a Kubernetes label value")
        selector[label] = value
    patch = json.dumps({"spec": {"selector": selector}}, separators=(",", ":"), sort_keys=True)
    return [*argv, "patch", "service", name("service"), "-n", namespace, "--type", "merge", "-p", patch]


def _render_checked(template: str, values: Mapping[str, object], context: Context, key: str) -> str:
    try:
        return render(template, values, context)
    except RenderError as exc:
        raise RenderError(exc.reason, f"{key}: {exc}") from None


def minimal_env(kubernetes: bool = False) -> dict[str, str]:
    """PATH, HOME and a UTF-8 locale (and KUBECONFIG for kubectl): no secrets of this process leak in."""
    env = {"PATH": os.environ.get("PATH", os.defpath), "LANG": "C.UTF-8"}
    if "HOME" in os.environ:
        env["HOME"] = os.environ["HOME"]
    if kubernetes and "KUBECONFIG" in os.environ:
        env["KUBECONFIG"] = os.environ["KUBECONFIG"]
    return env


def execute(planned: Plan) -> Outcome:
    started = time.monotonic()
    outcome = _http(planned) if planned.kind == "http" else _subprocess(planned)
    outcome.detail["duration_seconds"] = round(time.monotonic() - started, 3)
    return outcome


def precondition_holds(planned: Plan) -> Outcome:
    """GET the plan's precondition URL (no redirects, at most 5 s): succeeded on a 2xx."""
    check = Plan(planned.action, "http", min(planned.timeout, 5.0), method="GET", url=planned.precondition)
    outcome = _http(check)
    return Outcome(outcome.succeeded, outcome.reason, {"precondition_url": planned.precondition, **outcome.detail})


def truncate(data: bytes | str | None) -> str:
    if data is None:
        return ""
    raw = data.encode("utf-8", "replace") if isinstance(data, str) else data
    text = raw[:OUTPUT_LIMIT].decode("utf-8", "replace")
    return text + (f"... ({len(raw)} bytes)" if len(raw) > OUTPUT_LIMIT else "")


def _subprocess(planned: Plan) -> Outcome:
    try:
        done = subprocess.run(list(planned.argv), capture_output=True, timeout=planned.timeout, env=dict(planned.env),
                              stdin=subprocess.DEVNULL, shell=False, check=False)
    except subprocess.TimeoutExpired as exc:
        return Outcome(False, "timeout", {"output": truncate((exc.stdout or b"") + (exc.stderr or b""))})
    except OSError as exc:  # not found, not executable
        return Outcome(False, "not_found", {"error": str(exc)})
    detail = {"exit_code": done.returncode, "output": truncate(done.stdout + done.stderr)}
    return Outcome(done.returncode == 0, None if done.returncode == 0 else "exit_status", detail)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:  # a 3xx is an answer, not a new target
        return None


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects())


def _http(planned: Plan) -> Outcome:
    request = urllib.request.Request(planned.url, data=planned.body, headers=dict(planned.headers),
                                     method=planned.method)
    try:
        with _OPENER.open(request, timeout=planned.timeout) as response:
            status, answer = response.status, response.read(OUTPUT_LIMIT + 1)
    except urllib.error.HTTPError as exc:
        status, answer = exc.code, exc.read(OUTPUT_LIMIT + 1) if exc.fp else b""
    except TimeoutError:
        return Outcome(False, "timeout", {})
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return Outcome(False, "timeout" if isinstance(reason, TimeoutError) else "connection_error",
                       {"error": str(reason)})
    ok = 200 <= status < 300
    return Outcome(ok, None if ok else "http_status", {"http_status": status, "output": truncate(answer)})
