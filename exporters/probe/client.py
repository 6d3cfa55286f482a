"""One streamed golden-prompt request to an OpenAI-compatible endpoint, timed from the client's side.

`run_request` never raises: every failure becomes `Outcome.failure`, one word from a closed set
(`timeout`, `http_error`, `bad_stream`, `connection_error`); whether the answer passes its
assertions, or came from the right model, is the caller's decision.

Why a small HTTP/1.1 client on a blocking socket instead of `http.client` or the kit's urllib GET:
the probe has ONE deadline for DNS, connect, TLS, the request, the headers and the whole stream.
Socket timeouts are per call, so a peer that trickles one byte at a time would keep a urllib or
http.client read alive forever. Here every `recv` waits at most the time left, and the deadline is
checked after each one, so a call returns within the deadline plus a scheduling slice, and it
is plain blocking I/O for a worker thread (no event loop, no optional dependency). DNS for a host
name runs on a daemon thread the deadline stops waiting for.

Timing follows quality-drift-feedback.md section 6: TTFT is request start -> first chunk with
content; TPOT = (t_last_content_chunk - t_first_content_chunk) / (completion_tokens - 1) with
`completion_tokens` from the final usage chunk, because chunks are not tokens (speculative
decoding, coalesced events). Prompt and answer text are never logged; `Outcome.text` is kept only
for the caller's assertions and is left out of the Outcome's repr.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import select
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, TypedDict

from inferwatch.kit.workers import DaemonExecutor

log = logging.getLogger(__name__)

Failure = Literal["timeout", "http_error", "bad_stream", "connection_error"]
Kind = Literal["chat", "completion"]

MAX_RESPONSE_BYTES = 1 << 20  # everything read from one answer, headers included
MAX_LINE_BYTES = 16 * 1024  # one status, header or chunk-size line
MAX_HEADER_LINES = 100
RECV_BYTES = 64 * 1024
DNS_WORKERS = 4  # a resolver that never answers can hold at most these threads

ROUTES: dict[str, str] = {"chat": "/v1/chat/completions", "completion": "/v1/completions"}


@dataclass
class Outcome:
    """What one probe request measured. Partial measurements are kept on failure (for debugging)."""

    ok: bool = False
    failure: Failure | None = None
    status_code: int | None = None
    text: str = field(default="", repr=False)  # the answer: for assertions only, never logged
    served_model: str | None = None  # the `model` field of the first chunk that has one
    ttft_seconds: float | None = None
    e2e_seconds: float = 0.0  # request start -> [DONE], or -> the failure
    tpot_seconds: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    bug: str = ""  # class of an exception our own code raised: count it as a self-metric error


class ModelEntry(TypedDict):
    id: str
    max_model_len: int | None


class RoundTrip(NamedTuple):
    """`passed` True/False; None with `failure` None: the engine has no /tokenize (HTTP 404); None with
    `failure` set: the check could not run. `tokens`: how many ids the text tokenized to."""

    passed: bool | None
    failure: Failure | None = None
    tokens: int | None = None


class _Fail(Exception):
    """Internal: why a request stopped. `detail` never holds prompt or answer text."""

    def __init__(self, reason: Failure, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


class _Deadline:
    def __init__(self, seconds: float, started: float | None = None):
        self.end = (time.perf_counter() if started is None else started) + max(0.0, seconds)

    def left(self, what: str = "") -> float:
        """Seconds left; `_Fail("timeout")` when none are."""
        remaining = self.end - time.perf_counter()
        if remaining <= 0:
            raise _Fail("timeout", what)
        return remaining


# -- public API ---------------------------------------------------------------------------------

def run_request(base_url: str, kind: Kind, model: str, prompt: str, system: str | None, params: dict[str, Any] | None,
                deadline_seconds: float, token: str | None = None) -> Outcome:
    """Stream one chat (`messages`) or completion (`prompt`) request; never raises.

    `params` (temperature, seed, max_tokens, ...) are added to the body but cannot override
    `model`, the prompt, `stream` or `stream_options`. `system` is a chat system message; a
    completion has no such field, so it is ignored there. `token`: a bearer token, or a whole
    Authorization value when it holds a space ("Bearer x", "Basic y").
    """
    started = time.perf_counter()
    deadline = _Deadline(deadline_seconds, started)
    outcome = Outcome()
    conn: _Connection | None = None
    try:
        body = _request_body(kind, model, prompt, system, params)
        conn, status, fields = _open("POST", _url(base_url, ROUTES[kind]), body, _headers(token, stream=True),
                                     deadline)
        outcome.status_code = status
        if not 200 <= status < 300:
            raise _Fail("http_error", f"HTTP {status}")
        _read_stream(conn, fields, kind, outcome, started)
    except _Fail as failure:
        outcome.failure = failure.reason
        log.debug("%s probe of %s failed: %s", kind, _where(base_url), failure)
    except Exception as exc:  # a bug of ours (or a caller's unusable params): never blame the endpoint's stream
        outcome.failure, outcome.bug = "connection_error", type(exc).__name__
        log.debug("%s probe of %s raised %s", kind, _where(base_url), type(exc).__name__, exc_info=True)
    finally:
        if conn is not None:
            conn.close()
        outcome.e2e_seconds = time.perf_counter() - started
    outcome.ok = outcome.failure is None
    return outcome


def list_models(base_url: str, deadline: float, token: str | None = None
                ) -> tuple[bool, list[ModelEntry], Failure | None]:
    """(ok, [{id, max_model_len}], failure) from GET /v1/models; never raises.

    `bad_stream` here means the answer is not an OpenAI model list. `max_model_len` is vLLM's
    extension (None elsewhere).
    """
    try:
        status, body = _fetch("GET", _url(base_url, "/v1/models"), None, token, _Deadline(deadline))
        if status != 200:
            raise _Fail("http_error", f"HTTP {status}")
        listed = _json_object(body)
        if not isinstance(listed.get("data"), list):
            raise _Fail("bad_stream", "not an OpenAI model list")
        entries: list[ModelEntry] = []
        for entry in listed["data"]:  # bounded by the body size
            if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
                raise _Fail("bad_stream", "model entry without an id")
            max_len = entry.get("max_model_len")
            entries.append({"id": entry["id"], "max_model_len": max_len if type(max_len) is int else None})
        return True, entries, None
    except _Fail as failure:
        log.debug("model list of %s failed: %s", _where(base_url), failure)
        return False, [], failure.reason
    except Exception as exc:
        log.debug("model list of %s raised %s", _where(base_url), type(exc).__name__, exc_info=True)
        return False, [], "connection_error"


def tokenize_roundtrip(base_url: str, model: str, text: str, deadline: float, token: str | None = None) -> RoundTrip:
    """Does `text` survive vLLM's POST /tokenize then POST /detokenize? Never raises.

    Tokenized without special tokens (so BOS/EOS do not come back as text); compared exactly, or
    after stripping outer whitespace, since SentencePiece tokenizers may add or drop a leading space.
    One deadline covers both requests. Returns `RoundTrip(None)` when either endpoint is 404.
    """
    clock = _Deadline(deadline)
    try:
        status, body = _fetch("POST", _url(base_url, "/tokenize"),
                              {"model": model, "prompt": text, "add_special_tokens": False}, token, clock)
        if status == 404:
            return RoundTrip(None)
        if status != 200:
            raise _Fail("http_error", f"/tokenize HTTP {status}")
        ids = _json_object(body).get("tokens")
        if not isinstance(ids, list) or not all(type(i) is int for i in ids):
            raise _Fail("bad_stream", "/tokenize answered no token list")
        status, body = _fetch("POST", _url(base_url, "/detokenize"), {"model": model, "tokens": ids}, token, clock)
        if status == 404:
            return RoundTrip(None, tokens=len(ids))
        if status != 200:
            raise _Fail("http_error", f"/detokenize HTTP {status}")
        decoded = _json_object(body).get("prompt")
        if not isinstance(decoded, str):
            raise _Fail("bad_stream", "/detokenize answered no prompt")
        return RoundTrip(decoded == text or decoded.strip() == text.strip(), None, len(ids))
    except _Fail as failure:
        log.debug("tokenizer round trip on %s failed: %s", _where(base_url), failure)
        return RoundTrip(None, failure.reason)
    except Exception as exc:
        log.debug("tokenizer round trip on %s raised %s", _where(base_url), type(exc).__name__, exc_info=True)
        return RoundTrip(None, "connection_error")


def engine_version(base_url: str, deadline: float, token: str | None = None) -> tuple[str | None, Failure | None]:
    """(version, failure) from vLLM's GET /version; (None, None) when the engine has none (HTTP 404). Never raises."""
    try:
        status, body = _fetch("GET", _url(base_url, "/version"), None, token, _Deadline(deadline))
        if status == 404:
            return None, None
        if status != 200:
            raise _Fail("http_error", f"/version HTTP {status}")
        version = _json_object(body).get("version")
        if not isinstance(version, str):
            raise _Fail("bad_stream", "/version answered no version string")
        return version, None
    except _Fail as failure:
        log.debug("/version of %s failed: %s", _where(base_url), failure)
        return None, failure.reason
    except Exception as exc:
        log.debug("/version of %s raised %s", _where(base_url), type(exc).__name__, exc_info=True)
        return None, "connection_error"


