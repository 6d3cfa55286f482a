"""Bearer-token auth for the APIs applications post to (feedback, samples), on top of the web config.

The token comes from a file (a mounted secret), is compared in constant time, and is never logged.
"""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Any

from inferwatch.config import ConfigError

REQUIRED = "a valid Authorization: Bearer token is required"


def read_token(path: str | None, key: str = "bearer_token_file") -> str | None:
    """The token in `path` (None: no auth), or ConfigError naming the file."""
    if not path:
        return None
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, None, key, f"cannot read the token ({exc})") from None
    if not token:
        raise ConfigError(path, None, key, "the file is empty")
    return token


def authorized(handler: Any, token: str | None) -> bool:
    if token is None:
        return True
    scheme, _, given = (handler.headers.get("Authorization") or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())
