"""One probe: a module's model health checks, then its golden cases in order, all within one deadline.

`probe` never raises. Each case ends passed or failed for one reason from a closed set:

| reason | the case's request ... |
|---|---|
| `timeout` | did not finish in the time left (or was never started: the deadline had passed) |
| `http_error` | was answered with a non-2xx status |
| `bad_stream` | was answered with a stream that broke, held a non-JSON chunk, an error object, no `[DONE]` |
| `connection_error` | could not connect (refused, reset, DNS, TLS) |
| `model_mismatch` | was answered by another model than `module.model` (exact id), or refused: not listed |
| `assertion_failed` | was answered, and an assertion that could be judged failed |
| `error` | hit a bug in the probe's own code (also counted as the exporter's `errors_total`) |

An assertion that cannot be judged (`similar` without the embedder, a token bound without usage)
is reported as unavailable and does not fail its case. The answer text lives only in local
variables of `_run_case`: nothing here keeps, logs or returns it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from inferwatch.exporters.probe.assertions import Embedder, Result, evaluate
from inferwatch.exporters.probe.client import run_request
from inferwatch.exporters.probe.health import HealthResult, check_health
from inferwatch.exporters.probe.modules import Case, Module
from inferwatch.kit.labels import clean
from inferwatch.kit.selfmetrics import error_class

log = logging.getLogger(__name__)

REASONS = ("timeout", "http_error", "bad_stream", "connection_error", "model_mismatch", "assertion_failed", "error")
HEALTH_BUDGET_SECONDS = 3.0  # model list, /version and the tokenizer round trip: at most this much ...
HEALTH_SHARE = 0.25  # ... and at most this share of the deadline; the cases get the rest
MIN_CASE_SECONDS = 0.01  # a case with less time than this left is not started (reason timeout)
MAX_SERVED_MODELS = 4  # distinct served-model ids reported per probe (a router may spread cases)


@dataclass
class CaseResult:
    name: str
    reason: str | None = None  # None: passed; else one of REASONS
    started: bool = True
    assertions: list[Result] = field(default_factory=list)
    status_code: int | None = None
    served_model: str | None = None  # label-cleaned
    ttft_seconds: float | None = None
    tpot_seconds: float | None = None
    e2e_seconds: float | None = None  # set only when the request ran
    ok: bool = False  # the request itself succeeded (timings are for a complete answer)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    @property
    def passed(self) -> bool:
        return self.reason is None


@dataclass
class ProbeResult:
    module: str
    model_name: str  # the label: the module's model, else the cleaned served (or listed) model
    cases: list[CaseResult]
    duration_seconds: float
    health: HealthResult
    served_models: list[str] = field(default_factory=list)  # label-cleaned, at most MAX_SERVED_MODELS
    bugs: list[tuple[str, str]] = field(default_factory=list)  # (stage, error class): the exporter's errors

    @property
    def success(self) -> bool:
        return bool(self.cases) and all(case.passed for case in self.cases)

    @property
    def score(self) -> float:
        return sum(case.passed for case in self.cases) / len(self.cases) if self.cases else 0.0

    @property
    def reasons(self) -> set[str]:
        return {case.reason for case in self.cases if case.reason}


def probe(module_name: str, module: Module, base_url: str, deadline_seconds: float, embedder: Embedder | None,
          token: str | None = None) -> ProbeResult:
    """Run `module` against `base_url` within `deadline_seconds` (health checks first, then every case)."""
    started = time.perf_counter()
    end = started + max(0.0, deadline_seconds)
    bugs: list[tuple[str, str]] = []
    try:
        health = check_health(module, base_url, min(HEALTH_BUDGET_SECONDS, deadline_seconds * HEALTH_SHARE), token)
    except Exception as exc:  # a bug of ours: the cases still run
        log.exception("probe module %s: health checks failed", module_name)
        bugs.append(("health", error_class(exc)))
        health = HealthResult(model=module.model)
    cases: list[CaseResult] = []
    for case in module.cases:
        left = end - time.perf_counter()
        if left < MIN_CASE_SECONDS:
            cases.append(CaseResult(case.name, reason="timeout", started=False))
            continue
        try:
            cases.append(_run_case(module, case, base_url, health, left, embedder, token, bugs))
        except Exception as exc:
            log.exception("probe module %s case %s failed", module_name, case.name)
            bugs.append(("case", error_class(exc)))
            cases.append(CaseResult(case.name, reason="error"))
    served: list[str] = []
    for case in cases:
        if case.served_model is not None and case.served_model not in served and len(served) < MAX_SERVED_MODELS:
            served.append(case.served_model)
    model_name = module.model or (served[0] if served else clean(health.model))
    result = ProbeResult(module_name, clean(model_name), cases, time.perf_counter() - started, health, served, bugs)
    log.debug("probe module %s: success %s, score %.2f, reasons %s, %.3f s", module_name, result.success,
              result.score, sorted(result.reasons) or "-", result.duration_seconds)
    return result


def _run_case(module: Module, case: Case, base_url: str, health: HealthResult, left: float,
              embedder: Embedder | None, token: str | None, bugs: list[tuple[str, str]]) -> CaseResult:
    model = module.model or health.model
    if not model:  # nothing to ask for: /v1/models failed, or listed nothing
        return CaseResult(case.name, reason=health.list_failure or "model_mismatch", started=False)
    outcome = run_request(base_url, module.kind, model, case.prompt, module.system, module.params.request_params(),
                          left, token)
    if outcome.bug:
        bugs.append(("request", outcome.bug))
    result = CaseResult(
        case.name, status_code=outcome.status_code, ok=outcome.ok,
        served_model=clean(outcome.served_model) if outcome.served_model is not None else None,
        ttft_seconds=outcome.ttft_seconds, tpot_seconds=outcome.tpot_seconds, e2e_seconds=outcome.e2e_seconds,
        prompt_tokens=outcome.prompt_tokens, completion_tokens=outcome.completion_tokens)
    if not outcome.ok:
        refused_model = (outcome.failure == "http_error" and bool(module.model) and health.list_failure is None
                         and health.listed is False)
        result.reason = "model_mismatch" if refused_model else outcome.failure or "error"
        return result
    if module.model and outcome.served_model is not None and outcome.served_model != module.model:
        result.reason = "model_mismatch"  # the assertions are still judged and reported
    answer = outcome.text
    for assertion in case.assertions:
        try:
            judged = evaluate(assertion, answer, outcome.completion_tokens, embedder)
        except Exception as exc:  # the embedder (or a bug): this assertion cannot be judged
            log.warning("assertion %s of case %s could not be judged: %s", assertion.name, case.name,
                        type(exc).__name__)
            bugs.append(("assertion", error_class(exc)))
            judged = Result(assertion.name, assertion.type, None, reason="evaluation failed")
        result.assertions.append(judged)
    if result.reason is None and any(judged.passed is False for judged in result.assertions):
        result.reason = "assertion_failed"
    return result
