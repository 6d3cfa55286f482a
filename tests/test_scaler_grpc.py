"""The KEDA external scaler end to end: a gRPC client acting as KEDA calls the running scaler, which reads a
real Prometheus holding two days of backfilled vLLM series (`promtool tsdb create-blocks-from openmetrics`).

The scaler's clock is set to moments inside the backfilled history, so every scenario is deterministic:
- `ramp`: 4 req/s, then +1 req/s per minute for 20 minutes: desired replicas grow ahead of demand;
- `spike`: 3 req/s with five minutes at 30: sized for the spike within 90 s, held through the scale-down
  stabilisation window, then back down;
- `idle`: a session, then nothing, then traffic at the time it started yesterday: IsActive false (0 replicas),
  then true *before* the traffic arrives (the 1-day seasonal lookback);
- Prometheus down, no demand data, malformed metadata: gRPC errors (KEDA's fallback), never a 0;
- the metric spec is constant; TLS and mTLS with generated certificates; the health service; the stubs are
  what scripts/gen-scaler-stubs.sh makes.
"""

from __future__ import annotations

import datetime
import ipaddress
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

grpc = pytest.importorskip("grpc", reason="the scaler extra (grpcio) is not installed")

from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from helpers import backfilled_prometheus, scrape_samples  # noqa: E402