# -- the request --------------------------------------------------------------------------------

def _request_body(kind: str, model: str, prompt: str, system: str | None, params: dict[str, Any] | None) -> bytes:
    body: dict[str, Any] = dict(params or {})
    if kind == "chat":
        messages = [{"role": "system", "content": system}] if system else []
        body["messages"] = [*messages, {"role": "user", "content": prompt}]
        body.pop("prompt", None)
    elif kind == "completion":
        body["prompt"] = prompt
        body.pop("messages", None)
    else:
        raise ValueError(f"unknown probe kind {kind!r}")
    body.update(model=model, stream=True, stream_options={"include_usage": True})
    return json.dumps(body).encode()


def _headers(token: str | None, stream: bool) -> dict[str, str]:
    headers = {"Accept": "text/event-stream" if stream else "application/json"}
    if token:
        if "\r" in token or "\n" in token:
            raise _Fail("connection_error", "the token holds a line break")
        headers["Authorization"] = token if " " in token else f"Bearer {token}"
    return headers


def _url(base_url: str, route: str) -> str:
    return base_url.rstrip("/") + route


def _where(url: str) -> str:
    """host:port of a URL for logs (never its user info, path or query)."""
    try:
        return urllib.parse.urlsplit(url).netloc.rpartition("@")[2][:200] or "?"
    except ValueError:
        return "?"


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError:  # includes invalid UTF-8
        raise _Fail("bad_stream", "answer is not JSON") from None
    if not isinstance(value, dict):
        raise _Fail("bad_stream", "answer is not a JSON object")
    return value


