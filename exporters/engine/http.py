"""A minimal HTTP/1.1 GET on asyncio streams, for probes whose deadline the I/O itself enforces.

Every step (DNS, connect, TLS, status line, headers, body) runs under the caller's
`asyncio.wait_for`, so a peer that trickles one byte at a time is cut off at the deadline and
its socket closed: no thread is ever abandoned in a blocking read. Bodies are bounded; redirects
are followed only to the same origin (or not at all), so credentials never reach another host.
"""

from __future__ import annotations

import asyncio
import ssl
import urllib.parse
from dataclasses import dataclass

from inferwatch.kit.httpclient import RedirectPolicy, origin

MAX_BODY_BYTES = 1 << 20
MAX_HEADER_LINES = 100
MAX_LINE_BYTES = 16 * 1024
MAX_REDIRECTS = 3


class HttpFailure(Exception):
    """Why a GET produced no usable answer: a bounded reason label."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


@dataclass
class Answer:
    status: int
    body: bytes


async def get(url: str, headers: dict[str, str], redirects: RedirectPolicy = "same_origin",
              max_bytes: int = MAX_BODY_BYTES, tls: ssl.SSLContext | None = None) -> Answer:
    for _ in range(MAX_REDIRECTS + 1):
        answer, location = await _get_once(url, headers, max_bytes, tls)
        if location is None:
            return answer
        target = urllib.parse.urljoin(url, location)
        if redirects == "never" or origin(target) != origin(url):
            raise HttpFailure("redirect", f"to {target[:200]}")
        url = target
    raise HttpFailure("redirect", f"more than {MAX_REDIRECTS} redirects")


async def _get_once(url: str, headers: dict[str, str], max_bytes: int,
                    tls: ssl.SSLContext | None) -> tuple[Answer, str | None]:
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise HttpFailure("bad_url", str(exc)) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HttpFailure("bad_url", url[:200])
    secure = parts.scheme == "https"
    port = port or (443 if secure else 80)
    try:
        reader, writer = await asyncio.open_connection(
            parts.hostname, port, ssl=(tls or ssl.create_default_context()) if secure else None,
            limit=MAX_LINE_BYTES)
    except ConnectionRefusedError:
        raise HttpFailure("refused") from None
    except ssl.SSLError as exc:
        raise HttpFailure("tls", exc.reason or "handshake failed") from None
    except OSError as exc:  # DNS failure, unreachable network
        raise HttpFailure("error", exc.strerror or type(exc).__name__) from None
    try:
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        lines = [f"GET {target} HTTP/1.1", f"Host: {host}", "Connection: close", "User-Agent: inferwatch"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace"))
        await writer.drain()
        status = _status(await _line(reader))
        fields = await _headers(reader)
        if 300 <= status < 400 and "location" in fields:
            return Answer(status, b""), fields["location"]
        return Answer(status, await _body(reader, fields, max_bytes)), None
    except (ConnectionError, asyncio.IncompleteReadError) as exc:
        raise HttpFailure("malformed", f"connection closed mid-answer ({type(exc).__name__})") from None
    finally:
        writer.close()


async def _line(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.readuntil(b"\n")
    except asyncio.LimitOverrunError:
        raise HttpFailure("malformed", "header line too long") from None


def _status(line: bytes) -> int:
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit() or len(parts[1]) != 3:
        raise HttpFailure("malformed", "bad status line")
    return int(parts[1])


async def _headers(reader: asyncio.StreamReader) -> dict[str, str]:
    fields: dict[str, str] = {}
    for _ in range(MAX_HEADER_LINES):
        line = await _line(reader)
        if line in (b"\r\n", b"\n"):
            return fields
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            raise HttpFailure("malformed", "bad header line")
        fields[name.strip().lower()] = value.strip()
    raise HttpFailure("malformed", f"more than {MAX_HEADER_LINES} header lines")


async def _body(reader: asyncio.StreamReader, fields: dict[str, str], max_bytes: int) -> bytes:
    if "chunked" in fields.get("transfer-encoding", "").lower():
        body = bytearray()
        while True:
            size_text = (await _line(reader)).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise HttpFailure("malformed", "bad chunk size") from None
            if size == 0:
                return bytes(body)
            if len(body) + size > max_bytes:
                raise HttpFailure("malformed", f"body over {max_bytes} bytes")
            body += await reader.readexactly(size)
            await reader.readexactly(2)  # CRLF after each chunk
    length = fields.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise HttpFailure("malformed", "bad Content-Length")
        if int(length) > max_bytes:
            raise HttpFailure("malformed", f"body over {max_bytes} bytes")
        return await reader.readexactly(int(length))
    body = bytearray()  # no length given: until the peer closes
    while len(body) <= max_bytes:
        more = await reader.read(max_bytes + 1 - len(body))
        if not more:
            return bytes(body)
        body += more
    raise HttpFailure("malformed", f"body over {max_bytes} bytes")