from inferwatch.config import ScalerConfig  # noqa: E402
from inferwatch.lab.process import free_port  # noqa: E402
from inferwatch.lab.stack import Prometheus  # noqa: E402
from inferwatch.scaler import server as scaler_server  # noqa: E402
from inferwatch.scaler.proto import externalscaler_pb2 as pb  # noqa: E402
from inferwatch.scaler.proto import externalscaler_pb2_grpc as pb_grpc  # noqa: E402
from inferwatch.scaler.servicer import metric_name  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
STEP = 15  # backfill resolution, seconds
DAY = 86400
END = (int(time.time()) // 3600 - 1) * 3600  # whole hours, an hour before now: the history's last sample
START = END - 2 * DAY - 3600
RAMP = END - 6 * 3600  # the ramp starts
SPIKE = END - 4 * 3600  # the spike starts (lasts 5 minutes)
WAKE = END - 5400  # idle model: traffic starts here, as it did a day earlier
CAPACITY, HEADROOM = 2.0, 0.25


def ramp_rate(t: float) -> float:
    return 4.0 + min(max(t - RAMP, 0.0), 1200.0) / 60.0


def spike_rate(t: float) -> float:
    return 30.0 if SPIKE <= t < SPIKE + 300 else 3.0


def idle_rate(t: float) -> float:
    sessions = [(WAKE - DAY, WAKE - DAY + 3600), (WAKE - 3 * 3600, WAKE - 2 * 3600), (WAKE, END + 1)]
    return 6.0 if any(a <= t < b for a, b in sessions) else 0.0


RATES: dict[str, Callable[[float], float]] = {"ramp": ramp_rate, "spike": spike_rate, "idle": idle_rate}
# "zero": the idle model's sessions on a deployment that really scales to zero: outside the sessions its pods,
# and so every vLLM series, are gone; kube-state-metrics reports the deployment at 0 replicas.
ZERO_DEPLOYMENT = "vllm-zero"


def zero_pods_up(t: float) -> bool:
    return idle_rate(t) > 0


def openmetrics() -> str:
    """Per model: the success counter (integrating its rate), two replicas' running gauge, KV cache, queue."""
    lines = []
    times = range(START, END + 1, STEP)
    for model, rate in RATES.items():
        total = 0.0
        for t in times:
            total += rate(t) * STEP
            lines.append(f'vllm:request_success_total{{model_name="{model}",instance="a"}} {total:.1f} {t}')
        for instance in ("a", "b"):
            lines += [f'vllm:num_requests_running{{model_name="{model}",instance="{instance}"}} 3 {t}' for t in times]
            lines += [f'vllm:kv_cache_usage_perc{{model_name="{model}",instance="{instance}"}} 0.3 {t}'
                      for t in times]
            lines += [f'vllm:num_requests_waiting{{model_name="{model}",instance="{instance}"}} 0 {t}' for t in times]
    total = 0.0
    for t in times:
        up = zero_pods_up(t)
        lines.append(f'kube_deployment_status_replicas{{deployment="{ZERO_DEPLOYMENT}",namespace="llm"}} '
                     f'{2 if up else 0} {t}')
        total = total + idle_rate(t) * STEP if up else 0.0  # new pods count from 0
        if up:
            lines.append(f'vllm:request_success_total{{model_name="zero",instance="a"}} {total:.1f} {t}')
            for instance in ("a", "b"):
                lines.append(f'vllm:num_requests_running{{model_name="zero",instance="{instance}"}} 3 {t}')
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """One real Prometheus for the module whose TSDB holds exactly the scenarios (nothing scraped)."""
    server = backfilled_prometheus(tmp_path_factory.mktemp("scaler-prometheus"), openmetrics(), "24h")
    yield server
    server.stop()


class Clock:
    """The scaler's clock, set by each test to a moment in the backfilled history."""

    def __init__(self) -> None:
        self.t = float(END)

    def __call__(self) -> float:
        return self.t


@dataclass
class Running:
    server: scaler_server.ScalerServer
    clock: Clock
    stub: pb_grpc.ExternalScalerStub
    channel: grpc.Channel


def _start(config: ScalerConfig, clock: Clock | None = None,
           credentials: grpc.ChannelCredentials | None = None) -> Running:
    clock = clock or Clock()
    running = scaler_server.start(config, clock=clock)
    target = f"localhost:{running.port}"
    channel = grpc.secure_channel(target, credentials) if credentials else grpc.insecure_channel(target)
    return Running(running, clock, pb_grpc.ExternalScalerStub(channel), channel)


def _config(prometheus_url: str, **values: object) -> ScalerConfig:
    defaults: dict[str, object] = {"listen_address": "127.0.0.1", "port": 0, "metrics_port": 0,
                                   "decision_cache_seconds": 0.0}
    return ScalerConfig(prometheus_url=prometheus_url, **{**defaults, **values})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def scaler(backfilled: Prometheus) -> Iterator[Running]:
    running = _start(_config(backfilled.url, stream_poll_seconds=0.2, max_tracked_objects=3,
                             policies={"chat": {"capacityPerReplica": "2", "headroom": "0.25"}}))
    yield running
    running.channel.close()
    running.server.stop()


def ref(model: str, name: str | None = None, **metadata: str) -> pb.ScaledObjectRef:
    """The ScaledObjectRef KEDA sends for a trigger with this metadata (scalerAddress included, as KEDA does)."""
    keys = {"scalerAddress": "inferwatch-scaler.monitoring.svc:9842", "model": model,
            "capacityPerReplica": str(CAPACITY), "headroom": str(HEADROOM), "startupSeconds": "180",
            "trendWindowSeconds": "600", "seasonal": "1d", "scaleDownStabilisationSeconds": "600", **metadata}
    return pb.ScaledObjectRef(name=name or f"vllm-{model}", namespace="llm", scalerMetadata=keys)


def desired(running: Running, at: float, scaled: pb.ScaledObjectRef) -> float:
    running.clock.t = at
    (value,) = running.stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=scaled,
                                                            metricName=metric_name("x"))).metricValues
    assert value.metricValue == math.ceil(value.metricValueFloat)
    assert value.metricName == metric_name(scaled.scalerMetadata["model"])
    return value.metricValueFloat


def active(running: Running, at: float, scaled: pb.ScaledObjectRef) -> bool:
    running.clock.t = at
    return running.stub.IsActive(scaled).result


def replicas_for(demand: float) -> float:
    return demand * (1 + HEADROOM) / CAPACITY


def observed_demand(prometheus: Prometheus, model: str, at: float) -> float:
    (series,) = prometheus.query(f'sum(rate(vllm:request_success_total{{model_name="{model}"}}[1m]))', at)
    return float(series["value"][1])


