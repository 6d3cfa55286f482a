"""`inferwatch probe-exporter`'s HTTP side: /metrics through the kit, and blackbox_exporter's `/probe`.

    GET /probe?target=<http(s)://host:port or host:port>&module=<name>[&debug=true]

runs one probe and answers only its `inferwatch_probe_*` series (HTTP 200 whatever the probe's
outcome; `debug=true` puts a plain-text account of the run, never prompt or answer text, above
them). A missing or bad parameter is HTTP 400 with one line; a full probe pool is 503. The
deadline is the module's `timeout_seconds`, lowered to Prometheus' scrape timeout (the
`X-Prometheus-Scrape-Timeout-Seconds` header) minus `timeout_offset_seconds`, never below
`MIN_DEADLINE_SECONDS`.
"""

from __future__ import annotations

import logging
import math
import urllib.parse
from collections.abc import Callable
from typing import Any

from prometheus_client.exposition import choose_encoder

from inferwatch.config import ProbeExporterConfig, check_http_url
from inferwatch.exporters.probe.collector import AUTO, Busy, ProbeCollector, signals_blocked
from inferwatch.exporters.probe.metrics import Families, render_probe
from inferwatch.exporters.probe.modules import Module, Modules
from inferwatch.exporters.probe.prober import ProbeResult
from inferwatch.kit.exporter import Exporter, serve
from inferwatch.kit.web import load_web_config

log = logging.getLogger(__name__)

MIN_DEADLINE_SECONDS = 0.1
MAX_PARAM_CHARS = 2048
TEXT = "text/plain; charset=utf-8"


class BadRequest(Exception):
    """A /probe request we cannot run: HTTP 400 with this one-line message."""


def start(config: ProbeExporterConfig, modules: Modules, embedder: Any = AUTO) -> Exporter:
    """Start serving /metrics and /probe in background threads; the caller owns the returned handle."""
    web = load_web_config(config.web_config_file)  # before anything starts: a bad file is a config error
    collector = ProbeCollector(config, modules, embedder=embedder)
    handle: list[Exporter] = []
    try:
        with signals_blocked():  # the HTTP threads too: SIGHUP and SIGTERM must reach the main thread
            exporter = serve(collector, config.listen_address, config.port, web,
                             routes={"/probe": probe_route(lambda: handle[0].collector if handle else collector)})
    except BaseException:
        collector.close()
        raise
    handle.append(exporter)
    log.info("probe exporter on %s: %d module(s), %d scheduled target(s)", exporter.url, len(modules.modules),
             len(config.targets))
    return exporter


def probe_route(current: Callable[[], ProbeCollector]) -> Callable[[Any], tuple[int, str, bytes]]:
    """The /probe handler, always on the collector serving now (a reload replaces it)."""

    def route(handler: Any) -> tuple[int, str, bytes]:
        collector = current()
        try:
            module_name, module, target, debug = parse_request(handler.path, collector.modules)
        except BadRequest as exc:
            return 400, TEXT, f"{exc}\n".encode()
        deadline = deadline_for(module, handler.headers.get("X-Prometheus-Scrape-Timeout-Seconds"),
                                collector.config.timeout_offset_seconds)
        try:
            result = collector.probe_now(module_name, target, deadline)
        except Busy:
            return 503, TEXT, (f"too many probes running (max_concurrent_probes: "
                               f"{collector.config.max_concurrent_probes})\n").encode()
        families = Families(render_probe(result))
        if debug:
            from prometheus_client.exposition import generate_latest

            text = debug_text(result, target, deadline) + "\nMetrics that would have been returned:\n"
            return 200, TEXT, text.encode() + generate_latest(families)  # type: ignore[arg-type]
        encoder, content_type = choose_encoder(handler.headers.get("Accept", ""))
        return 200, content_type, encoder(families)

    return route


