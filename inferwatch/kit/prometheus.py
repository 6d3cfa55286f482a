"""The Prometheus HTTP API calls inferwatch's tools and services make: instant and range queries, label values.

One deadline per call; transport failures raise `kit.httpclient.FetchError`, an answer that is not a
success (a bad expression, the server's own error) raises `QueryError`.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from inferwatch.kit.httpclient import get_json


class QueryError(ValueError):
    """Prometheus answered, but not with `status: success`."""


class PrometheusAPI:
    def __init__(self, url: str, timeout: float = 30.0):
        self.url, self.timeout = url.rstrip("/"), timeout

    def get(self, path: str, params: dict[str, Any]) -> Any:
        """`data` of GET /api/v1/<path>."""
        answer = get_json(f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params, doseq=True)}",
                          timeout=self.timeout)
        if not isinstance(answer, dict) or answer.get("status") != "success":
            raise QueryError(f"Prometheus refused the query: {str(answer)[:300]}")
        return answer["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict]:
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = at
        return self.get("query", params)["result"]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict]:
        return self.get("query_range", {"query": expr, "start": start, "end": end, "step": step})["result"]

    def label_values(self, label: str, selector: str | None, start: float, end: float) -> list[str]:
        params: dict[str, Any] = {"start": start, "end": end}
        if selector:
            params["match[]"] = selector
        return sorted(self.get(f"label/{label}/values", params))


MAX_POINTS = 11000  # Prometheus' own limit per query_range is 11 000 points a series


class CommandPrometheus:
    """For CLI commands: range queries split into chunks Prometheus accepts, failures as CommandError."""

    def __init__(self, url: str, step: float = 60.0, timeout: float = 60.0):
        self.api, self.step = PrometheusAPI(url, timeout=timeout), step

    def _api(self, path: str, **params: object) -> list[dict]:
        from inferwatch.kit.commands import CommandError
        from inferwatch.kit.httpclient import FetchError

        try:
            return self.api.get(path, params)["result"]
        except (FetchError, QueryError) as exc:
            raise CommandError(f"prometheus: {exc}") from None

    def query(self, expr: str) -> list[dict]:
        return self._api("query", query=expr)

    def query_range(self, expr: str, start: float, end: float) -> list[dict]:
        series: list[dict] = []
        chunk = self.step * (MAX_POINTS - 1)
        while start <= end:
            series += self._api("query_range", query=expr, start=start, end=min(end, start + chunk), step=self.step)
            start += chunk + self.step
        return series