def rpc_error(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


# -- the scenarios -------------------------------------------------------------------------------


def test_ramp_desired_replicas_grow_ahead_of_demand(scaler: Running, backfilled: Prometheus) -> None:
    model = ref("ramp")
    flat = desired(scaler, RAMP - 60, model)
    assert flat == pytest.approx(replicas_for(4.0), rel=0.05)
    moments = [RAMP + m * 60 for m in (6, 8, 10, 12, 14)]
    values = [desired(scaler, t, model) for t in moments]
    assert values == sorted(values) and values[-1] > values[0] + 2, values
    for t, value in zip(moments[2:], values[2:], strict=True):  # the trend window is all ramp from +10 min
        now = replicas_for(observed_demand(backfilled, "ramp", t))
        at_startup = replicas_for(ramp_rate(t + 180))
        assert value > now + 0.5, f"at +{(t - RAMP) / 60:g} min: {value:.2f} is not ahead of {now:.2f}"
        assert value >= 0.9 * at_startup, f"{value:.2f} is short of the demand once pods are up ({at_startup:.2f})"
    assert active(scaler, moments[-1], model)


def test_spike_is_met_then_held_through_stabilisation_then_released(scaler: Running) -> None:
    model = ref("spike")
    assert desired(scaler, SPIKE - 60, model) == pytest.approx(replicas_for(3.0), rel=0.05)
    assert desired(scaler, SPIKE + 90, model) >= 0.9 * replicas_for(30.0)
    assert desired(scaler, SPIKE + 300 + 180, model) >= 0.9 * replicas_for(30.0), "released before stabilisation"
    assert desired(scaler, SPIKE + 300 + 12 * 60, model) <= 1.5 * replicas_for(3.0)


def test_idle_goes_to_zero_and_wakes_ahead_of_forecast_traffic(scaler: Running, backfilled: Prometheus) -> None:
    model = ref("idle")
    assert active(scaler, WAKE - 2 * 3600 + 300, model), "the morning session just ended: still held"
    assert not active(scaler, WAKE - 3600, model)
    assert desired(scaler, WAKE - 3600, model) == 0.0
    assert not active(scaler, WAKE - 1800, model)
    # No request yet today, but yesterday's traffic started at WAKE: active one start-up time ahead.
    assert observed_demand(backfilled, "idle", WAKE - 90) == 0.0
    assert active(scaler, WAKE - 90, model)
    assert desired(scaler, WAKE - 90, model) > 0
    assert desired(scaler, WAKE + 300, model) >= replicas_for(6.0)  # the step still reads as a ramp
    assert desired(scaler, WAKE + 900, model) == pytest.approx(replicas_for(6.0), rel=0.1)


def test_scaled_to_zero_is_idle_not_an_error_and_wakes_ahead(scaler: Running, backfilled: Prometheus) -> None:
    """At zero pods the demand query is empty: with `deployment` set and kube-state-metrics at 0 that is a
    known 0 (idle, 0 replicas) and yesterday's traffic still wakes the model ahead of time."""
    model = ref("zero", deployment=ZERO_DEPLOYMENT)
    assert backfilled.query('vllm:request_success_total{model_name="zero"}', WAKE - 1800) == []
    assert not active(scaler, WAKE - 1800, model)
    assert desired(scaler, WAKE - 1800, model) == 0.0
    assert active(scaler, WAKE - 90, model)
    assert desired(scaler, WAKE - 90, model) > 0
    assert desired(scaler, WAKE + 900, model) == pytest.approx(replicas_for(6.0), rel=0.1)
    # Without `deployment` the same empty answer is indistinguishable from a wrong model name: an error.
    error = rpc_error(lambda: desired(scaler, WAKE - 1800, ref("zero")))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "deployment" in error.details()
    # And a deployment with pods up but no vLLM series (a lost scrape) is not read as idle either.
    error = rpc_error(lambda: desired(scaler, WAKE + 900, ref("absent", deployment=ZERO_DEPLOYMENT)))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_stream_is_active_pushes_the_state_then_each_change(scaler: Running) -> None:
    model = ref("idle", name="vllm-idle-push")
    scaler.clock.t = WAKE - 3600
    stream = scaler.stub.StreamIsActive(model, timeout=30)
    got: list[bool] = []
    first = threading.Event()

    def read() -> None:
        for message in stream:
            got.append(message.result)
            first.set()
            if len(got) == 2:
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert first.wait(10) and got == [False]
    time.sleep(0.6)  # several polls with nothing changed: nothing pushed
    assert got == [False]
    scaler.clock.t = WAKE - 90
    reader.join(10)
    assert got == [False, True]
    stream.cancel()


# -- errors are errors (KEDA's fallback), never a silent 0 ---------------------------------------


def test_prometheus_down_is_unavailable_not_zero(tmp_path: Path) -> None:
    running = _start(_config(f"http://127.0.0.1:{free_port()}", query_timeout_seconds=1.0))
    try:
        for call in (lambda: running.stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref("ramp"))),
                     lambda: running.stub.IsActive(ref("ramp"))):
            error = rpc_error(call)
            assert error.code() == grpc.StatusCode.UNAVAILABLE, error.details()
            assert "Prometheus" in error.details()
        samples = scrape_samples(running.server.exporter.url)
        assert samples["inferwatch_scaler_rpcs_total"][(("code", "UNAVAILABLE"), ("method", "GetMetrics"))] == 1
        errors = samples["inferwatch_scaler_query_errors_total"]
        assert errors[(("reason", "refused"), ("stage", "demand"))] == 2
        # The spec needs no Prometheus: KEDA can still create the HPA.
        assert running.stub.GetMetricSpec(ref("ramp")).metricSpecs[0].targetSizeFloat == 1.0
    finally:
        running.channel.close()
        running.server.stop()


