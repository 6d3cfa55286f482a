"""Feedback payloads -> validated `Feedback` records, or one error naming the field.

Accepted bodies (all on `POST /v1/feedback`):
- ours: one object, a JSON array of them, or `{"feedback": [...]}`:
  `{"request_id", "model", "model_version"?, "score", "value", "comment"?, "timestamp"?}`;
- a Langfuse score (`POST /api/public/scores` body): `{"traceId", "name", "value", "dataType"?,
  "stringValue"?, "comment"?, "timestamp"?, "metadata": {"model", "model_version"?}}`;
- a Langfuse ingestion batch: `{"batch": [{"type": "score-create", "body": <score>}, ...]}`.

A batch is judged whole: the first bad item rejects it, with its path (`feedback[3].value: ...`).
The comment is read only to count it; it is never kept. Pure code: no I/O, no clock.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from inferwatch.config import FeedbackScoreConfig
from inferwatch.kit.labels import MODEL_NAME, MODEL_NAME_RULE
from inferwatch.kit.timeparse import parse_iso

MAX_REQUEST_ID_CHARS = 256
REASONS = ("unauthorized", "too_large", "bad_json", "schema", "unknown_score", "cardinality")


class Rejected(Exception):
    """A payload refused whole: `reason` is a closed-set label, the message names the field."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Feedback:
    request_id: str
    model: str
    version: str | None  # None: resolve from what the engine exporter saw serving at `timestamp`
    score: str
    value: bool | float | str  # boolean, numeric or category, per the score's type
    has_comment: bool
    timestamp: float | None  # when the rated request was served (unix seconds), if the app said


def parse_body(body: bytes, scores: Mapping[str, FeedbackScoreConfig], max_batch: int) -> list[Feedback]:
    """Every item of a body, or Rejected."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise Rejected("bad_json", f"body is not valid JSON: {str(exc)[:120]}") from None
    items, path = _items(document)
    if not items:
        raise Rejected("schema", f"{path}: no feedback items")
    if len(items) > max_batch:
        raise Rejected("too_large", f"{path}: {len(items)} items; at most {max_batch} per request")
    return [parse_item(item, f"{path}[{i}]" if path else "", scores) for i, item in enumerate(items)]


def _items(document: Any) -> tuple[list[Any], str]:
    if isinstance(document, list):
        return document, "feedback"
    if not isinstance(document, dict):
        raise Rejected("schema", "body must be a JSON object or array")
    if "batch" in document:  # Langfuse ingestion
        batch = document["batch"]
        if not isinstance(batch, list):
            raise Rejected("schema", "batch: must be an array")
        for i, event in enumerate(batch):
            if not isinstance(event, dict) or event.get("type") != "score-create":
                raise Rejected("schema", f"batch[{i}].type: only score-create events are accepted")
        return [event.get("body") for event in batch], "batch"
    if "feedback" in document:
        if not isinstance(document["feedback"], list):
            raise Rejected("schema", "feedback: must be an array")
        return document["feedback"], "feedback"
    return [document], ""


def parse_item(item: Any, path: str, scores: Mapping[str, FeedbackScoreConfig]) -> Feedback:
    where = f"{path}." if path else ""
    if not isinstance(item, dict):
        raise Rejected("schema", f"{path or 'body'}: must be a JSON object")
    langfuse = "traceId" in item or ("name" in item and "score" not in item)
    metadata = item.get("metadata") if langfuse else None
    if metadata is not None and not isinstance(metadata, dict):
        raise Rejected("schema", f"{where}metadata: must be an object")
    metadata = metadata or {}

    def field(key: str, *fallbacks: tuple[Mapping[str, Any], str]) -> tuple[Any, str]:
        if key in item:
            return item[key], key
        for source, name in fallbacks:
            if name in source:
                return source[name], f"metadata.{name}"
        return None, key

    if langfuse:
        request_id, rid_key = next(((item[k], k) for k in ("traceId", "observationId", "sessionId") if k in item),
                                   (None, "traceId"))
        model, model_key = field("model", (metadata, "model"), (metadata, "model_name"))
        version, version_key = field("model_version", (metadata, "model_version"), (metadata, "version"))
        score_name, score_key = item.get("name"), "name"
    else:
        request_id, rid_key = item.get("request_id"), "request_id"
        model, model_key = item.get("model"), "model"
        version, version_key = item.get("model_version"), "model_version"
        score_name, score_key = item.get("score"), "score"

    if not isinstance(request_id, str) or not 0 < len(request_id) <= MAX_REQUEST_ID_CHARS \
            or any(ord(ch) < 32 for ch in request_id):
        raise Rejected("schema", f"{where}{rid_key}: must be a string of 1 to {MAX_REQUEST_ID_CHARS} printable "
                                 "characters")
    model = _name(model, where + model_key, required=True)
    version = _name(version, where + version_key, required=False)
    if not isinstance(score_name, str):
        raise Rejected("schema", f"{where}{score_key}: must be a string naming a configured score")
    score = scores.get(score_name)
    if score is None:
        known = ", ".join(sorted(scores)[:10])
        raise Rejected("unknown_score", f"{where}{score_key}: unknown score {score_name[:64]!r} (configured: {known})")
    raw = item.get("stringValue") if langfuse and score.type == "categorical" and "stringValue" in item \
        else item.get("value")
    value = _value(raw, score, where + "value")
    comment = item.get("comment")
    if comment is not None and not isinstance(comment, str):
        raise Rejected("schema", f"{where}comment: must be a string")
    return Feedback(request_id, model, version, score.name, value, bool(comment),
                    _timestamp(item.get("timestamp"), where + "timestamp"))


def _name(value: Any, key: str, required: bool) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not MODEL_NAME.fullmatch(value):
        raise Rejected("schema", f"{key}: must be {MODEL_NAME_RULE}")
    return value


def _value(raw: Any, score: FeedbackScoreConfig, key: str) -> bool | float | str:
    if score.type == "boolean":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, (int, float)) and raw in (0, 1):  # Langfuse sends BOOLEAN as 1/0
            return bool(raw)
        raise Rejected("schema", f"{key}: score {score.name!r} is boolean: send true or false (or 1/0)")
    if score.type == "numeric":
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw):
            raise Rejected("schema", f"{key}: score {score.name!r} is numeric: send a finite number")
        if not score.min <= raw <= score.max:
            raise Rejected("schema", f"{key}: {raw!r} is outside score {score.name!r}'s range "
                                     f"[{score.min:g}, {score.max:g}]")
        return float(raw)
    if not isinstance(raw, str) or not MODEL_NAME.fullmatch(raw) or len(raw) > 64:
        raise Rejected("schema", f"{key}: score {score.name!r} is categorical: send a category name "
                                 "(1 to 64 characters of A-Z a-z 0-9 _ . : / @ + -)")
    if score.categories and raw not in score.categories:
        raise Rejected("cardinality", f"{key}: {raw!r} is not one of score {score.name!r}'s categories "
                                      f"({', '.join(score.categories[:10])})")
    return raw


def _timestamp(raw: Any, key: str) -> float | None:
    if raw is None:
        return None
    if isinstance(raw, (int, float)) and not isinstance(raw, bool) and math.isfinite(raw) and raw > 0:
        return float(raw) / 1000 if raw > 1e11 else float(raw)  # milliseconds, as JavaScript sends them
    if isinstance(raw, str) and len(raw) <= 64:
        seconds = parse_iso(raw)
        if seconds is not None:
            return seconds
    raise Rejected("schema", f"{key}: must be unix seconds or an ISO 8601 time")
