"""`inferwatch versions` against a real Prometheus scraping a tiny exposition whose version changes."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from inferwatch.lab.process import wait_until


class _Exposition:
    def __init__(self) -> None:
        self.version = "v1"
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = (f'inferwatch_model_version_info{{endpoint="e1",model_name="vm1",version="{owner.version}",'
                        'source="config"} 1\n').encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def exposition() -> Iterator[_Exposition]:
    served = _Exposition()
    yield served
    served.server.shutdown()


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "inferwatch.cli", "versions", *args], capture_output=True,
                          text=True, timeout=60)


def test_versions_lists_both_versions_of_a_model(prometheus, exposition: _Exposition) -> None:
    prometheus.set_job("versions-test", [f"127.0.0.1:{exposition.port}"])
    try:
        prometheus.wait_for_series('inferwatch_model_version_info{model_name="vm1",version="v1"}', timeout=30)
        exposition.version = "v2"
        prometheus.wait_for_series('inferwatch_model_version_info{model_name="vm1",version="v2"}', timeout=30)
        # query_range steps are a minute apart: wait until a step falls after v1 went stale
        wait_until(lambda: "v2" in run("--prometheus-url", prometheus.url, "--model", "vm1").stdout, 90,
                   what="v2 in the version history")
        result = run("--prometheus-url", prometheus.url, "--model", "vm1", "--since", "1h")
        assert result.returncode == 0, result.stderr
        assert "model vm1" in result.stdout and " v1 " in result.stdout and " v2 " in result.stdout, result.stdout
        assert "endpoints 1" in result.stdout
        as_json = json.loads(run("--prometheus-url", prometheus.url, "--model", "vm1", "--json").stdout)
        versions = as_json["models"]["vm1"]["versions"]
        assert [v["version"] for v in versions] == ["v1", "v2"]
        assert versions[0]["first_seen"] <= versions[1]["first_seen"]
    finally:
        prometheus.set_job("versions-test", [])


def test_versions_rejects_a_bad_since() -> None:
    result = run("--prometheus-url", "http://127.0.0.1:9", "--since", "soon")
    assert result.returncode == 2 and "--since" in result.stderr