def test_no_demand_data_is_failed_precondition(scaler: Running) -> None:
    scaler.clock.t = END - 600
    for call in (lambda: scaler.stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref("absent"))),
                 lambda: scaler.stub.IsActive(ref("absent"))):
        error = rpc_error(call)
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "no data" in error.details() and "absent" in error.details()
    error = rpc_error(lambda: scaler.stub.IsActive(ref("x", demandQuery='sum(rate(vllm:request_success_total[1m]')))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, "a query Prometheus refuses"
    error = rpc_error(lambda: scaler.stub.IsActive(ref("x", demandQuery="vllm:num_requests_running")))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "series" in error.details()


@pytest.mark.parametrize(("metadata", "key"), [
    ({"headroom": "lots"}, "headroom"),
    ({"replicaz": "3"}, "replicaz"),
    ({"startupSeconds": "-5"}, "startupSeconds"),
    ({"policy": "nope"}, "policy"),
])
def test_malformed_metadata_is_invalid_argument_naming_the_key(scaler: Running, metadata: dict[str, str],
                                                               key: str) -> None:
    bad = ref("ramp", **metadata)
    for call in (lambda: scaler.stub.GetMetricSpec(bad), lambda: scaler.stub.IsActive(bad),
                 lambda: scaler.stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=bad)),
                 lambda: next(iter(scaler.stub.StreamIsActive(bad, timeout=10)))):
        error = rpc_error(call)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error.details().startswith(f"scalerMetadata.{key}: "), error.details()


def test_missing_model_is_invalid_argument() -> None:
    keys = dict(ref("ramp").scalerMetadata)
    del keys["model"]
    running = _start(_config("http://127.0.0.1:1"))
    try:
        error = rpc_error(lambda: running.stub.GetMetricSpec(pb.ScaledObjectRef(name="a", scalerMetadata=keys)))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "scalerMetadata.model" in error.details()
    finally:
        running.channel.close()
        running.server.stop()


# -- the metric spec, named policies, self-metrics -----------------------------------------------


