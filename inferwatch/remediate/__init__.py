"""Remediation: an Alertmanager webhook receiver that maps alerts to allow-listed actions through config."""
