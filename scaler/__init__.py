"""KEDA external scaler (installed as `inferwatch.scaler`): Prometheus forecasts -> desired replicas over gRPC.

`inferwatch scaler` (the `scaler` extra); see docs/scaler.md and docs/architecture.md.
"""