def _fetch(method: str, url: str, payload: dict[str, Any] | None, token: str | None,
           deadline: _Deadline) -> tuple[int, bytes]:
    """(status, whole body) of a small JSON request under `deadline`."""
    body = json.dumps(payload).encode() if payload is not None else None
    conn, status, fields = _open(method, url, body, _headers(token, stream=False), deadline)
    try:
        return status, b"".join(_body(conn, fields)) if status == 200 else b""
    finally:
        conn.close()


# -- the stream ---------------------------------------------------------------------------------

@dataclass
class _Stream:
    started: float  # the request's start: TTFT counts from here
    parts: list[str] = field(default_factory=list)
    first: float | None = None
    last: float | None = None
    content_chunks: int = 0
    saw_choices: bool = False


def _read_stream(conn: _Connection, fields: dict[str, str], kind: str, outcome: Outcome, started: float) -> None:
    """Fill `outcome` from the SSE body; returns at `[DONE]`, `_Fail("bad_stream")` for anything else."""
    stream = _Stream(started)
    events = _Events()
    try:
        for piece in _body(conn, fields):
            now = time.perf_counter()
            for data in events.feed(piece):
                if data == b"[DONE]":
                    _finish(stream, outcome)
                    return
                _chunk(data, kind, stream, outcome, now)
        for data in events.close():  # a last event without its blank line
            if data == b"[DONE]":
                _finish(stream, outcome)
                return
            _chunk(data, kind, stream, outcome, time.perf_counter())
    finally:
        outcome.text = "".join(stream.parts)
    raise _Fail("bad_stream", "the stream ended before [DONE]")


