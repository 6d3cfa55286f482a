"""KEDA external scaler (installed as `inferwatch.scaler`): PromQL predictions -> replica targets.

Planned; see docs/architecture.md.
"""
