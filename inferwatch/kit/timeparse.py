"""Times on the command line, in query strings and payloads: unix seconds, ISO 8601, or an age (`24h`)."""

from __future__ import annotations

import datetime
import math
import re
import time

_AGE = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_iso(text: str) -> float | None:
    """Unix seconds of an ISO 8601 time (UTC when it has no offset), or None."""
    try:
        parsed = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed.timestamp()


def parse_time(text: str, key: str, now: float | None = None) -> float:
    """Unix seconds for `text` (seconds, ISO 8601, or an age before `now`), or ValueError naming `key`."""
    text = text.strip()
    age = _AGE.fullmatch(text)
    if age:
        return (time.time() if now is None else now) - float(age[1]) * _UNIT[age[2]]
    try:
        seconds = float(text)
    except ValueError:
        seconds = parse_iso(text)
        if seconds is None:
            raise ValueError(f"{key}: {text[:40]!r} is not unix seconds, an ISO 8601 time or an age like 24h") from None
    if not math.isfinite(seconds):
        raise ValueError(f"{key}: must be a finite time")
    return seconds


def parse_duration(text: str, key: str) -> float:
    """Positive seconds from an age (`90m`, `24h`, `7d`) or plain seconds, or ValueError naming `key`."""
    text = text.strip()
    age = _AGE.fullmatch(text)
    try:
        seconds = float(age[1]) * _UNIT[age[2]] if age else float(text)
    except ValueError:
        raise ValueError(f"{key}: {text[:40]!r} is not a duration like 90m, 24h or 7d") from None
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"{key}: must be a positive duration; got {text[:40]!r}")
    return seconds
