"""HTTP serving for every inferwatch endpoint, as Prometheus' exporter-toolkit does it.

- `--web.config.file` in Prometheus' own web-config format: TLS (certificate, key, client CA,
  client-auth type, minimum version) and basic-auth users with bcrypt hashes.
- Untrusted networks: every connection has an idle/header timeout, TLS handshakes happen in the
  connection's own thread (a slow client cannot stall `accept`), and connections are capped; a
  connection over the cap is closed at once and counted.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import socket
import ssl
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from inferwatch.config import ConfigError, load_section

log = logging.getLogger(__name__)

ClientAuth = Literal["NoClientCert", "RequestClientCert", "RequireAnyClientCert", "VerifyClientCertIfGiven",
                     "RequireAndVerifyClientCert"]
_TLS_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1, "TLS12": ssl.TLSVersion.TLSv1_2,
                 "TLS13": ssl.TLSVersion.TLSv1_3}


@dataclass
class TlsServerConfig:
    cert_file: str
    key_file: str
    client_auth_type: ClientAuth = "NoClientCert"
    client_ca_file: str | None = None
    min_version: Literal["TLS10", "TLS11", "TLS12", "TLS13"] = "TLS12"

    def check(self) -> tuple[str, str] | None:
        if self.client_auth_type in ("VerifyClientCertIfGiven", "RequireAndVerifyClientCert") \
                and not self.client_ca_file:
            return "client_ca_file", f"required when client_auth_type is {self.client_auth_type}"
        return None


@dataclass
class HttpServerConfig:
    headers: dict[str, str] = field(default_factory=dict)  # added to every response


@dataclass
class WebConfig:
    """Prometheus' web-config file (https://prometheus.io/docs/prometheus/latest/configuration/https/)."""

    tls_server_config: TlsServerConfig | None = None
    basic_auth_users: dict[str, str] = field(default_factory=dict)  # user -> bcrypt hash
    http_server_config: HttpServerConfig = field(default_factory=HttpServerConfig)

    def check(self) -> tuple[str, str] | None:
        for user, hashed in self.basic_auth_users.items():
            if not hashed.startswith(("$2a$", "$2b$", "$2y$")):
                return f"basic_auth_users.{user}", "must be a bcrypt hash ($2y$...), e.g. from `htpasswd -nBC 10 \"\" `"
        return None


def load_web_config(path: str | None) -> WebConfig:
    """The web config at `path` (None = plain HTTP, no auth). Errors are `file:line: key: message`."""
    if not path:
        return WebConfig()
    config = load_section(path, WebConfig)
    if config.basic_auth_users:
        from inferwatch.kit.extras import require

        require("web")
    if config.tls_server_config:
        try:
            tls_context(config.tls_server_config)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(path, None, "tls_server_config", f"cannot load certificate or key: {exc}") from None
    return config


def tls_context(tls: TlsServerConfig) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _TLS_VERSIONS[tls.min_version]
    context.load_cert_chain(tls.cert_file, tls.key_file)
    if tls.client_ca_file:
        context.load_verify_locations(tls.client_ca_file)
    context.verify_mode = {
        "NoClientCert": ssl.CERT_NONE, "RequestClientCert": ssl.CERT_OPTIONAL,
        "RequireAnyClientCert": ssl.CERT_REQUIRED, "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
        "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
    }[tls.client_auth_type]
    return context


class _AuthCache:
    """bcrypt is slow by design: remember recent good (user, password) pairs, bounded, by digest."""

    def __init__(self, users: dict[str, str], size: int = 256):
        self.users, self.size = users, size
        self._good: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    def allowed(self, header: str | None) -> bool:
        if not self.users:
            return True
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        hashed = self.users.get(user)
        if hashed is None:
            return False
        key = hashlib.sha256(f"{user}\0{password}\0{hashed}".encode()).digest()
        with self._lock:
            if key in self._good:
                self._good.move_to_end(key)
                return True
        import bcrypt

        if not bcrypt.checkpw(password.encode(), hashed.encode()):
            return False
        with self._lock:
            self._good[key] = None
            while len(self._good) > self.size:
                self._good.popitem(last=False)
        return True


Route = Any  # callable(handler) -> (status, content_type, body)


