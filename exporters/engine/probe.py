"""Probe one OpenAI-compatible endpoint: /health, then /v1/models and /version, within one deadline."""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from inferwatch.config import EndpointConfig

MAX_SERVED_MODELS = 32  # LoRA adapters show up as models: bound the label values


@dataclass
class ProbeResult:
    endpoint: EndpointConfig
    healthy: bool = False
    failure: str = ""  # "" | timeout | refused | http_4xx | http_5xx | malformed | error
    duration: float = 0.0
    served_models: dict[str, int | None] = field(default_factory=dict)  # id -> max_model_len
    model_root: str | None = None  # where vLLM loaded the configured model from
    engine_version: str | None = None

    @property
    def serves_model(self) -> bool:
        return self.endpoint.model in self.served_models


class ProbeFailure(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _get(url: str, deadline: float, headers: dict[str, str]) -> tuple[int, bytes]:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise ProbeFailure("timeout")
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=remaining) as response:
            body = response.read(1 << 20)  # bounded read: a malformed endpoint cannot fill memory
            if time.monotonic() > deadline:
                raise ProbeFailure("timeout")
            return response.status, body
    except urllib.error.HTTPError as exc:
        return exc.code, b""
    except TimeoutError:
        raise ProbeFailure("timeout") from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, (TimeoutError, socket.timeout)):
            raise ProbeFailure("timeout") from None
        if isinstance(exc.reason, ConnectionRefusedError):
            raise ProbeFailure("refused") from None
        raise ProbeFailure("error") from None
    except (ConnectionError, OSError):
        raise ProbeFailure("error") from None


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise ProbeFailure("malformed") from None


def _status_failure(status: int) -> str:
    return "http_5xx" if status >= 500 else "http_4xx"


def probe(endpoint: EndpointConfig, timeout: float) -> ProbeResult:
    """Never raises: every failure becomes `ProbeResult.failure`."""
    result = ProbeResult(endpoint)
    started = time.monotonic()
    deadline = started + timeout
    headers = {"Accept": "application/json"}
    if endpoint.auth_header_env and os.environ.get(endpoint.auth_header_env):
        headers["Authorization"] = os.environ[endpoint.auth_header_env]
    base = endpoint.base_url.rstrip("/")
    try:
        status, _ = _get(f"{base}/health", deadline, headers)
        if status != 200:
            raise ProbeFailure(_status_failure(status))
        result.healthy = True
        status, body = _get(f"{base}/v1/models", deadline, headers)
        if status != 200:
            raise ProbeFailure(_status_failure(status))
        models = _json(body)
        if not isinstance(models, dict) or not isinstance(models.get("data"), list):
            raise ProbeFailure("malformed")
        for entry in models["data"][:MAX_SERVED_MODELS]:
            if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
                raise ProbeFailure("malformed")
            max_len = entry.get("max_model_len")
            result.served_models[entry["id"]] = max_len if isinstance(max_len, int) else None
            if entry["id"] == endpoint.model and isinstance(entry.get("root"), str):
                result.model_root = entry["root"]
        status, body = _get(f"{base}/version", deadline, headers)
        if status == 200:
            version = _json(body)
            if isinstance(version, dict) and isinstance(version.get("version"), str):
                result.engine_version = version["version"][:64]
    except ProbeFailure as failure:
        result.failure = failure.reason
    result.duration = time.monotonic() - started
    return result