def _chunk(data: bytes, kind: str, stream: _Stream, outcome: Outcome, now: float) -> None:
    try:
        chunk = json.loads(data)
    except ValueError:
        raise _Fail("bad_stream", "a chunk is not JSON") from None
    if not isinstance(chunk, dict):
        raise _Fail("bad_stream", "a chunk is not a JSON object")
    if "error" in chunk or chunk.get("object") == "error":  # vLLM reports mid-stream errors in-band
        raise _Fail("bad_stream", "the stream carries an error object")
    if outcome.served_model is None and isinstance(chunk.get("model"), str):
        outcome.served_model = chunk["model"]
    choices = chunk.get("choices")
    if choices is not None and not isinstance(choices, list):
        raise _Fail("bad_stream", "choices is not a list")
    for choice in choices or ():
        if not isinstance(choice, dict):
            raise _Fail("bad_stream", "a choice is not an object")
        if choice.get("index", 0) != 0:  # n > 1: the probe judges the first choice
            continue
        stream.saw_choices = True
        content, generated = _content(choice, kind)
        if content:
            stream.parts.append(content)
        if generated:  # reasoning tokens are output tokens too: they count for TTFT and TPOT
            stream.content_chunks += 1
            stream.last = now
            if stream.first is None:
                stream.first = now
                outcome.ttft_seconds = now - stream.started
        if isinstance(choice.get("finish_reason"), str):
            outcome.finish_reason = choice["finish_reason"]
    usage = chunk.get("usage")
    if isinstance(usage, dict):
        for name in ("prompt_tokens", "completion_tokens"):
            value = usage.get(name)
            if type(value) is int and value >= 0:
                setattr(outcome, name, value)


def _content(choice: dict[str, Any], kind: str) -> tuple[str, bool]:
    """(answer text, whether the chunk carries any generated output) of one choice."""
    if kind == "completion":
        text = choice.get("text")
        text = text if isinstance(text, str) else ""
        return text, bool(text)
    delta = choice.get("delta")
    if delta is None:
        return "", False
    if not isinstance(delta, dict):
        raise _Fail("bad_stream", "delta is not an object")
    text = delta.get("content")
    text = text if isinstance(text, str) else ""
    reasoning = delta.get("reasoning_content") or delta.get("reasoning")
    return text, bool(text) or (isinstance(reasoning, str) and bool(reasoning))


def _finish(stream: _Stream, outcome: Outcome) -> None:
    if not stream.saw_choices:
        raise _Fail("bad_stream", "the stream had no choices")
    tokens = outcome.completion_tokens
    if (tokens is not None and tokens >= 2 and stream.content_chunks >= 2 and stream.first is not None
            and stream.last is not None):
        outcome.tpot_seconds = (stream.last - stream.first) / (tokens - 1)


