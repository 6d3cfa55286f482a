"""KEDA external scaler: desired replicas per model, forecast from Prometheus (gRPC ExternalScaler).

KEDA calls it for ScaledObjects with a `type: external` (or `external-push`) trigger whose metadata names
the model and its policy; see docs/scaler.md. Its own series are on the metrics port.
"""

from __future__ import annotations

import argparse

from inferwatch.config import InferwatchConfig, ScalerConfig
from inferwatch.kit.commands import (
    CommandError,
    add_listen_arguments,
    checked_section,
    listen_overrides,
    reload_section,
    serve_until_signal,
)

HELP = "KEDA external scaler: predicted replicas per model from Prometheus (gRPC, port 9842)"
KEYS = ("metrics_port", "prometheus_url", "tls_cert_file", "tls_key_file", "tls_client_ca_file")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_listen_arguments(parser, "scaler", 9842)
    parser.add_argument("--metrics-port", dest="metrics_port", type=int,
                        help="port of the scaler's own /metrics (overrides scaler.metrics_port, default 9843)")
    parser.add_argument("--prometheus-url", dest="prometheus_url", metavar="URL",
                        help="Prometheus (or Thanos/Mimir) query API base URL (overrides scaler.prometheus_url)")
    parser.add_argument("--tls-cert-file", dest="tls_cert_file", metavar="FILE",
                        help="serve gRPC over TLS with this certificate (and --tls-key-file)")
    parser.add_argument("--tls-key-file", dest="tls_key_file", metavar="FILE")
    parser.add_argument("--tls-client-ca-file", dest="tls_client_ca_file", metavar="FILE",
                        help="require client certificates signed by this CA (mTLS)")


def run(args: argparse.Namespace, config: InferwatchConfig) -> int:
    from inferwatch.scaler import server

    cfg = configured(args, config)
    try:
        server.server_credentials(cfg)
    except OSError as exc:
        raise CommandError(f"scaler TLS: cannot read {exc.filename}: {exc.strerror}") from None

    def reload(running: server.ScalerServer) -> None:  # type: ignore[name-defined]
        section = reload_section(args, running, lambda c: configured(args, c))
        if section is not None:
            running.reload(section)

    return serve_until_signal(lambda: server.start(cfg), cfg.listen_address, cfg.port, reload)


def configured(args: argparse.Namespace, config: InferwatchConfig) -> ScalerConfig:
    return checked_section(config.scaler, "scaler", listen_overrides(args, *KEYS))
