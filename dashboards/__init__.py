"""Grafana dashboards (grafanalib sources and rendered JSON), shipped as package data."""
