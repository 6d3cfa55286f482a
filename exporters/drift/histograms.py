"""Token-length distributions per model, read from histograms Prometheus already has.

One query per histogram and window, every model at once:
    sum by (<model label>, le) (increase(<histogram>_bucket{<selector>}[<window>]))
evaluated at the window's end. So the drift job works for any engine whose length histograms
are scraped (vLLM's `vllm:request_prompt_tokens`, SGLang's, TGI's), with no access to requests.
"""

from __future__ import annotations

import json
import math
import urllib.parse
from dataclasses import dataclass

from inferwatch.exporters.drift.stats import buckets_from_cumulative
from inferwatch.kit.httpclient import FetchError, get_json


@dataclass(frozen=True)
class Distribution:
    """A histogram's requests in one window: upper bounds (the last is +Inf) and per-bucket counts."""

    bounds: tuple[float, ...]
    counts: tuple[float, ...]

    @property
    def total(self) -> float:
        return sum(self.counts)

    def to_json(self) -> dict:
        return {"bounds": [b if math.isfinite(b) else "+Inf" for b in self.bounds], "counts": list(self.counts)}

    def rebin(self, bounds: tuple[float, ...]) -> Distribution:
        """The counts summed into coarser `bounds` (a subset of ours, ending with +Inf)."""
        counts = [0.0] * len(bounds)
        target = 0
        for bound, count in zip(self.bounds, self.counts, strict=True):
            while bounds[target] < bound:
                target += 1
            counts[target] += count
        return Distribution(bounds, tuple(counts))

    @classmethod
    def from_json(cls, data: object, key: str) -> Distribution:
        if not isinstance(data, dict) or set(data) != {"bounds", "counts"}:
            raise ValueError(f"{key}: must be an object with bounds and counts")
        bounds, counts = data["bounds"], data["counts"]
        if not isinstance(bounds, list) or not isinstance(counts, list) or len(bounds) != len(counts) or not bounds:
            raise ValueError(f"{key}: bounds and counts must be lists of the same, non-zero length")
        try:
            parsed = tuple(math.inf if b == "+Inf" else float(b) for b in bounds)
        except (TypeError, ValueError):
            raise ValueError(f'{key}.bounds: must be numbers (the last may be "+Inf")') from None
        if list(parsed) != sorted(set(parsed)) or parsed[-1] != math.inf:
            raise ValueError(f"{key}.bounds: must increase and end with +Inf")
        if not all(
            isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c) and c >= 0 for c in counts
        ):
            raise ValueError(f"{key}.counts: must be finite numbers, 0 or more")
        return cls(parsed, tuple(float(c) for c in counts))


def aligned(a: Distribution, b: Distribution) -> tuple[Distribution, Distribution]:
    """Both on the bounds they share: a bucket layout changed between the windows still compares."""
    if a.bounds == b.bounds:
        return a, b
    common = tuple(sorted(set(a.bounds) & set(b.bounds)))
    return a.rebin(common), b.rebin(common)


def feature_name(histogram: str) -> str:
    """`vllm:request_prompt_tokens` -> `prompt_tokens`: the engine's prefix and `request_` dropped."""
    name = histogram.rsplit(":", 1)[-1]
    return name.removeprefix("request_")


class HistogramSource:
    def __init__(self, prometheus_url: str, model_label: str, selector: str, timeout: float, max_models: int):
        self.url = prometheus_url.rstrip("/")
        self.model_label, self.selector, self.timeout, self.max_models = model_label, selector, timeout, max_models

    def expression(self, histogram: str, window_seconds: float, models: list[str] | None = None) -> str:
        matchers = [m for m in (self.selector.strip(),) if m]
        if models:
            matchers.append(f"{self.model_label}=~{json.dumps('|'.join(_regex_escape(m) for m in models))}")
        selector = "{" + ",".join(matchers) + "}" if matchers else ""
        return f"sum by ({self.model_label}, le) (increase({histogram}_bucket{selector}[{int(window_seconds)}s]))"

    def distributions(
        self, histogram: str, window_seconds: float, at: float, models: list[str] | None = None
    ) -> dict[str, Distribution]:
        """{model: distribution} of the window ending at `at`; FetchError when Prometheus fails.
        Models beyond `max_models` (by name order) are left out."""
        query = urllib.parse.urlencode(
            {"query": self.expression(histogram, window_seconds, models), "time": f"{at:.3f}"}
        )
        answer = get_json(f"{self.url}/api/v1/query?{query}", timeout=self.timeout)
        if not isinstance(answer, dict) or answer.get("status") != "success":
            raise FetchError(
                "query",
                f"Prometheus refused the query: {str(answer.get('error', ''))[:200]}"
                if isinstance(answer, dict)
                else "Prometheus answered an unexpected shape",
            )
        per_model: dict[str, list[tuple[float, float]]] = {}
        try:
            for row in answer["data"]["result"]:
                model = row["metric"].get(self.model_label)
                le = row["metric"].get("le")
                value = float(row["value"][1])
                if not model or le is None:
                    continue
                per_model.setdefault(model, []).append((math.inf if le == "+Inf" else float(le), value))
        except (KeyError, TypeError, ValueError, IndexError):
            raise FetchError("malformed", "Prometheus answered an unexpected shape") from None
        out = {}
        for model in sorted(per_model)[: self.max_models]:
            pairs = sorted(p for p in per_model[model] if not math.isnan(p[1]))
            if not pairs or pairs[-1][0] != math.inf:
                continue
            bounds = [p[0] for p in pairs]
            out[model] = Distribution(tuple(bounds), tuple(buckets_from_cumulative(bounds, [p[1] for p in pairs])))
        return out


def _regex_escape(text: str) -> str:
    """RE2 metacharacters escaped (Python's re.escape escapes more than RE2 accepts, e.g. `\\-` is fine, `\\ ` not)."""
    return "".join("\\" + ch if ch in r".^$*+?()[]{}|\\" else ch for ch in text)
