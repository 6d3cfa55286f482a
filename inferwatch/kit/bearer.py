"""Bearer-token auth for the APIs applications post to (feedback, samples), on top of the web config.

The token comes from a file (a mounted secret), is compared in constant time, and is never logged.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
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


class Refused(Exception):
    """A POST refused before its body was used; `reply` is the (status, type, body) to answer."""

    def __init__(self, reply: tuple[int, str, bytes]):
        super().__init__(reply[0])
        self.reply = reply


def authorized_body(handler: Any, token: str | None, limit: int, reject: Callable[[str], None]) -> bytes:
    """The body of an authorized POST, or Refused: 401 without the token (the body stays unread and the
    connection closes), 411/413/408 from `read_body`. Each refusal is counted through `reject(reason)`."""
    from inferwatch.kit.web import BodyError, json_error, read_body

    if not authorized(handler, token):
        reject("unauthorized")
        handler.close_connection = True
        raise Refused(json_error(401, REQUIRED))
    try:
        return read_body(handler, limit)
    except BodyError as exc:
        reject("too_large" if exc.status == 413 else "schema")
        raise Refused(json_error(exc.status, str(exc))) from None