def parse_request(path: str, modules: Modules) -> tuple[str, Module, str, bool]:
    """(module name, module, target base URL, debug) of a /probe request line, or BadRequest."""
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query, keep_blank_values=True)
    module_name = (query.get("module") or [""])[0]
    module, target = check_params(module_name, (query.get("target") or [""])[0], modules)
    debug = (query.get("debug") or ["false"])[0].lower() in ("true", "1", "yes")
    return module_name, module, target, debug


def check_params(module_name: str, target: str, modules: Modules) -> tuple[Module, str]:
    """(module, target base URL) of a probe request, or BadRequest. A bare host:port gets http://."""
    if not module_name:
        raise BadRequest("module parameter is missing")
    module = modules.modules.get(module_name)
    if module is None:
        raise BadRequest(f"unknown module {module_name[:64]!r}")
    target = target.strip()
    if not target:
        raise BadRequest("target parameter is missing")
    if len(target) > MAX_PARAM_CHARS:
        raise BadRequest(f"target is longer than {MAX_PARAM_CHARS} characters")
    if "://" not in target:  # host:port, as Prometheus relabels __address__ into __param_target
        target = "http://" + target
    if check_http_url("target", target) is not None or any(ch.isspace() or ord(ch) < 32 for ch in target):
        raise BadRequest("target must be an http(s) URL with a host, or host:port")
    return module, target


def deadline_for(module: Module, scrape_timeout: str | None, offset: float) -> float:
    """The module's timeout, lowered to the scrape timeout minus the offset; never below the floor."""
    deadline = module.timeout_seconds
    if scrape_timeout:
        try:
            seconds = float(scrape_timeout)
        except ValueError:
            seconds = math.nan
        if math.isfinite(seconds) and seconds > 0:
            deadline = min(deadline, seconds - offset)
    return max(deadline, MIN_DEADLINE_SECONDS)


def debug_text(result: ProbeResult, target: str, deadline: float) -> str:
    """What happened, for a human: names, verdicts, reasons and timings only (never prompt or answer text)."""
    host = urllib.parse.urlsplit(target).netloc.rpartition("@")[2]
    health = result.health
    lines = [f"Probing module {result.module} against {host} (deadline {deadline:.3f} s)",
             f"Model: {result.model_name or '-'}; listed: {_word(health.listed)}"
             + (f" (models list failed: {health.list_failure})" if health.list_failure else "")
             + f"; max context: {health.max_context_tokens if health.max_context_tokens is not None else '-'}"
             + f"; context matches: {_word(health.context_matches)}; tokenizer round trip: "
             + f"{_word(health.tokenizer_passed)}; engine version: {health.engine_version or '-'}"]
    for case in result.cases:
        verdict = "passed" if case.passed else f"failed ({case.reason})"
        if not case.started:
            verdict += ", not started"
        timing = ", ".join(f"{name} {value:.4f} s" for name, value in (
            ("ttft", case.ttft_seconds), ("tpot", case.tpot_seconds), ("e2e", case.e2e_seconds)) if value is not None)
        lines.append(f"Case {case.name}: {verdict}; HTTP {case.status_code or '-'}; served model "
                     f"{case.served_model or '-'}; tokens {case.prompt_tokens}/{case.completion_tokens}"
                     + (f"; {timing}" if timing else ""))
        for judged in case.assertions:
            state = "unavailable" if judged.passed is None else ("passed" if judged.passed else "failed")
            detail = f" ({judged.reason})" if judged.reason else ""
            score = f", score {judged.score:.3f}" if judged.score is not None else ""
            lines.append(f"  assertion {judged.name} ({judged.type}): {state}{detail}{score}")
    lines.append(f"Probe {'succeeded' if result.success else 'failed'}: {sum(c.passed for c in result.cases)}/"
                 f"{len(result.cases)} cases passed in {result.duration_seconds:.3f} s"
                 + (f"; exporter errors: {result.bugs}" if result.bugs else ""))
    return "\n".join(lines) + "\n"


def _word(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "no")
