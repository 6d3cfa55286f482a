"""TLS, basic auth and connection hygiene on inferwatch's HTTP endpoints, scraped by a real Prometheus."""

from __future__ import annotations

import base64
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import bcrypt
import pytest

from inferwatch.config import ConfigError, GpuExporterConfig
from inferwatch.exporters.gpu import server as gpu_server
from inferwatch.exporters.gpu.simnvml import SimulatedNvml
from inferwatch.kit.web import WebServer, load_web_config

PASSWORD = "s3cret-Pa55"


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"], check=True, capture_output=True)
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=6)).decode().replace("$2b$", "$2y$", 1)
    web = folder / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n"
                   f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    return {"cert": cert, "key": key, "web": web}


@pytest.fixture(scope="module")
def secure_exporter(tls_files):
    config = GpuExporterConfig(listen_address="127.0.0.1", port=0, hostname="secure", xid_events=False,
                               process_attribution=False, web_config_file=str(tls_files["web"]))
    exporter = gpu_server.start(config, nvml=SimulatedNvml.from_scenario("h100x2"))
    yield exporter
    exporter.stop()


def get(url: str, cafile: Path | None = None, auth: tuple[str, str] | None = None) -> tuple[int, str]:
    headers = {}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    context = ssl.create_default_context(cafile=str(cafile)) if cafile else None
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10,
                                    context=context) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def test_prometheus_scrapes_over_tls_with_basic_auth(prometheus, secure_exporter, tls_files) -> None:
    assert secure_exporter.url.startswith("https://127.0.0.1:")
    job = "gpu-tls"
    prometheus.set_job(job, [f"127.0.0.1:{secure_exporter.port}"], scheme="https",
                       tls_config={"ca_file": str(tls_files["cert"])},
                       basic_auth={"username": "prometheus", "password": PASSWORD})
    prometheus.wait_for_series(f'inferwatch_gpu_up{{job="{job}"}} == 1', count=2)
    assert prometheus.query_value(f'up{{job="{job}"}}') == 1


def test_wrong_or_missing_credentials_are_refused(secure_exporter, tls_files) -> None:
    cert = tls_files["cert"]
    assert get(secure_exporter.url, cert)[0] == 401
    assert get(secure_exporter.url, cert, ("prometheus", "wrong"))[0] == 401
    assert get(secure_exporter.url, cert, ("nobody", PASSWORD))[0] == 401
    status, body = get(secure_exporter.url, cert, ("prometheus", PASSWORD))
    assert status == 200 and "inferwatch_gpu_up{" in body
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        get(secure_exporter.url.replace("https://", "http://"))  # plain HTTP to a TLS port


def raw_connection(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    return sock


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """True if the server closes the connection within `seconds`."""
    sock.settimeout(seconds)
    try:
        return sock.recv(1024) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def plain_server(**options) -> WebServer:
    server = WebServer(("127.0.0.1", 0), {"/": lambda handler: (200, "text/plain", b"ok\n")}, **options)
    import threading

    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_idle_and_slow_header_connections_are_closed() -> None:
    server = plain_server(idle_timeout=0.5)
    try:
        idle = raw_connection(server.port)
        slow = raw_connection(server.port)
        slow.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # headers never finish
        started = time.monotonic()
        assert closed_within(idle, 3) and closed_within(slow, 3)
        assert time.monotonic() - started < 2.5
    finally:
        server.shutdown()
        server.server_close()


def test_connections_over_the_cap_are_closed_not_queued() -> None:
    server = plain_server(idle_timeout=10, max_connections=2)
    try:
        held = [raw_connection(server.port) for _ in range(2)]
        time.sleep(0.2)
        extra = raw_connection(server.port)
        assert closed_within(extra, 2), "the third connection is dropped at once"
        assert server.rejected_connections == 1
        for sock in held:
            sock.close()
        time.sleep(0.3)
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/", timeout=5) as response:
            assert response.read() == b"ok\n", "slots come back when connections close"
    finally:
        server.shutdown()
        server.server_close()


def test_a_slow_tls_handshake_does_not_block_other_clients(secure_exporter, tls_files) -> None:
    stalled = raw_connection(secure_exporter.port)  # connects, never starts the handshake
    try:
        status, _ = get(secure_exporter.url, tls_files["cert"], ("prometheus", PASSWORD))
        assert status == 200
    finally:
        stalled.close()


@pytest.mark.parametrize(("text", "expected"), [
    ("tls_server_config:\n  cert_file: /nope.pem\n", "2: tls_server_config.key_file: required key is missing"),
    ("basic_auth_users:\n  alice: plaintext\n",
     "2: basic_auth_users.alice: must be a bcrypt hash ($2y$...), e.g. from `htpasswd -nBC 10 \"\" `"),
    ("tls_server_config:\n  cert_file: c\n  key_file: k\n  client_auth_type: RequireAndVerifyClientCert\n",
     "2: tls_server_config.client_ca_file: required when client_auth_type is RequireAndVerifyClientCert"),
    ("tls_config:\n  cert_file: c\n",
     "1: tls_config: unknown key (expected one of: tls_server_config, basic_auth_users, http_server_config)"),
])
def test_web_config_errors_are_located(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "web.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_web_config(str(path))
    assert str(info.value) == f"{path}:{expected}"


def test_unreadable_certificate_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "web.yml"
    path.write_text(f"tls_server_config:\n  cert_file: {tmp_path}/missing.pem\n  key_file: {tmp_path}/k.pem\n")
    with pytest.raises(ConfigError) as info:
        load_web_config(str(path))
    assert str(info.value).startswith(f"{path}: tls_server_config: cannot load certificate or key: ")