class WebServer(ThreadingHTTPServer):
    """A threading HTTP(S) server with timeouts, a connection cap and optional basic auth."""

    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], routes: dict[str, Route], web: WebConfig | None = None,
                 idle_timeout: float = 30.0, max_connections: int = 64, post_routes: dict[str, Route] | None = None):
        web = web or WebConfig()
        self.routes = routes
        self.post_routes = post_routes or {}
        self.idle_timeout = idle_timeout
        self.tls = tls_context(web.tls_server_config) if web.tls_server_config else None
        self.auth = _AuthCache(web.basic_auth_users)
        self.headers = dict(web.http_server_config.headers)
        self._slots = threading.BoundedSemaphore(max_connections)
        self.rejected_connections = 0
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):  # over the cap: close now, never queue a thread
            self.rejected_connections += 1
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(self.idle_timeout)
        if self.tls is None:
            self.RequestHandlerClass(request, client_address, self)
            return
        try:  # in this connection's thread, bounded by the idle timeout
            wrapped = self.tls.wrap_socket(request, server_side=True)  # takes over the descriptor
        except (OSError, ssl.SSLError) as exc:
            log.debug("TLS handshake with %s failed: %s", client_address, exc)
            return
        try:
            self.RequestHandlerClass(wrapped, client_address, self)
        finally:
            wrapped.close()

    def handle_error(self, request: Any, client_address: Any) -> None:  # no tracebacks for dropped clients
        log.debug("connection from %s failed", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: WebServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        self.timeout = self.server.idle_timeout  # per read: slow headers or an idle keep-alive end here
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._dispatch(self.server.routes, self.server.post_routes, "POST")

    def do_POST(self) -> None:
        self._dispatch(self.server.post_routes, self.server.routes, "GET")

    def _dispatch(self, routes: dict[str, Route], other: dict[str, Route], other_method: str) -> None:
        if not self.server.auth.allowed(self.headers.get("Authorization")):
            self._reply(401, "text/plain; charset=utf-8", b"Unauthorized\n",
                        {"WWW-Authenticate": 'Basic realm="inferwatch"'})
            return
        path = self.path.split("?", 1)[0]
        route = routes.get(path)
        if route is None:
            if path in other:
                self.close_connection = True  # an unread request body must not be taken for the next request
                self._reply(405, "text/plain; charset=utf-8", b"Method Not Allowed\n", {"Allow": other_method})
            else:
                self._reply(404, "text/plain; charset=utf-8", b"Not Found\n")
            return
        try:
            status, content_type, body = route(self)
        except Exception:  # a route bug is a 500 for this request, never a dead server
            log.exception("handler for %s failed", path)
            status, content_type, body = 500, "text/plain; charset=utf-8", b"Internal Server Error\n"
        self._reply(status, content_type, body)

    def _reply(self, status: int, content_type: str, body: bytes, extra: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in {**self.server.headers, **(extra or {})}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the client went away
            self.close_connection = True


class BodyError(Exception):
    """A request body we will not read: the HTTP status and a one-line reason."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def json_error(status: int, message: str) -> tuple[int, str, bytes]:
    """A route's error reply for JSON APIs: `{"error": message}`."""
    return status, "application/json", json.dumps({"error": message}).encode() + b"\n"


#: A body this far over the limit is read and dropped before the 413, so a client still sending it sees the
#: reply instead of a broken pipe; a bigger one is left unread (the connection closes after the reply).
DRAIN_BYTES = 64 * 1024


def read_body(handler: Any, limit: int) -> bytes:
    """The request body, at most `limit` bytes, or BodyError (411 without Content-Length, 413 over the
    limit). A refused body is left unread (up to DRAIN_BYTES over the limit: dropped), and the connection
    is closed after the reply."""
    if handler.headers.get("Transfer-Encoding"):
        handler.close_connection = True
        raise BodyError(411, "send the body with a Content-Length (chunked transfer encoding is not accepted)")
    try:
        length = int(handler.headers.get("Content-Length", ""))
    except ValueError:
        handler.close_connection = True
        raise BodyError(411, "a Content-Length header is required") from None
    if length < 0:
        handler.close_connection = True
        raise BodyError(400, "Content-Length must not be negative")
    if length > limit:
        handler.close_connection = True
        if length <= limit + DRAIN_BYTES:
            with contextlib.suppress(OSError):
                handler.rfile.read(length)  # each read has the idle timeout
        raise BodyError(413, f"body is {length} bytes; the limit is {limit}")
    try:
        body = handler.rfile.read(length)  # each read has the idle timeout
    except OSError:
        handler.close_connection = True
        raise BodyError(408, "the body did not arrive in time") from None
    if len(body) != length:
        handler.close_connection = True
        raise BodyError(400, f"body ended after {len(body)} of {length} bytes")
    return body


def serve_forever_in_thread(server: WebServer, name: str) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    return thread
