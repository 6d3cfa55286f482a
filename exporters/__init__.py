"""Prometheus exporters (installed as `inferwatch.exporters`): one package per component."""