def test_metric_spec_is_one_constant_target(scaler: Running) -> None:
    specs = []
    for at, extra in [(RAMP, {}), (SPIKE + 60, {"headroom": "0.5"}), (END, {"minReplicas": "1"})]:
        scaler.clock.t = at
        specs.append(scaler.stub.GetMetricSpec(ref("meta-llama/Llama-3.1-8B-Instruct", **extra)).metricSpecs)
    for got in specs:
        (spec,) = got
        assert spec.targetSizeFloat == 1.0 and spec.targetSize == 1
        assert spec.metricName == specs[0][0].metricName
    name = specs[0][0].metricName
    assert name.startswith("inferwatch-meta-llama-llama-3-1-8b-instruct-") and len(name) <= 63
    assert set(name) <= set("abcdefghijklmnopqrstuvwxyz0123456789-")
    assert metric_name("ramp") == "inferwatch-ramp"
    error = rpc_error(lambda: list(scaler.stub.StreamMetricSpec(ref("ramp"), timeout=10)))
    assert error.code() == grpc.StatusCode.UNIMPLEMENTED  # tolerated by KEDA v2.21; older KEDA never calls it


def test_named_policy_from_the_config_with_inline_overrides(scaler: Running) -> None:
    named = pb.ScaledObjectRef(name="vllm-chat", namespace="llm", scalerMetadata={
        "scalerAddress": "x:9842", "model": "spike", "policy": "chat", "seasonal": "1d"})
    value = desired(scaler, SPIKE - 60, named)
    assert value == pytest.approx(replicas_for(3.0), rel=0.05)  # capacity 2, headroom 0.25 from the policy
    override = pb.ScaledObjectRef(name="vllm-chat", namespace="llm", scalerMetadata={
        **named.scalerMetadata, "headroom": "1.0"})
    assert desired(scaler, SPIKE - 60, override) == pytest.approx(3.0 * 2 / CAPACITY, rel=0.05)


def test_self_metrics_per_scaled_object_are_capped(scaler: Running) -> None:
    for i in range(5):
        desired(scaler, SPIKE - 60, ref("spike", name=f"capped-{i}"))
    samples = scrape_samples(scaler.server.exporter.url)
    assert samples["inferwatch_scaler_tracked_objects"][()] == 3  # max_tracked_objects in the fixture
    assert samples["inferwatch_scaler_untracked_decisions_total"][()] >= 2
    assert len(samples["inferwatch_scaler_desired_replicas"]) == 3
    assert samples["inferwatch_scaler_queries_total"][(("stage", "demand"),)] > 0
    assert samples["inferwatch_scaler_rpcs_total"][(("code", "OK"), ("method", "GetMetrics"))] > 0
    assert samples["inferwatch_scaler_exporter_scrapes_total"][()] >= 1


# -- transport: health, TLS, mTLS ----------------------------------------------------------------


def test_health_service_is_serving(scaler: Running) -> None:
    health = health_pb2_grpc.HealthStub(scaler.channel)
    for service in ("", "externalscaler.ExternalScaler"):
        answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING


def test_a_second_scaler_on_the_same_port_fails(scaler: Running) -> None:
    with pytest.raises(OSError):
        scaler_server.start(_config("http://127.0.0.1:1", port=scaler.server.port))


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


@pytest.fixture(scope="module", params=["cryptography", "openssl"])
def pki(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A self-signed CA, a server certificate for localhost/127.0.0.1 and a client certificate, made with
    `cryptography` (the test extra brings it) and with the openssl command (where either is missing, the
    other one's run is the test)."""
    root = tmp_path_factory.mktemp("pki")
    if request.param == "openssl":
        if shutil.which("openssl") is None:
            pytest.skip("the openssl command is not installed")
        return _openssl_pki(root)
    try:
        import cryptography  # noqa: F401
    except ImportError:
        pytest.skip("cryptography is not installed")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        return path

    def certificate(name: str, key: ec.EllipticCurvePrivateKey, issuer: tuple | None, ca: bool,
                    extensions: list) -> x509.Certificate:
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        signer_name, signer_key = issuer or (subject, key)
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(signer_name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        for extension in extensions:
            builder = builder.add_extension(extension, critical=False)
        return builder.sign(signer_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = certificate("inferwatch test CA", ca_key, None, True, [])
    issuer = (ca_cert.subject, ca_key)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = certificate("localhost", server_key, issuer, False, [
        x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH])])
    client_key = ec.generate_private_key(ec.SECP256R1())
    client_cert = certificate("keda-operator", client_key, issuer, False, [
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])])
    pem = serialization.Encoding.PEM
    (root / "ca.pem").write_bytes(ca_cert.public_bytes(pem))
    (root / "server.pem").write_bytes(server_cert.public_bytes(pem))
    (root / "client.pem").write_bytes(client_cert.public_bytes(pem))
    return Pki(root / "ca.pem", root / "server.pem", write_key(server_key, root / "server.key"),
               root / "client.pem", write_key(client_key, root / "client.key"))


