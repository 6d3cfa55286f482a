"""Probe one OpenAI-compatible endpoint: /health, then /v1/models and /version, within one deadline.

`probe_async` never raises: every failure becomes `ProbeResult.failure`, one bounded word:
`timeout`, `refused`, `http_4xx`, `http_5xx`, `malformed`, `redirect`, `tls`, `bad_url`, `error`.
The deadline is enforced by `asyncio.wait_for` around all of the endpoint's I/O, so the real
duration is reported and no socket outlives it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

from inferwatch.config import EndpointConfig
from inferwatch.exporters.engine.http import HttpFailure, get
from inferwatch.kit.labels import clean

log = logging.getLogger(__name__)

MAX_SERVED_MODELS = 32  # LoRA adapters show up as models: bound the exported label values


@dataclass
class ProbeResult:
    endpoint: EndpointConfig
    healthy: bool = False
    failure: str = ""  # "" or one of the reasons above (the collector adds `stale`)
    duration: float = 0.0
    served_models: dict[str, int | None] = field(default_factory=dict)  # id -> max_model_len (capped)
    serves_model: bool = False  # the configured model is in /v1/models (the whole list is scanned)
    model_root: str | None = None  # where vLLM loaded the configured model from
    engine_version: str | None = None
    bug: str = ""  # class of an exception our own probe code raised (counted as a self-metric error)


def _status_failure(status: int) -> str:
    return "http_5xx" if status >= 500 else "http_4xx"


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:  # includes invalid UTF-8
        raise HttpFailure("malformed", "not JSON") from None


def auth_headers(endpoint: EndpointConfig) -> dict[str, str]:
    headers = {"Accept": "application/json"}
    if endpoint.auth_header_env and os.environ.get(endpoint.auth_header_env):
        headers["Authorization"] = os.environ[endpoint.auth_header_env]
    return headers


def read_model_list(body: bytes, endpoint: EndpointConfig, result: ProbeResult) -> None:
    """Fill `result` from a /v1/models body; HttpFailure("malformed") for anything else."""
    models = _json(body)
    if not isinstance(models, dict) or not isinstance(models.get("data"), list):
        raise HttpFailure("malformed", "not an OpenAI model list")
    for entry in models["data"]:  # bounded by the body size, not by a count
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            raise HttpFailure("malformed", "model entry without an id")
        if entry["id"] == endpoint.model:
            result.serves_model = True
            if isinstance(entry.get("root"), str):
                result.model_root = entry["root"]
        if len(result.served_models) < MAX_SERVED_MODELS:
            max_len = entry.get("max_model_len")
            result.served_models[clean(entry["id"])] = max_len if type(max_len) is int else None


async def _steps(endpoint: EndpointConfig, result: ProbeResult) -> None:
    headers = auth_headers(endpoint)
    base = endpoint.base_url.rstrip("/")
    health = await get(f"{base}/health", headers)
    if health.status != 200:
        raise HttpFailure(_status_failure(health.status))
    result.healthy = True
    listed = await get(f"{base}/v1/models", headers)
    if listed.status != 200:
        raise HttpFailure(_status_failure(listed.status))
    read_model_list(listed.body, endpoint, result)
    version = await get(f"{base}/version", headers)
    if version.status == 200:
        answer = _json(version.body)
        if isinstance(answer, dict) and isinstance(answer.get("version"), str):
            result.engine_version = clean(answer["version"], 64)


async def probe_async(endpoint: EndpointConfig, timeout: float) -> ProbeResult:
    result = ProbeResult(endpoint)
    started = time.monotonic()
    try:
        await asyncio.wait_for(_steps(endpoint, result), timeout)
    except TimeoutError:
        result.failure = "timeout"
    except HttpFailure as failure:
        result.failure = failure.reason
        log.debug("probe of %s failed: %s", endpoint.name, failure)
    except Exception as exc:  # a bug in a step: say `error`, never blame a timeout
        result.failure, result.bug = "error", type(exc).__name__
        log.debug("probe of %s raised %s", endpoint.name, type(exc).__name__, exc_info=True)
    result.duration = time.monotonic() - started
    return result


def probe(endpoint: EndpointConfig, timeout: float) -> ProbeResult:
    """One probe on a private event loop (tools and tests; the exporter shares one loop)."""
    return asyncio.run(probe_async(endpoint, timeout))
