"""The probe exporter's families: one table for a probe's own series, the same with `target` for
scheduled targets, and client-side latency histograms.

Labels are bounded: `module`, `case` and `assertion` are names from the modules file (validated
patterns, at most 40 cases a module); `reason` is the prober's closed set; `model_name` is the
module's configured model, else the served model id (cleaned, one per probe); `served_model` at
most 4 per probe; `target` only the NAME of a configured target, never a URL from a query string.
Nothing from a prompt or an answer is ever a label or a value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client.core import HistogramMetricFamily
from prometheus_client.metrics_core import Metric

from inferwatch.exporters.probe.prober import REASONS, ProbeResult
from inferwatch.kit.families import Family, FamilyTable, Sample

PREFIX = "inferwatch_probe_"
_M = ("module", "model_name")
_C = ("module", "case", "model_name")
_A = ("module", "case", "assertion", "type", "model_name")

PROBE_FAMILIES = [
    Family("success", "gauge", "1 if every case of the module passed.", _M),
    Family("duration_seconds", "gauge", "Wall time of the whole probe (health checks and every case).", _M),
    Family("failed", "gauge", "1 for each reason a case of this probe failed for, 0 for the others.",
           (*_M, "reason")),
    Family("module_score_ratio", "gauge", "Share of the module's cases that passed.", _M),
    Family("case_success", "gauge", "1 if the case passed: answered by the right model, no assertion failed.", _C),
    Family("case_failed", "gauge", "1 for the reason the case failed for, 0 for the others.", (*_C, "reason")),
    Family("case_http_status_code", "gauge", "HTTP status of the case's request.", _C),
    Family("case_time_to_first_token_seconds", "gauge",
           "Client-side time from sending the request to the first streamed output.", _C),
    Family("case_time_per_output_token_seconds", "gauge",
           "(last output chunk - first output chunk) / (completion tokens - 1), tokens from the usage chunk.", _C),
    Family("case_e2e_request_latency_seconds", "gauge",
           "Client-side time from sending the request to [DONE]; only for a complete answer.", _C),
    Family("case_prompt_tokens", "gauge", "Prompt tokens the endpoint reported for the case.", _C),
    Family("case_completion_tokens", "gauge", "Completion tokens the endpoint reported for the case.", _C),
    Family("assertion_success", "gauge", "1 if the assertion passed; only assertions that could be judged.", _A),
    Family("assertion_available", "gauge",
           "1 if the assertion could be judged, 0 if not (no embedder, no token count): then it fails nothing.", _A),
    Family("assertion_similarity_score", "gauge", "Cosine similarity of the answer to a `similar` reference.", _A),
    Family("served_model_info", "gauge", "Model ids the endpoint answered the cases with (value 1).",
           (*_M, "served_model")),
    Family("model_listed", "gauge", "1 if /v1/models lists the module's model (its first model if none is set).",
           _M),
    Family("model_max_context_tokens", "gauge", "The model's max_model_len reported by /v1/models.", _M),
    Family("model_context_matches", "gauge",
           "1 if the reported max_model_len equals the module's health.max_model_len.", _M),
    Family("tokenizer_roundtrip_success", "gauge",
           "1 if health.tokenizer_text survives POST /tokenize then /detokenize; absent if the engine has none.",
           _M),
    Family("engine_info", "gauge", "Serving engine version from GET /version (value 1).", ("engine_version",)),
]

PROBE_TABLE = FamilyTable(PREFIX, PROBE_FAMILIES)  # GET /probe: the probe's series and nothing else

_T = ("target", "module", "model_name")
TARGET_TABLE = FamilyTable(PREFIX, [
    *(Family(f.name, f.kind, f.help, ("target", *f.labels)) for f in PROBE_FAMILIES),
    Family("last_run_timestamp_seconds", "gauge", "When the target's latest scheduled probe finished.",
           ("target", "module")),
    Family("runs", "counter", "Scheduled probes run.", _T),
    Family("case_failures", "counter", "Failed cases of scheduled probes, by reason.", (*_T, "reason")),
    Family("model_cache_free_bytes", "gauge", "Free bytes of the filesystem holding the model cache.", ("path",)),
    Family("exporter_modules", "gauge", "Probe modules loaded from the modules file."),
    Family("exporter_probes_in_flight", "gauge", "Probes running now (GET /probe and scheduled)."),
    Family("exporter_probes_rejected", "counter",
           "GET /probe requests answered 503: the concurrent-probe cap was full."),
    Family("exporter_scheduled_skipped", "counter",
           "Scheduled runs not started because the target's previous probe was still running.", ("target",)),
])

TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 30.0, 60.0)
E2E_BUCKETS = TTFT_BUCKETS
TPOT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0)
MAX_MODELS_PER_TARGET = 4  # distinct model_name values a target's counters and histograms keep; then "other"


@dataclass(frozen=True)
class HistogramSpec:
    name: str  # short name, exposed under PREFIX
    help: str
    buckets: tuple[float, ...]
    case_field: str  # the CaseResult attribute observed


HISTOGRAMS = (
    HistogramSpec("client_time_to_first_token_seconds", "Scheduled probes' client-side time to first token.",
                  TTFT_BUCKETS, "ttft_seconds"),
    HistogramSpec("client_time_per_output_token_seconds", "Scheduled probes' client-side time per output token.",
                  TPOT_BUCKETS, "tpot_seconds"),
    HistogramSpec("client_e2e_request_latency_seconds", "Scheduled probes' client-side request latency.",
                  E2E_BUCKETS, "e2e_seconds"),
)


class Histogram:
    """Cumulative buckets per label key (target, module, model_name); the caller bounds the keys."""

    def __init__(self, spec: HistogramSpec):
        self.spec = spec
        self.series: dict[tuple[str, str, str], list[float]] = {}  # key -> [count per bucket..., +Inf, sum]

    def observe(self, key: tuple[str, str, str], value: float) -> None:
        if not math.isfinite(value) or value < 0:
            return
        counts = self.series.setdefault(key, [0.0] * (len(self.spec.buckets) + 2))
        for i, bound in enumerate(self.spec.buckets):
            if value <= bound:
                counts[i] += 1
        counts[-2] += 1
        counts[-1] += value

    def describe(self) -> Metric:
        return HistogramMetricFamily(PREFIX + self.spec.name, self.spec.help, labels=list(_T))

    def render(self) -> Metric:
        family = HistogramMetricFamily(PREFIX + self.spec.name, self.spec.help, labels=list(_T))
        for key, counts in sorted(self.series.items()):
            buckets = [(_le(bound), counts[i]) for i, bound in enumerate(self.spec.buckets)]
            family.add_metric(list(key), [*buckets, ("+Inf", counts[-2])], counts[-1])
        return family


def _le(bound: float) -> str:
    return repr(float(bound))


def probe_samples(result: ProbeResult, target: str | None = None) -> list[Sample]:
    """The series of one probe: for GET /probe (`target` None), or labelled with a scheduled target's name."""
    extra = {} if target is None else {"target": target}
    m = {**extra, "module": result.module, "model_name": result.model_name}
    out = [
        Sample("success", m, float(result.success)),
        Sample("duration_seconds", m, result.duration_seconds),
        *(Sample("failed", {**m, "reason": r}, float(r in result.reasons)) for r in REASONS),
        Sample("module_score_ratio", m, result.score),
    ]
    for case in result.cases:
        c = {**extra, "module": result.module, "case": case.name, "model_name": result.model_name}
        out.append(Sample("case_success", c, float(case.passed)))
        out += [Sample("case_failed", {**c, "reason": r}, float(case.reason == r)) for r in REASONS]
        measured = (("case_http_status_code", case.status_code),
                    ("case_time_to_first_token_seconds", case.ttft_seconds),
                    ("case_time_per_output_token_seconds", case.tpot_seconds),
                    ("case_e2e_request_latency_seconds", case.e2e_seconds if case.ok else None),
                    ("case_prompt_tokens", case.prompt_tokens),
                    ("case_completion_tokens", case.completion_tokens))
        out += [Sample(name, c, float(value)) for name, value in measured if value is not None]
        for judged in case.assertions:
            a = {**extra, "module": result.module, "case": case.name, "assertion": judged.name, "type": judged.type,
                 "model_name": result.model_name}
            out.append(Sample("assertion_available", a, float(judged.passed is not None)))
            if judged.passed is not None:
                out.append(Sample("assertion_success", a, float(judged.passed)))
            if judged.score is not None and math.isfinite(judged.score):
                out.append(Sample("assertion_similarity_score", a, judged.score))
    out += [Sample("served_model_info", {**m, "served_model": served}, 1.0) for served in result.served_models]
    health = result.health
    checks = (("model_listed", health.listed), ("model_max_context_tokens", health.max_context_tokens),
              ("model_context_matches", health.context_matches),
              ("tokenizer_roundtrip_success", health.tokenizer_passed))
    out += [Sample(name, m, float(value)) for name, value in checks if value is not None]
    if health.engine_version:
        out.append(Sample("engine_info", {**extra, "engine_version": health.engine_version}, 1.0))
    return out


def render_probe(result: ProbeResult) -> list[Metric]:
    return PROBE_TABLE.render(probe_samples(result))


class Families:
    """A ready set of families: what `prometheus_client`'s encoders call `collect()` on."""

    def __init__(self, families: Iterable[Metric]):
        self.families = list(families)

    def collect(self) -> list[Metric]:
        return self.families