class _Events:
    """Server-sent events, incrementally: `data:` fields joined per event, comments and other fields ignored.

    Lines are not length-capped here (a proxy may send a whole answer as one event): what is buffered
    is bounded by MAX_RESPONSE_BYTES, and each piece is scanned once.
    """

    def __init__(self) -> None:
        self._pending = bytearray()
        self._scanned = 0  # bytes of _pending already known to hold no newline
        self._data: list[bytes] = []

    def feed(self, piece: bytes) -> list[bytes]:
        self._pending += piece
        events: list[bytes] = []
        while (end := self._pending.find(b"\n", self._scanned)) >= 0:
            line = bytes(self._pending[:end]).rstrip(b"\r")
            del self._pending[: end + 1]
            self._scanned = 0
            self._line(line, events)
        self._scanned = len(self._pending)
        return events

    def close(self) -> list[bytes]:
        events: list[bytes] = []
        if self._pending:
            self._line(bytes(self._pending).rstrip(b"\r"), events)
            self._pending.clear()
        self._line(b"", events)
        return events

    def _line(self, line: bytes, events: list[bytes]) -> None:
        if not line:
            if self._data:
                events.append(b"\n".join(self._data))
                self._data = []
            return
        if line.startswith(b":"):  # a comment (keep-alive)
            return
        name, _, value = line.partition(b":")
        if name == b"data":
            self._data.append(value[1:] if value.startswith(b" ") else value)


# -- HTTP/1.1 on a socket, under one deadline -----------------------------------------------------

class _Connection:
    """A socket whose every read waits at most the deadline's time left and whose total is capped."""

    def __init__(self, sock: socket.socket, deadline: _Deadline):
        self.sock, self.deadline = sock, deadline
        self.buffer = bytearray()
        self.received = 0
        self.closed_failure: Failure = "connection_error"  # until the status line: then bad_stream

    def fill(self) -> bool:
        """Read what has arrived (waiting at most the time left); False at end of stream."""
        self.sock.settimeout(self.deadline.left("reading the answer"))
        try:
            data = self.sock.recv(RECV_BYTES)
        except TimeoutError:
            raise _Fail("timeout", "reading the answer") from None
        except OSError as exc:  # reset, TLS errors
            raise _Fail(self.closed_failure, f"connection broke ({type(exc).__name__})") from None
        if not data:
            return False
        self.received += len(data)
        if self.received > MAX_RESPONSE_BYTES:
            raise _Fail("bad_stream", f"answer over {MAX_RESPONSE_BYTES} bytes")
        self.buffer += data
        self.deadline.left("reading the answer")  # a trickle that outlived the deadline stops here
        return True

    def line(self) -> bytes:
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                line = bytes(self.buffer[: end + 1])
                del self.buffer[: end + 1]
                return line
            if len(self.buffer) > MAX_LINE_BYTES:
                raise _Fail("bad_stream", "a line is too long")
            if not self.fill():
                raise _Fail(self.closed_failure, "connection closed mid-answer")

    def take(self, most: int) -> bytes:
        """Up to `most` bytes, at least one; b"" at end of stream."""
        if not self.buffer and not self.fill():
            return b""
        piece = bytes(self.buffer[:most])
        del self.buffer[:most]
        return piece

    def close(self) -> None:
        self.sock.close()


