"""Badly behaved HTTP peers for exporter fault tests: slow, malformed, failing.

These are real HTTP servers on loopback, not mocks of our code: they stand in for engines in
states a healthy vLLM cannot be put into on demand.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Behaviour:
    def __init__(self, health_status: int = 200, models_body: bytes | None = None, delay: float = 0.0,
                 model: str = "m", root: str = "/models/m", require_auth: str | None = None):
        self.health_status = health_status
        self.require_auth = require_auth
        self.delay = delay
        self.models_body = models_body if models_body is not None else json.dumps(
            {"object": "list", "data": [{"id": model, "root": root, "max_model_len": 4096}]}).encode()


def serve(behaviour: Behaviour) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            time.sleep(behaviour.delay)
            if behaviour.require_auth and self.headers.get("Authorization") != behaviour.require_auth:
                self._reply(401, b"")
            elif self.path == "/health":
                self._reply(behaviour.health_status, b"")
            elif self.path == "/v1/models":
                self._reply(200, behaviour.models_body)
            else:
                self._reply(404, b"{}")

        def _reply(self, status: int, body: bytes) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
