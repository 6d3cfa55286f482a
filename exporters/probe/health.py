"""Model health checks that run with a probe module: is the model listed, with the context it should
have, does its tokenizer round-trip, which engine version serves it; and the local model cache's free space.

`check_health` never raises and never waits past its deadline (every request is the probe client's,
bounded by the time left). A check the module does not ask for, or the engine cannot answer (no
`max_model_len` in the list, no `/tokenize`, no `/version`), is None: reported as absent, never as a pass.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field

from inferwatch.exporters.probe.client import engine_version, list_models, tokenize_roundtrip
from inferwatch.exporters.probe.modules import Module
from inferwatch.kit.labels import clean

MIN_STEP_SECONDS = 0.01  # a request with less time than this left is not started


@dataclass
class HealthResult:
    model: str = ""  # the model the cases ask for: the module's, else the first one /v1/models lists
    listed: bool | None = None  # the model is in /v1/models (None: the list could not be read)
    list_failure: str | None = None  # the client's reason when /v1/models failed
    listed_ids: list[str] = field(default_factory=list, repr=False)
    max_context_tokens: int | None = None  # the model's max_model_len, when the engine reports it
    context_matches: bool | None = None  # max_context_tokens == health.max_model_len (None: not configured)
    tokenizer_passed: bool | None = None  # None: not configured, or the engine has no /tokenize
    engine_version: str | None = None  # label-cleaned


def check_health(module: Module, base_url: str, deadline_seconds: float, token: str | None = None) -> HealthResult:
    """Run the module's model checks against `base_url` within one deadline (never raises)."""
    end = time.perf_counter() + deadline_seconds
    result = HealthResult(model=module.model)

    def left() -> float:
        return end - time.perf_counter()

    ok, entries, failure = list_models(base_url, max(left(), 0.0), token)
    if not ok:
        result.list_failure = failure
        result.listed = False
        if module.health.max_model_len is not None:
            result.context_matches = False
    else:
        result.listed_ids = [entry["id"] for entry in entries]
        if not result.model and entries:
            result.model = entries[0]["id"]
        entry = next((e for e in entries if e["id"] == result.model), None) if result.model else None
        result.listed = entry is not None
        if entry is not None:
            result.max_context_tokens = entry["max_model_len"]
        expected = module.health.max_model_len
        if expected is not None and (entry is None or entry["max_model_len"] is not None):
            result.context_matches = entry is not None and entry["max_model_len"] == expected
    if left() > MIN_STEP_SECONDS:
        version, _ = engine_version(base_url, left(), token)
        result.engine_version = clean(version, 64) if version else None
    text = module.health.tokenizer_text
    if text and result.model and left() > MIN_STEP_SECONDS:
        roundtrip = tokenize_roundtrip(base_url, result.model, text, left(), token)
        if roundtrip.passed is not None:
            result.tokenizer_passed = roundtrip.passed
        elif roundtrip.failure is not None:  # the check could not run: the tokenizer is not healthy
            result.tokenizer_passed = False
    elif text and result.listed is False:
        result.tokenizer_passed = False
    return result


def free_bytes(path: str) -> int:
    """Bytes free to unprivileged users on the filesystem holding `path` (OSError if it cannot be read)."""
    return shutil.disk_usage(path).free
