"""KEDA's external scaler protocol: `externalscaler.proto` and its generated stubs (scripts/gen-scaler-stubs.sh)."""
