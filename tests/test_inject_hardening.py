"""`inferwatch inject` against bad arguments and bad servers: a clean error and exit code, never a hang."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest


def inject(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "inferwatch.cli", "inject", "--no-progress", *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize(("args", "message"), [
    (["--rate", "nan"], "--rate must be a number above 0 and at most 10000; got nan"),
    (["--rate", "inf"], "--rate must be a number above 0 and at most 10000; got inf"),
    (["--rate", "1e9"], "--rate must be a number above 0 and at most 10000; got 1000000000.0"),
    (["--duration", "nan"], "--duration must be a number above 0 and at most 604800; got nan"),
    (["--duration", "inf"], "--duration must be a number above 0 and at most 604800; got inf"),
    (["--rate", "10000", "--duration", "604800"],
     "--rate x --duration plans 6.05e+09 requests; the limit is 10,000,000"),
    (["--time-scale", "0"], "--time-scale must be a number above 0 and at most 10000; got 0.0"),
    (["--rate-scale", "-1"], "--rate-scale must be a number above 0 and at most 1000; got -1.0"),
    (["--timeout", "0"], "--timeout must be a number above 0 and at most 3600; got 0.0"),
    (["--concurrency", "0"], "--concurrency must be between 1 and 100000; got 0"),
    (["--output-tokens", "0"], "--output-tokens must be between 1 and 1000000; got 0"),
    (["--max-model-len", "0"], "--max-model-len must be at least 1; got 0"),
])
def test_absurd_arguments_exit_2_at_once(args: list[str], message: str) -> None:
    result = inject("--url", "http://127.0.0.1:9", *args, timeout=15)
    assert (result.returncode, result.stderr) == (2, f"inferwatch: inject: {message}\n")


def test_url_without_a_scheme() -> None:
    result = inject("--url", "localhost:8000")
    assert result.returncode == 2
    assert result.stderr == ("inferwatch: inject: --url must be an http:// or https:// URL with a host; "
                             "got 'localhost:8000'\n")


def test_unwritable_json_fails_before_the_run(tmp_path: Path) -> None:
    result = inject("--url", "http://127.0.0.1:9", "--json", str(tmp_path / "no" / "such" / "dir.json"))
    assert result.returncode == 2
    assert result.stderr == f"inferwatch: inject: cannot write --json {tmp_path}/no/such/dir.json: " \
                            "No such file or directory\n"


def test_oversized_csv_field_is_a_trace_error(tmp_path: Path) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n" + "x" * 200_000 + ",1,1\n")
    result = inject("--url", "http://127.0.0.1:9", "--model", "m", "--max-model-len", "512", "--trace", str(trace))
    assert result.returncode == 2
    assert result.stderr.startswith(f"inferwatch: inject: {trace}: not a readable CSV trace (field larger than")


class Peer:
    """A loopback HTTP server answering GET /v1/models with a chosen (bad) answer."""

    def __init__(self, status: int = 200, body: bytes = b"", headers: dict[str, str] | None = None):
        self.seen: list[dict[str, str]] = []
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                peer.seen.append(dict(self.headers))
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class GarbageStatusLine:
    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.recv(65536)
            conn.sendall(b"HTTQ/9 what\r\n\r\n")
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize(("peer", "message"), [
    (lambda: Peer(body=b"<html>not json"), "cannot read the model list: {url}/v1/models did not answer JSON"),
    (lambda: Peer(body=b"[1, 2, 3]"), "{url}/v1/models is not an OpenAI model list"),
    (lambda: Peer(status=503), "cannot read the model list: {url}/v1/models answered HTTP 503"),
    (GarbageStatusLine, "cannot read the model list: {url}/v1/models sent a malformed HTTP answer (BadStatusLine)"),
])
def test_bad_model_list_is_one_line_exit_1(peer, message: str) -> None:
    server = peer()
    try:
        result = inject("--url", server.url, "--duration", "1")
    finally:
        server.close()
    assert (result.returncode, result.stderr) == (1, "inferwatch: inject: " + message.format(url=server.url) + "\n")


def test_auth_header_never_follows_a_redirect_to_another_host(monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = Peer(body=b'{"data": [{"id": "m", "max_model_len": 64}]}')
    origin = Peer(status=302, headers={"Location": elsewhere.url + "/v1/models"})
    try:
        monkeypatch.setenv("TOKEN", "Bearer s3cret")
        result = inject("--url", origin.url, "--auth-header-env", "TOKEN", "--duration", "1")
    finally:
        origin.close()
        elsewhere.close()
    assert origin.seen and origin.seen[0].get("Authorization") == "Bearer s3cret"
    assert elsewhere.seen == [], "the other host was never contacted, so it never saw the token"
    assert result.returncode == 1
    assert "refused redirect from" in result.stderr


@pytest.mark.parametrize("data", [b"5", b"[1]", b'{"choices": 3}', b'{"choices": [7]}', b'{"usage": "x"}',
                                  b'{"usage": {"completion_tokens": -4}}', b"\xff\xfe", b"{"])
def test_stream_events_of_any_shape_parse_or_raise_valueerror(data: bytes) -> None:
    from inferwatch.inject.client import parse_event

    try:
        has_text, tokens = parse_event(data)
    except ValueError:
        return  # counted as a `protocol` error by send()
    assert has_text is False and tokens is None


def test_a_token_that_decodes_to_no_text_is_still_a_token() -> None:
    from inferwatch.inject.client import parse_event

    assert parse_event(b'{"choices": [{"index": 0, "text": ""}]}') == (True, None)
    assert parse_event(b'{"choices": [{"index": 0, "text": null}]}') == (False, None)
    assert parse_event(b'{"choices": [], "usage": {"completion_tokens": 2}}') == (False, 2)
