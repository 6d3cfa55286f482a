"""Small synchronous HTTP GETs for components and tools: bounded, and no credentials across origins.

Redirects are followed only to the same origin (scheme, host and port) by default, so an
`Authorization` header can never be sent to a host a 30x names. `redirects="never"` refuses them.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Literal

RedirectPolicy = Literal["same_origin", "never"]
MAX_BODY_BYTES = 1 << 20


class FetchError(Exception):
    """A GET that did not produce a usable answer; `reason` is a short, bounded word."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


class _Redirects(urllib.request.HTTPRedirectHandler):
    def __init__(self, policy: RedirectPolicy):
        self.policy = policy

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        target = urllib.parse.urljoin(req.full_url, newurl)
        if self.policy == "never" or origin(target) != origin(req.full_url):
            raise FetchError("redirect", f"refused redirect from {req.full_url} to {target[:200]}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def get(url: str, headers: dict[str, str] | None = None, timeout: float = 10.0, redirects: RedirectPolicy =
        "same_origin", max_bytes: int = MAX_BODY_BYTES) -> tuple[int, bytes]:
    """(status, body) of a GET; 4xx/5xx are answers, transport failures raise FetchError."""
    opener = urllib.request.build_opener(_Redirects(redirects))
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with opener.open(request, timeout=timeout) as response:
            body = response.read(max_bytes + 1)
            if len(body) > max_bytes:
                raise FetchError("too_large", f"{url} answered more than {max_bytes} bytes")
            return response.status, body
    except urllib.error.HTTPError as exc:
        return exc.code, b""
    except FetchError:
        raise
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, FetchError):
            raise reason from None
        if isinstance(reason, TimeoutError):
            raise FetchError("timeout", f"{url} did not answer within {timeout:g} s") from None
        if isinstance(reason, ConnectionRefusedError):
            raise FetchError("refused", f"{url} refused the connection") from None
        raise FetchError("error", f"{url}: {reason}") from None
    except TimeoutError:
        raise FetchError("timeout", f"{url} did not answer within {timeout:g} s") from None
    except (http.client.HTTPException, ValueError) as exc:  # garbage status line, bad chunking, bad URL
        raise FetchError("malformed", f"{url} sent a malformed HTTP answer ({type(exc).__name__})") from None
    except OSError as exc:
        raise FetchError("error", f"{url}: {exc.strerror or exc}") from None


def get_json(url: str, headers: dict[str, str] | None = None, timeout: float = 10.0,
             redirects: RedirectPolicy = "same_origin") -> Any:
    status, body = get(url, {"Accept": "application/json", **(headers or {})}, timeout, redirects)
    if status != 200:
        raise FetchError("http_5xx" if status >= 500 else "http_4xx", f"{url} answered HTTP {status}")
    try:
        return json.loads(body)
    except ValueError:
        raise FetchError("malformed", f"{url} did not answer JSON") from None
