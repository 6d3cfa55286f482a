"""Which model version served a request, when the application did not say: asked of Prometheus.

The engine exporter exports `inferwatch_model_version_info{model_name, version}` for every
endpoint. The version serving `model` at time `t` is the one most endpoints reported in the five
minutes before `t` (a canary on one endpoint of four loses to the stable version). Answers are
cached per (model, minute), bounded; a lookup has one deadline and never raises.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections import OrderedDict

from inferwatch.kit.httpclient import FetchError, get_json

CACHE_SIZE = 4096
CACHE_SECONDS = 60  # lookups within the same minute of the same model share an answer


class VersionResolver:
    def __init__(self, prometheus_url: str | None, timeout: float):
        self.url = prometheus_url.rstrip("/") if prometheus_url else None
        self.timeout = timeout
        self._cache: OrderedDict[tuple[str, int], str | None] = OrderedDict()
        self._lock = threading.Lock()

    def resolve(self, model: str, at: float | None) -> tuple[str | None, str]:
        """(version or None, result): result is `resolved`, `unresolved`, `error` or `disabled`."""
        if self.url is None:
            return None, "disabled"
        now = time.time()
        at = min(at if at is not None else now, now)
        key = (model, int(at // CACHE_SECONDS))
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                version = self._cache[key]
                return version, "resolved" if version else "unresolved"
        try:
            version = self._query(model, at)
        except FetchError:
            return None, "error"
        with self._lock:
            self._cache[key] = version
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return version, "resolved" if version else "unresolved"

    def _query(self, model: str, at: float) -> str | None:
        label = json.dumps(model)  # a PromQL string literal: model names are validated, quoted anyway
        expr = f"count by (version) (last_over_time(inferwatch_model_version_info{{model_name={label}}}[5m]))"
        query = urllib.parse.urlencode({"query": expr, "time": f"{at:.3f}"})
        answer = get_json(f"{self.url}/api/v1/query?{query}", timeout=self.timeout)
        try:
            results = [(float(r["value"][1]), r["metric"].get("version")) for r in answer["data"]["result"]]
        except (KeyError, TypeError, ValueError, IndexError):
            raise FetchError("malformed", "Prometheus answered an unexpected shape") from None
        results = sorted(((n, v) for n, v in results if isinstance(v, str) and v), reverse=True)
        if not results or (len(results) > 1 and results[0][0] == results[1][0]):
            return None  # nothing seen, or a tie: better "unknown" than a guess
        return results[0][1]
