"""`inferwatch scaler`'s two ports: KEDA's gRPC `ExternalScaler` (+ the standard gRPC health service) on
`scaler.port`, optionally TLS or mTLS, and the scaler's own /metrics on `scaler.metrics_port` through the kit.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from inferwatch.config import ScalerConfig
from inferwatch.kit.exporter import Exporter, serve
from inferwatch.kit.web import load_web_config

from .metrics import ScalerCollector
from .proto import externalscaler_pb2_grpc as pb_grpc
from .servicer import ExternalScaler
from .signals import SignalReader

log = logging.getLogger(__name__)

SERVICE = "externalscaler.ExternalScaler"
STOP_GRACE_SECONDS = 2.0
MAX_MESSAGE_BYTES = 1 << 20  # a ScaledObjectRef is a few hundred bytes


@dataclasses.dataclass
class ScalerServer:
    """A running scaler: `port` (gRPC), `exporter` (/metrics), `collector`; `stop()` ends both."""

    config: ScalerConfig
    grpc_server: grpc.Server
    port: int
    exporter: Exporter
    servicer: ExternalScaler
    health: health.HealthServicer
    reader: SignalReader
    pool: concurrent.futures.ThreadPoolExecutor
    _stopping: threading.Event

    @property
    def collector(self) -> ScalerCollector:
        return self.exporter.collector

    @property
    def address(self) -> str:
        host = "127.0.0.1" if self.config.listen_address in ("0.0.0.0", "", "::") else self.config.listen_address
        return f"{_host(host)}:{self.port}"

    def reload(self, config: ScalerConfig) -> None:
        """Named policies, Prometheus URL, timeouts, caps from the next call on; ports and TLS need a restart."""
        kept = ("listen_address", "port", "metrics_port", "web_config_file", "tls_cert_file", "tls_key_file",
                "tls_client_ca_file", "max_workers")
        changed = [k for k in kept if getattr(config, k) != getattr(self.config, k)]
        if changed:
            log.warning("config reload: %s need a restart; keeping the running values", ", ".join(changed))
        config = dataclasses.replace(config, **{k: getattr(self.config, k) for k in kept})
        self.config = config
        self.collector.config = config
        self.servicer.reconfigure(config)
        self.collector.self_metrics.config_ok = True
        log.info("scaler config reloaded: %d named polic%s", len(config.policies),
                 "y" if len(config.policies) == 1 else "ies")

    def stop(self) -> None:
        self._stopping.set()
        self.health.enter_graceful_shutdown()
        self.grpc_server.stop(STOP_GRACE_SECONDS).wait(STOP_GRACE_SECONDS + 1)
        self.pool.shutdown(wait=False)
        self.exporter.stop()
        self.reader.close()


def start(config: ScalerConfig, clock: Callable[[], float] = time.time) -> ScalerServer:
    """Start both ports in background threads; OSError if a port is taken. `clock` is for tests and replays."""
    web = load_web_config(config.web_config_file)
    credentials = server_credentials(config)
    collector = ScalerCollector(config)
    exporter = serve(collector, config.listen_address, config.metrics_port, web)
    reader = SignalReader(workers=max(8, 2 * config.max_workers))  # a decision runs ~9 queries at once
    stopping = threading.Event()
    try:
        servicer = ExternalScaler(config, collector, reader, clock, stopping)
        checker = health.HealthServicer()
        pool = concurrent.futures.ThreadPoolExecutor(config.max_workers, thread_name_prefix="scaler-grpc")
        server = grpc.server(pool, options=[
            ("grpc.so_reuseport", 0),  # a second scaler on the same port must fail, not share it
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ])
        pb_grpc.add_ExternalScalerServicer_to_server(servicer, server)
        health_pb2_grpc.add_HealthServicer_to_server(checker, server)
        bind = f"{_host(config.listen_address)}:{config.port}"
        try:
            port = server.add_secure_port(bind, credentials) if credentials else server.add_insecure_port(bind)
        except RuntimeError as exc:  # grpcio >= 1.5x raises instead of returning 0
            raise OSError(f"cannot bind {bind}: {exc}") from None
        if port == 0:
            raise OSError(f"cannot bind {bind}")
        server.start()
    except BaseException:
        exporter.stop()
        reader.close()
        raise
    for service in ("", SERVICE):
        checker.set(service, health_pb2.HealthCheckResponse.SERVING)
    running = ScalerServer(config, server, port, exporter, servicer, checker, reader, pool, stopping)
    log.info("KEDA external scaler on %s (%s), metrics on %s; Prometheus %s; %d named polic%s",
             running.address, "mTLS" if config.tls_client_ca_file else "TLS" if credentials else "plaintext",
             exporter.url, config.prometheus_url, len(config.policies), "y" if len(config.policies) == 1 else "ies")
    return running


def server_credentials(config: ScalerConfig) -> grpc.ServerCredentials | None:
    if config.tls_cert_file is None or config.tls_key_file is None:
        return None
    key, cert = Path(config.tls_key_file).read_bytes(), Path(config.tls_cert_file).read_bytes()
    ca = Path(config.tls_client_ca_file).read_bytes() if config.tls_client_ca_file else None
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=ca is not None)


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
