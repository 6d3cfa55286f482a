"""A loopback Alertmanager webhook receiver that prints each notification (demo and tests)."""

from __future__ import annotations

import http.server
import json
import threading
import time
from typing import Any


class WebhookSink:
    def __init__(self, echo: bool = True) -> None:
        self.received: list[dict[str, Any]] = []  # each alert of each notification, with `receiver` and `at`
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                try:
                    body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                except ValueError:
                    body = {}
                for alert in body.get("alerts", []):
                    labels = alert.get("labels", {})
                    sink.received.append({"receiver": self.path.strip("/"), "at": time.time(), **alert})
                    if echo:
                        print(f"  [notification -> {self.path.strip('/')}] {alert.get('status')}: "
                              f"{labels.get('alertname')} {labels.get('model_name') or labels.get('hostname') or ''}",
                              flush=True)
                self.send_response(200)
                self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> WebhookSink:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
