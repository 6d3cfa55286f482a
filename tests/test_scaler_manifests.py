"""The scaler's kustomize base (`scaler/manifests`), rendered by `kubectl kustomize` (offline), checked for
what KEDA needs: an external trigger with trigger-level `metricType: AverageValue`, a `scalerAddress` that is
the scaler's Service, a fallback, TLS material from a TriggerAuthentication; and a config and trigger metadata
the scaler itself accepts."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from inferwatch.config import parse_config
from inferwatch.scaler.policy import parse_policy

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def rendered() -> dict[str, dict[str, Any]]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed (kubectl kustomize renders the base offline)")
    result = subprocess.run(["kubectl", "kustomize", str(REPO / "scaler" / "manifests")], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    documents = [d for d in yaml.safe_load_all(result.stdout) if d]
    by_kind: dict[str, dict[str, Any]] = {}
    for document in documents:
        assert document["kind"] not in by_kind, f"one {document['kind']} expected"
        by_kind[document["kind"]] = document
    assert set(by_kind) == {"ConfigMap", "Deployment", "Service", "TriggerAuthentication", "ScaledObject"}
    return by_kind


def test_scaled_object_has_what_keda_needs(rendered: dict[str, dict[str, Any]]) -> None:
    scaled = rendered["ScaledObject"]
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    assert spec["scaleTargetRef"]["name"]
    assert spec["fallback"]["failureThreshold"] >= 1 and spec["fallback"]["replicas"] >= 1
    (trigger,) = spec["triggers"]
    assert trigger["type"] in ("external", "external-push")
    assert trigger["metricType"] == "AverageValue"  # at trigger level: KEDA ignores it in metadata (keda#5472)
    assert "metricType" not in trigger["metadata"]
    assert all(isinstance(v, str) for v in trigger["metadata"].values()), "trigger metadata is map[string]string"
    assert int(trigger["metadata"]["maxReplicas"]) == spec["maxReplicaCount"]


def test_scaler_address_is_the_service(rendered: dict[str, dict[str, Any]]) -> None:
    service, deployment = rendered["Service"], rendered["Deployment"]
    address = rendered["ScaledObject"]["spec"]["triggers"][0]["metadata"]["scalerAddress"]
    host, port = address.rsplit(":", 1)
    name, namespace = service["metadata"]["name"], service["metadata"]["namespace"]
    assert host in (f"{name}.{namespace}.svc", f"{name}.{namespace}.svc.cluster.local")
    (grpc_port,) = [p for p in service["spec"]["ports"] if p["name"] == "grpc"]
    assert grpc_port["port"] == int(port)
    pod = deployment["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    (container,) = pod["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    config = parse_config(rendered["ConfigMap"]["data"]["inferwatch.yaml"], "configmap").scaler
    assert ports == {"grpc": config.port, "metrics": config.metrics_port}
    assert grpc_port["targetPort"] in ("grpc", config.port)
    assert "scaler" in container["args"]


def test_tls_material_comes_from_the_trigger_authentication(rendered: dict[str, dict[str, Any]]) -> None:
    scaled, auth = rendered["ScaledObject"], rendered["TriggerAuthentication"]
    trigger = scaled["spec"]["triggers"][0]
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    assert auth["metadata"]["namespace"] == scaled["metadata"]["namespace"]
    assert {p["parameter"] for p in auth["spec"]["secretTargetRef"]} == {"caCert", "tlsClientCert", "tlsClientKey"}
    assert not {"caCert", "tlsClientCert", "tlsClientKey"} & set(trigger["metadata"])
    config = parse_config(rendered["ConfigMap"]["data"]["inferwatch.yaml"], "configmap").scaler
    assert trigger["metadata"]["enableTLS"] == "true" and config.tls_cert_file and config.tls_client_ca_file
    mounts = {m["mountPath"] for m in rendered["Deployment"]["spec"]["template"]["spec"]["containers"][0]
              ["volumeMounts"]}
    assert any(config.tls_cert_file.startswith(m + "/") for m in mounts)


def test_the_scaler_accepts_the_config_and_the_trigger_metadata(rendered: dict[str, dict[str, Any]]) -> None:
    config = parse_config(rendered["ConfigMap"]["data"]["inferwatch.yaml"], "configmap").scaler
    metadata = rendered["ScaledObject"]["spec"]["triggers"][0]["metadata"]
    policy = parse_policy(metadata, config.policies)
    assert policy.model == metadata["model"]
    assert policy.capacity_per_replica == float(config.policies[metadata["policy"]]["capacityPerReplica"])