def _openssl_pki(root: Path) -> Pki:
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=root, check=True, capture_output=True, timeout=60)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=inferwatch test CA")
    for name, cn, ext in [("server", "localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                                                   "extendedKeyUsage=serverAuth\n"),
                          ("client", "keda-operator", "extendedKeyUsage=clientAuth\n")]:
        (root / f"{name}.ext").write_text(ext)
        run("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.pem", "-days", "1", "-extfile", f"{name}.ext")
    return Pki(root / "ca.pem", root / "server.pem", root / "server.key", root / "client.pem", root / "client.key")


def test_tls_with_a_self_signed_ca(backfilled: Prometheus, pki: Pki) -> None:
    config = _config(backfilled.url, tls_cert_file=str(pki.server_cert), tls_key_file=str(pki.server_key))
    running = _start(config, credentials=grpc.ssl_channel_credentials(root_certificates=pki.ca.read_bytes()))
    try:
        assert desired(running, SPIKE - 60, ref("spike")) == pytest.approx(replicas_for(3.0), rel=0.05)
        with grpc.insecure_channel(f"127.0.0.1:{running.server.port}") as plain:
            error = rpc_error(lambda: pb_grpc.ExternalScalerStub(plain).GetMetricSpec(ref("spike"), timeout=5))
            assert error.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        running.channel.close()
        running.server.stop()


def test_mtls_requires_a_client_certificate(backfilled: Prometheus, pki: Pki) -> None:
    config = _config(backfilled.url, tls_cert_file=str(pki.server_cert), tls_key_file=str(pki.server_key),
                     tls_client_ca_file=str(pki.ca))
    with_client = grpc.ssl_channel_credentials(pki.ca.read_bytes(), pki.client_key.read_bytes(),
                                               pki.client_cert.read_bytes())
    running = _start(config, credentials=with_client)
    try:
        assert running.stub.GetMetricSpec(ref("spike"), timeout=10).metricSpecs[0].metricName == "inferwatch-spike"
        anonymous = grpc.secure_channel(f"localhost:{running.server.port}",
                                        grpc.ssl_channel_credentials(root_certificates=pki.ca.read_bytes()))
        with anonymous:
            error = rpc_error(lambda: pb_grpc.ExternalScalerStub(anonymous).GetMetricSpec(ref("spike"), timeout=5))
            assert error.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        running.channel.close()
        running.server.stop()


# -- the generated stubs -------------------------------------------------------------------------


def test_committed_stubs_are_what_the_generator_makes(tmp_path: Path) -> None:
    """STALE STUBS: if this fails, run scripts/gen-scaler-stubs.sh and commit scaler/proto/*_pb2*.py."""
    try:
        import grpc_tools  # noqa: F401
    except ImportError:
        pytest.skip("grpcio-tools is not installed (the test extra pins it)")
    env = {**os.environ, "PYTHON": sys.executable}
    result = subprocess.run(["bash", str(REPO / "scripts" / "gen-scaler-stubs.sh"), str(tmp_path)], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for name in ("externalscaler_pb2.py", "externalscaler_pb2_grpc.py"):
        committed = (REPO / "scaler" / "proto" / name).read_text()
        assert (tmp_path / name).read_text() == committed, (
            f"scaler/proto/{name} is stale: run scripts/gen-scaler-stubs.sh and commit the result")
    assert "from . import externalscaler_pb2" in (tmp_path / "externalscaler_pb2_grpc.py").read_text()
