"""Alertmanager's webhook payload (version "4"), parsed strictly: anything else is refused whole.

    {"version": "4", "groupKey": ..., "status": "firing|resolved", "receiver": ..., "groupLabels": {...},
     "commonLabels": {...}, "alerts": [{"status", "labels", "annotations", "startsAt", "endsAt",
     "fingerprint"}, ...]}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

STATUSES = ("firing", "resolved")


class BadPayload(Exception):
    """Not a webhook notification: `reason` is bad_json (not JSON) or schema (not the shape)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Alert:
    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: str
    ends_at: str
    fingerprint: str

    @property
    def alertname(self) -> str:
        return self.labels.get("alertname", "")


@dataclass(frozen=True)
class Notification:
    receiver: str
    status: str
    group_key: str
    alerts: list[Alert]


def parse(body: bytes) -> Notification:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadPayload("bad_json", f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadPayload("schema", "expected a JSON object (Alertmanager's webhook payload)")
    if data.get("version") != "4":
        raise BadPayload("schema", f"version: expected \"4\", got {str(data.get('version'))[:20]!r}")
    alerts = data.get("alerts")
    if not isinstance(alerts, list):
        raise BadPayload("schema", "alerts: expected a list")
    return Notification(_string(data, "receiver", "", required=False), _status(data, ""),
                        _string(data, "groupKey", ""), [_alert(a, i) for i, a in enumerate(alerts)])


def _alert(raw: Any, i: int) -> Alert:
    where = f"alerts[{i}]."
    if not isinstance(raw, dict):
        raise BadPayload("schema", f"alerts[{i}]: expected an object")
    labels = _strings(raw, "labels", where)
    if not labels.get("alertname"):
        raise BadPayload("schema", f"{where}labels.alertname: required")
    return Alert(_status(raw, where), labels, _strings(raw, "annotations", where, required=False),
                 _string(raw, "startsAt", where), _string(raw, "endsAt", where, required=False),
                 _string(raw, "fingerprint", where))


def _status(raw: dict, where: str) -> str:
    status = raw.get("status")
    if status not in STATUSES:
        raise BadPayload("schema", f"{where}status: expected firing or resolved")
    return status


def _string(raw: dict, key: str, where: str, required: bool = True) -> str:
    value = raw.get(key, None if required else "")
    if not isinstance(value, str) or (required and not value):
        raise BadPayload("schema", f"{where}{key}: expected a non-empty string")
    return value


def _strings(raw: dict, key: str, where: str, required: bool = True) -> dict[str, str]:
    value = raw.get(key, None if required else {})
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise BadPayload("schema", f"{where}{key}: expected an object of strings")
    return value