def _open(method: str, url: str, body: bytes | None, headers: dict[str, str],
          deadline: _Deadline) -> tuple[_Connection, int, dict[str, str]]:
    """Connect, send and read the status line and headers: (connection, status, lower-cased headers)."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise _Fail("connection_error", f"bad URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _Fail("connection_error", "bad URL: not http(s) with a host")
    secure = parts.scheme == "https"
    sock = _connect(parts.hostname, port or (443 if secure else 80), secure, deadline)
    conn = _Connection(sock, deadline)
    try:
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc.rpartition('@')[2]}", "Connection: close",
                 "User-Agent: inferwatch-probe", "Accept-Encoding: identity"]
        if body is not None:
            lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace") + (body or b"")
        sock.settimeout(deadline.left("sending"))
        try:
            sock.sendall(request)
        except TimeoutError:
            raise _Fail("timeout", "sending") from None
        except OSError as exc:
            raise _Fail("connection_error", f"sending failed ({type(exc).__name__})") from None
        while True:
            status = _status(conn.line())
            conn.closed_failure = "bad_stream"
            fields = _header_fields(conn)
            if not 100 <= status < 200:  # skip interim answers (100 Continue)
                return conn, status, fields
    except BaseException:
        conn.close()
        raise


def _status(line: bytes) -> int:
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit() or len(parts[1]) != 3:
        raise _Fail("bad_stream", "bad status line")
    return int(parts[1])


def _header_fields(conn: _Connection) -> dict[str, str]:
    fields: dict[str, str] = {}
    for _ in range(MAX_HEADER_LINES):
        line = conn.line()
        if line in (b"\r\n", b"\n"):
            return fields
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            raise _Fail("bad_stream", "bad header line")
        fields[name.strip().lower()] = value.strip()
    raise _Fail("bad_stream", f"more than {MAX_HEADER_LINES} header lines")


def _exactly(conn: _Connection, size: int, cut: str) -> Iterator[bytes]:
    """`size` bytes as they arrive; a peer that closes before them is `bad_stream` (`cut`)."""
    while size > 0:
        piece = conn.take(size)
        if not piece:
            raise _Fail("bad_stream", cut)
        size -= len(piece)
        yield piece


def _body(conn: _Connection, fields: dict[str, str]) -> Iterator[bytes]:
    """The body's bytes as they arrive (chunked, Content-Length or until close)."""
    if "chunked" in fields.get("transfer-encoding", "").lower():
        while True:
            size_text = conn.line().split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise _Fail("bad_stream", "bad chunk size") from None
            if size == 0:
                return
            yield from _exactly(conn, size, "connection closed mid-chunk")
            if conn.line().strip():
                raise _Fail("bad_stream", "no CRLF after a chunk")
    length = fields.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise _Fail("bad_stream", "bad Content-Length")
        yield from _exactly(conn, int(length), "connection closed mid-body")
        return
    while piece := conn.take(RECV_BYTES):
        yield piece


def _connect(host: str, port: int, secure: bool, deadline: _Deadline) -> socket.socket:
    last = "no address"
    for family, kind, proto, _, address in _resolve(host, port, deadline):
        timeout = deadline.left("connecting")
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
        except TimeoutError:
            sock.close()
            raise _Fail("timeout", "connecting") from None
        except OSError as exc:
            sock.close()
            last = type(exc).__name__
            continue
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return _tls(sock, host, deadline) if secure else sock
        except BaseException:
            sock.close()
            raise
    raise _Fail("connection_error", f"could not connect ({last})")


def _tls(sock: socket.socket, host: str, deadline: _Deadline) -> socket.socket:
    """The TLS handshake, non-blocking, so a peer that trickles it is cut off at the deadline too."""
    wrapped = ssl.create_default_context().wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
    wrapped.setblocking(False)
    while True:
        try:
            wrapped.do_handshake()
            break
        except ssl.SSLWantReadError:
            ready = select.select([wrapped], [], [], deadline.left("TLS handshake"))[0]
        except ssl.SSLWantWriteError:
            ready = select.select([], [wrapped], [], deadline.left("TLS handshake"))[1]
        except (ssl.SSLError, OSError) as exc:
            raise _Fail("connection_error", f"TLS handshake failed ({type(exc).__name__})") from None
        if not ready:
            raise _Fail("timeout", "TLS handshake")
    wrapped.setblocking(True)
    return wrapped


_dns_lock = threading.Lock()
_dns: DaemonExecutor | None = None


def _resolve(host: str, port: int, deadline: _Deadline) -> list[tuple[Any, ...]]:
    """getaddrinfo under the deadline: it cannot be interrupted, so it runs on a daemon thread."""
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
        return [(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (host, port))]
    except ValueError:
        pass  # a name, not an address literal
    global _dns
    with _dns_lock:
        if _dns is None:
            _dns = DaemonExecutor(DNS_WORKERS, "probe-dns")
        executor = _dns
    future = executor.submit(socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM)
    try:
        return future.result(timeout=deadline.left("resolving"))
    except TimeoutError:
        future.cancel()
        raise _Fail("timeout", "resolving") from None
    except (OSError, UnicodeError) as exc:  # gaierror; an unencodable name
        raise _Fail("connection_error", f"could not resolve ({type(exc).__name__})") from None
