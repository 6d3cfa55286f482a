"""Small helpers shared by tests."""

from __future__ import annotations

import urllib.request


def scrape(port: int, path: str = "/metrics") -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as response:
        return response.read().decode()


def by_label(result: list[dict], label: str) -> dict[str, float]:
    """Prometheus instant-query result -> {label value: float value}."""
    return {series["metric"].get(label, ""): float(series["value"][1]) for series in result}
