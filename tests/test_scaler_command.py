"""`inferwatch scaler` as an operator runs it: the `scaler` config section, the command's flags, SIGHUP reload of
named policies, SIGTERM; and the decision cache that answers KEDA's GetMetrics + IsActive pair once."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from inferwatch.config import ConfigError, parse_config
from inferwatch.lab.process import free_port, wait_until

grpc = pytest.importorskip("grpc", reason="the scaler extra (grpcio) is not installed")

from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402

from inferwatch.scaler.proto import externalscaler_pb2 as pb  # noqa: E402
from inferwatch.scaler.proto import externalscaler_pb2_grpc as pb_grpc  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "f.yaml")
    return str(info.value)


def test_the_example_config_has_the_scaler_section() -> None:
    config = parse_config((REPO / "inferwatch" / "examples" / "inferwatch.yaml").read_text()).scaler
    assert (config.port, config.metrics_port) == (9842, 9843)
    assert config.policies == {}


def test_policy_values_are_kept_as_written() -> None:
    config = parse_config("scaler:\n  policies:\n    chat: {headroom: 0.20, seasonal: 1d, maxReplicas: 8}\n")
    assert config.scaler.policies == {"chat": {"headroom": "0.20", "seasonal": "1d", "maxReplicas": "8"}}


@pytest.mark.parametrize(("text", "error"), [
    ("scaler:\n  tls_cert_file: c.pem\n", "f.yaml:2: scaler.tls_key_file: tls_cert_file and tls_key_file go together"),
    ("scaler:\n  tls_client_ca_file: ca.pem\n", "f.yaml:2: scaler.tls_client_ca_file: needs tls_cert_file"),
    ("scaler:\n  port: 9843\n", "f.yaml:2: scaler.metrics_port: must differ from port"),
    ("scaler:\n  policies:\n    chat: {headroom: [1]}\n",
     "f.yaml:3: scaler.policies.chat.headroom: expected a string, number or true/false, got a list"),
    ("scaler:\n  policies:\n    chat: {headroom: null}\n", "f.yaml:3: scaler.policies.chat.headroom: expected a value"),
    ("scaler:\n  policies:\n    a b: {}\n", "scaler.policies.a b: policy names must be"),
    ("scaler:\n  policies:\n    chat: {policy: other}\n", "scaler.policies.chat.policy: a named policy cannot"),
    # A named policy is parsed at load, as a trigger naming it would be: its mistakes do not wait for KEDA.
    ("scaler:\n  policies:\n    chat:\n      headroom: lots\n",
     "f.yaml:4: scaler.policies.chat.headroom: must be a number, got 'lots'"),
    ("scaler:\n  policies:\n    chat: {replicaz: 3}\n", "f.yaml:3: scaler.policies.chat.replicaz: unknown key"),
    ("scaler:\n  policies:\n    chat: {demand: tokens}\n",
     "scaler.policies.chat.capacityPerReplica: required when demand is 'tokens'"),
    ("scaler:\n  prometheus_url: prometheus:9090\n", "scaler.prometheus_url: must be an http:// or https:// URL"),
    ("scaler:\n  query_timeout_seconds: .nan\n", "scaler.query_timeout_seconds: must be a number of seconds"),
])
def test_config_mistakes_are_located(text: str, error: str) -> None:
    assert error in error_of(text)


def _config(tmp_path: Path, prometheus_url: str, policies: str) -> Path:
    path = tmp_path / "inferwatch.yaml"
    path.write_text(f"scaler:\n  prometheus_url: {prometheus_url}\n  listen_address: 127.0.0.1\n"
                    f"  policies:\n{policies}")
    return path


def test_command_serves_reloads_named_policies_and_stops(tmp_path: Path) -> None:
    port, metrics_port = free_port(), free_port()
    config = _config(tmp_path, "http://127.0.0.1:1", "    chat: {capacityPerReplica: 2}\n")
    proc = subprocess.Popen([sys.executable, "-m", "inferwatch.cli", "scaler", "-c", str(config), "--port",
                             str(port), "--metrics-port", str(metrics_port)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        health = health_pb2_grpc.HealthStub(channel)

        def serving() -> bool:
            try:
                return health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1).status == \
                    health_pb2.HealthCheckResponse.SERVING
            except grpc.RpcError:
                return proc.poll() is not None  # died: stop waiting, the assert below shows why

        wait_until(serving, 30, what="scaler health SERVING")
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        stub = pb_grpc.ExternalScalerStub(channel)
        ref = pb.ScaledObjectRef(name="a", namespace="b", scalerMetadata={"model": "m", "policy": "fast"})
        error = None
        try:
            stub.GetMetricSpec(ref, timeout=5)
        except grpc.RpcError as exc:
            error = exc
        assert error is not None and error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "scalerMetadata.policy: no policy named 'fast'" in error.details()

        _config(tmp_path, "http://127.0.0.1:1", "    chat: {capacityPerReplica: 2}\n    fast: {headroom: 0.5}\n")
        proc.send_signal(signal.SIGHUP)

        def reloaded() -> bool:
            try:
                return bool(stub.GetMetricSpec(ref, timeout=5).metricSpecs)
            except grpc.RpcError:
                return False

        wait_until(reloaded, 15, what="the reloaded policy")
        channel.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    _, err = proc.communicate()
    assert "KEDA external scaler on 127.0.0.1:" in err and "config reloaded" in err


def test_a_bad_flag_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "inferwatch.cli", "scaler", "--prometheus-url", "nope"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith("inferwatch: scaler.prometheus_url: must be an http:// or https:// URL")


def test_missing_tls_file_is_one_line(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "inferwatch.cli", "scaler", "--tls-cert-file",
                             str(tmp_path / "none.pem"), "--tls-key-file", str(tmp_path / "none.key")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.startswith("inferwatch: scaler TLS: cannot read ") and len(result.stderr.splitlines()) == 1


def test_the_decision_cache_answers_is_active_after_get_metrics(tmp_path: Path) -> None:
    """KEDA's poll is GetMetrics then IsActive: with the cache the pair costs one set of queries."""
    from inferwatch.config import ScalerConfig
    from inferwatch.scaler import server

    queried: list[float] = []

    class Reader:
        def read(self, policy, url, timeout, now, observe=None):
            from inferwatch.scaler.policy import Signals

            queried.append(now)
            return Signals(now=now, demand=[(now - 30, 4.0), (now, 4.0)], seasonal={}, capacity_history=None,
                           ttft_burn_rate=None, kv_cache_usage=None, waiting_per_replica=None, replicas=2,
                           replicas_ready=2)

        def close(self) -> None:
            pass

    clock = [1_000_000.0]
    running = server.start(ScalerConfig(listen_address="127.0.0.1", port=0, metrics_port=0,
                                        decision_cache_seconds=2.0), clock=lambda: clock[0])
    running.servicer.reader = Reader()  # type: ignore[assignment]
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = pb_grpc.ExternalScalerStub(channel)
            ref = pb.ScaledObjectRef(name="a", namespace="b", scalerMetadata={"model": "m", "capacityPerReplica": "1",
                                                                              "headroom": "0", "seasonal": "1d"})
            (value,) = stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref), timeout=5).metricValues
            assert stub.IsActive(ref, timeout=5).result
            assert value.metricValueFloat == pytest.approx(4.0) and value.metricValue == 4
            assert len(queried) == 1
            clock[0] += 2.5
            stub.IsActive(ref, timeout=5)
            assert len(queried) == 2
            other = pb.ScaledObjectRef(name="c", namespace="b", scalerMetadata=ref.scalerMetadata)
            stub.IsActive(other, timeout=5)
            assert len(queried) == 3, "another ScaledObject is another decision"
    finally:
        running.stop()
