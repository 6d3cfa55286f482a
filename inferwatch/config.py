"""One YAML file, one section per component, validated against typed dataclasses.

Validation walks the YAML *node* tree (not the loaded dict) so every error can name the
file, the line and the dotted key. The first error wins: operators fix one thing at a time.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import math
import os
import types
import typing
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

ENV_VAR = "INFERWATCH_CONFIG"
T = typing.TypeVar("T")


class ConfigError(Exception):
    """A config problem located as `file:line: key: message`."""

    def __init__(self, file: str, line: int | None, key: str, message: str):
        self.file, self.line, self.key, self.message = file, line, key, message
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {key}: {message}" if key else f"{where}: {message}")


Problem = tuple[str, str] | None  # (key, message) from a section's check()
MAX_TIMEOUT_SECONDS = 300.0


def first_problem(*problems: Problem) -> Problem:
    return next((p for p in problems if p), None)


def check_port(key: str, value: int) -> Problem:
    return None if 0 <= value <= 65535 else (key, f"must be a port number between 0 and 65535; got {value}")


def check_seconds(key: str, value: float, most: float = MAX_TIMEOUT_SECONDS) -> Problem:
    """A duration that must be positive and finite (NaN and .inf included)."""
    if not (math.isfinite(value) and 0 < value <= most):
        return key, f"must be a number of seconds greater than 0 and at most {most:g}; got {value!r}"
    return None


def check_at_least(key: str, value: int, least: int) -> Problem:
    return None if value >= least else (key, f"must be at least {least}; got {value}")


def check_between(key: str, value: float, least: float, most: float) -> Problem:
    return None if least <= value <= most else (key, f"must be between {least:g} and {most:g}; got {value!r}")


def check_unique(key: str, names: Iterable[str], what: str) -> Problem:
    """Names that must be unique (endpoints, targets, scores, sources, actions); linear, whatever the count."""
    counts = collections.Counter(names)
    repeated = sorted(name for name, n in counts.items() if n > 1)
    if not repeated:
        return None
    shown = ", ".join(_clip(d).strip("'") for d in repeated[:10]) + (", ..." if len(repeated) > 10 else "")
    return key, f"{what} names must be unique; repeated: {shown}"


def check_http_url(key: str, value: str) -> Problem:
    """An http(s) URL with a host: what the probes can actually request."""
    try:
        parsed = urllib.parse.urlsplit(value)
        parsed.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        return key, f"not a valid URL ({exc}): {_clip(value)}"
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return key, f"must be an http:// or https:// URL with a host; got {_clip(value)}"
    return None


@dataclass
class GpuExporterConfig:
    listen_address: str = "0.0.0.0"
    port: int = 9835
    naming: Literal["inferwatch", "dcgm"] = "inferwatch"
    hostname: str | None = None
    nvml_timeout_seconds: float = 5.0
    xid_events: bool = True
    process_attribution: bool = True
    docker_socket: str = "/var/run/docker.sock"
    max_containers_per_gpu: int = 32
    proc_root: str = "/proc"
    simulate: str | None = None
    # Prometheus' web-config format: TLS and basic auth on /metrics (like --web.config.file).
    web_config_file: str | None = None

    def check(self) -> Problem:
        return first_problem(
            check_port("port", self.port),
            check_seconds("nvml_timeout_seconds", self.nvml_timeout_seconds),
            check_at_least("max_containers_per_gpu", self.max_containers_per_gpu, 1),
        )


@dataclass
class EndpointConfig:
    name: str
    base_url: str
    model: str
    role: Literal["primary", "backup"] = "primary"
    model_version: str | None = None
    model_dir: str | None = None
    auth_header_env: str | None = None
    # The node the engine runs on, as the GPU exporter's `hostname` label (default: the URL's host).
    hostname: str | None = None

    def check(self) -> Problem:
        return first_problem(
            None if self.name else ("name", "must not be empty"),
            None if self.model else ("model", "must not be empty"),
            check_http_url("base_url", self.base_url),
        )


@dataclass
class EngineExporterConfig:
    listen_address: str = "0.0.0.0"
    port: int = 9836
    # One deadline for all of an endpoint's probe requests; keep it under the scrape timeout.
    probe_timeout_seconds: float = 0.8
    endpoints: list[EndpointConfig] = field(default_factory=list)
    web_config_file: str | None = None  # TLS and basic auth on /metrics (Prometheus' web-config format)
    # Reported model roots are fingerprinted only under these directories (default: none; an
    # endpoint's own `model_dir` is always allowed). Anything else is reported as `served_root`.
    model_dirs_allowed: list[str] = field(default_factory=list)

    def check(self) -> Problem:
        repeated = check_unique("endpoints", (e.name for e in self.endpoints), "endpoint")
        if repeated:
            return repeated
        return first_problem(check_port("port", self.port),
                             check_seconds("probe_timeout_seconds", self.probe_timeout_seconds, most=60.0))


_TARGET_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-")


@dataclass
class ProbeTargetConfig:
    """A target the probe exporter probes on its own schedule (series on /metrics, labelled `target=name`)."""

    name: str
    url: str  # the endpoint's base URL (http://host:8000), as in `/probe?target=`
    module: str  # a module of the modules file
    interval_seconds: float = 60.0
    # A file holding the bearer token (or a whole Authorization value); re-read on every probe.
    token_file: str | None = None

    def check(self) -> Problem:
        if not (self.name and len(self.name) <= 64 and set(self.name) <= _TARGET_NAME_CHARS):
            return "name", f"must be 1 to 64 characters of a-z, A-Z, 0-9, _ . : and -; got {_clip(self.name)}"
        return first_problem(
            check_http_url("url", self.url),
            None if self.module else ("module", "must not be empty"),
            check_seconds("interval_seconds", self.interval_seconds, most=86400.0),
        )


@dataclass
class ProbeExporterConfig:
    listen_address: str = "0.0.0.0"
    port: int = 9837
    # The probe modules file (prompts, assertions, health checks): see examples/probe-modules.yaml.
    modules_file: str | None = None
    # /probe's deadline: X-Prometheus-Scrape-Timeout-Seconds minus this, at most the module's timeout.
    timeout_offset_seconds: float = 0.5
    # Probes running at once for /probe (beyond: HTTP 503), and separately for scheduled targets.
    max_concurrent_probes: int = 4
    targets: list[ProbeTargetConfig] = field(default_factory=list)
    # Free space of the disk holding the model cache (a local path), exported on /metrics.
    model_cache_path: str | None = None
    web_config_file: str | None = None  # TLS and basic auth (Prometheus' web-config format)

    def check(self) -> Problem:
        repeated = check_unique("targets", (t.name for t in self.targets), "target")
        if repeated:
            return repeated
        if not (math.isfinite(self.timeout_offset_seconds) and 0 <= self.timeout_offset_seconds <= 60):
            return "timeout_offset_seconds", f"must be between 0 and 60; got {self.timeout_offset_seconds!r}"
        if not 1 <= self.max_concurrent_probes <= 64:  # each is a thread
            return "max_concurrent_probes", f"must be between 1 and 64; got {self.max_concurrent_probes}"
        return check_port("port", self.port)


@dataclass
class FeedbackScoreConfig:
    """One score the application may post, with how its values map to polarity and series.

    boolean: true is positive, false negative (`negative_value: true` flips it, e.g. a "flagged"
    score). numeric: within [min, max]; below `negative_below` is negative, from `positive_from`
    on positive, neutral between; a histogram with `buckets`. categorical: one of `categories`
    (or, when none are listed, the first `max_categories` distinct values seen); `negative` lists
    the negative ones.
    """

    name: str
    type: Literal["boolean", "numeric", "categorical"] = "boolean"
    negative_value: bool = False
    min: float = 0.0
    max: float = 1.0
    negative_below: float | None = None
    positive_from: float | None = None
    buckets: list[float] = field(default_factory=list)  # default: each integer of a 2-10 integer range, else tenths
    categories: list[str] = field(default_factory=list)
    negative: list[str] = field(default_factory=list)
    max_categories: int = 16

    def check(self) -> Problem:
        if not (self.name and len(self.name) <= 64 and set(self.name) <= _TARGET_NAME_CHARS):
            return "name", f"must be 1 to 64 characters of a-z, A-Z, 0-9, _ . : and -; got {_clip(self.name)}"
        if self.type == "numeric":
            if not (math.isfinite(self.min) and math.isfinite(self.max) and self.min < self.max):
                return "max", f"min and max must be finite with min < max; got {self.min!r}, {self.max!r}"
            if any(not math.isfinite(b) for b in self.buckets) or self.buckets != sorted(set(self.buckets)):
                return "buckets", "must be finite numbers in increasing order, without repeats"
            if len(self.buckets) > 40:
                return "buckets", f"at most 40 buckets; got {len(self.buckets)}"
        for value in (*self.categories, *self.negative):
            if not (value and len(value) <= 64 and set(value) <= _TARGET_NAME_CHARS):
                return "categories", f"values must be 1 to 64 characters of a-z A-Z 0-9 _ . : -; got {_clip(value)}"
        unknown = sorted(set(self.negative) - set(self.categories)) if self.categories else []
        if unknown:
            return "negative", f"not among categories: {', '.join(unknown[:5])}"
        if self.categories and len(self.categories) > 64:
            return "categories", f"at most 64 categories; got {len(self.categories)}"
        return check_between("max_categories", self.max_categories, 1, 64)

    def histogram_buckets(self) -> list[float]:
        if self.buckets:
            return list(self.buckets)
        low, high = float(self.min), float(self.max)
        if low.is_integer() and high.is_integer() and 2 <= high - low <= 10:  # 1-5 stars, 0-10 NPS
            return [float(v) for v in range(int(low), int(high) + 1)]
        return [low + (high - low) * i / 10 for i in range(1, 11)]


def _default_scores() -> list[FeedbackScoreConfig]:
    return [
        FeedbackScoreConfig("thumbs"),
        FeedbackScoreConfig("rating", "numeric", min=1, max=5, negative_below=3, positive_from=4),
        FeedbackScoreConfig("quality", "numeric", min=0, max=1, negative_below=0.5, positive_from=0.8),
    ]


@dataclass
class FeedbackServerConfig:
    listen_address: str = "0.0.0.0"
    port: int = 9838
    scores: list[FeedbackScoreConfig] = field(default_factory=_default_scores)
    # A file holding the token clients must send as `Authorization: Bearer <token>` (default: none).
    bearer_token_file: str | None = None
    max_body_bytes: int = 1 << 20
    max_batch: int = 1000
    # Cardinality bounds: a batch naming a model beyond max_models is rejected; versions beyond
    # max_versions_per_model are counted as version="other".
    max_models: int = 64
    max_versions_per_model: int = 16
    # Where a missing model version is looked up: the engine exporter's inferwatch_model_version_info.
    prometheus_url: str | None = None
    version_lookup_timeout_seconds: float = 2.0
    # Negatively rated requests (ids, model, version, score, value, time; never text) for retraining.
    store_dir: str | None = None
    store_max_bytes: int = 64 << 20
    store_retention_days: float = 30.0
    web_config_file: str | None = None  # TLS and basic auth (Prometheus' web-config format)

    def check(self) -> Problem:
        repeated = check_unique("scores", (s.name for s in self.scores), "score")
        if repeated:
            return repeated
        if not 1024 <= self.max_body_bytes <= 64 << 20:
            return "max_body_bytes", f"must be between 1024 and {64 << 20}; got {self.max_body_bytes}"
        if not 1 <= self.store_retention_days <= 3650 or not math.isfinite(self.store_retention_days):
            return "store_retention_days", f"must be between 1 and 3650; got {self.store_retention_days!r}"
        return first_problem(
            check_port("port", self.port),
            check_between("max_batch", self.max_batch, 1, 100_000),
            check_between("max_models", self.max_models, 1, 1024),
            check_between("max_versions_per_model", self.max_versions_per_model, 1, 256),
            check_http_url("prometheus_url", self.prometheus_url) if self.prometheus_url else None,
            check_seconds("version_lookup_timeout_seconds", self.version_lookup_timeout_seconds, most=30.0),
            check_at_least("store_max_bytes", self.store_max_bytes, 1 << 16),
        )


@dataclass
class DriftThresholds:
    """Evidently's defaults: psi, jensenshannon and mmd drift at or above; ks when its p-value is at or below."""

    psi: float = 0.1
    jensenshannon: float = 0.1
    ks: float = 0.05
    mmd: float = 0.015

    def check(self) -> Problem:
        for name in ("psi", "jensenshannon", "ks", "mmd"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                return name, f"must be a finite number above 0; got {value!r}"
        return None


@dataclass
class DriftSamplesConfig:
    """`POST /v1/samples`: text (or precomputed features) reduced to fixed-size sketches per model."""

    # Sketches are kept per slot; the current window is the last window_seconds of slots, the
    # reference (unless one is pinned) the same window reference_offset_seconds ago (yesterday),
    # and a reference can be captured from any range still held (retention_seconds).
    slot_seconds: float = 600.0
    window_seconds: float = 3600.0
    reference_offset_seconds: float = 86400.0
    retention_seconds: float = 90000.0
    reservoir_size: int = 1000  # embedding vectors kept per slot, for the MMD test
    language: bool = False  # language id per sample (the `drift` extra's langid; ~1.5 ms a sample)
    max_models: int = 16
    max_body_bytes: int = 8 << 20
    max_batch: int = 5000

    def check(self) -> Problem:
        if self.window_seconds < self.slot_seconds:
            return "window_seconds", "must be at least slot_seconds"
        if self.retention_seconds < self.reference_offset_seconds + self.window_seconds:
            return "retention_seconds", "must be at least reference_offset_seconds + window_seconds"
        if self.retention_seconds / self.slot_seconds > 2016:
            return "retention_seconds", "at most 2016 slots (retention_seconds / slot_seconds) are kept per model"
        return first_problem(
            check_seconds("slot_seconds", self.slot_seconds, most=86400.0),
            check_seconds("window_seconds", self.window_seconds, most=7 * 86400.0),
            check_seconds("reference_offset_seconds", self.reference_offset_seconds, most=7 * 86400.0),
            check_seconds("retention_seconds", self.retention_seconds, most=31 * 86400.0),
            check_between("reservoir_size", self.reservoir_size, 50, 10_000),
            check_between("max_models", self.max_models, 1, 256),
            None if 1024 <= self.max_body_bytes <= 64 << 20 else ("max_body_bytes", "must be between 1024 and 64 MiB"),
            check_between("max_batch", self.max_batch, 1, 100_000),
        )


@dataclass
class DriftExporterConfig:
    listen_address: str = "0.0.0.0"
    port: int = 9839
    # Token-length drift: these histograms, per model, read from Prometheus' HTTP API.
    prometheus_url: str | None = None
    histograms: list[str] = field(default_factory=lambda: ["vllm:request_prompt_tokens",
                                                           "vllm:request_generation_tokens"])
    model_label: str = "model_name"
    selector: str = ""  # extra label matchers for every query, e.g. 'job="vllm"'
    models: list[str] = field(default_factory=list)  # default: every model the histograms carry
    max_models: int = 32
    interval_seconds: float = 60.0
    query_timeout_seconds: float = 10.0
    window_seconds: float = 3600.0  # the current window
    # The reference: the same window this long ago (a week: same hour, same weekday) unless a
    # reference is pinned for the model (`inferwatch drift reference pin`).
    reference_offset_seconds: float = 604800.0
    min_samples: int = 1000  # a window with fewer requests gets no score (too noisy to judge; docs/drift.md)
    references_dir: str | None = None
    thresholds: DriftThresholds = field(default_factory=DriftThresholds)
    samples: DriftSamplesConfig = field(default_factory=DriftSamplesConfig)
    bearer_token_file: str | None = None  # for POST /v1/samples and the reference API
    web_config_file: str | None = None

    def check(self) -> Problem:
        for name in self.histograms:
            if not (name and len(name) <= 200 and set(name) <= _METRIC_NAME_CHARS) or name[0].isdigit():
                return "histograms", f"must be metric names (without _bucket); got {_clip(name)}"
        if not (self.model_label and set(self.model_label) <= _LABEL_NAME_CHARS):
            return "model_label", f"must be a label name; got {_clip(self.model_label)}"
        return first_problem(
            check_port("port", self.port),
            check_http_url("prometheus_url", self.prometheus_url) if self.prometheus_url else None,
            check_between("max_models", self.max_models, 1, 1024),
            check_seconds("interval_seconds", self.interval_seconds, most=86400.0),
            check_seconds("query_timeout_seconds", self.query_timeout_seconds, most=120.0),
            check_seconds("window_seconds", self.window_seconds, most=31 * 86400.0),
            check_seconds("reference_offset_seconds", self.reference_offset_seconds, most=366 * 86400.0),
            check_at_least("min_samples", self.min_samples, 1),
        )


_METRIC_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_:")
_LABEL_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_LABEL_VALUE_CHARS = _LABEL_NAME_CHARS | frozenset("-.")
LOG_ENGINES = ("vllm", "sglang", "tgi")  # shipped rule sets (exporters/logs/rules/<engine>.yaml)
LOG_FORMATS = ("text", "json")


@dataclass
class VllmPluginConfig:
    """The vLLM stat-logger plugin; its SLO targets come from the `slo` section."""

    max_lora_adapters: int = 32

    def check(self) -> Problem:
        return check_at_least("max_lora_adapters", self.max_lora_adapters, 0)


# vLLM's histogram bucket bounds: an SLO latency threshold must be one of them, because the rules
# count good events as the bucket at that bound (reference: vllm-and-engines.md, buckets T and I).
VLLM_TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
                     20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
VLLM_ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
                    40.0, 80.0)


@dataclass
class SloTargets:
    """One model's service levels. SLOs are judged over 30 days; SLAs are hard p95 ceilings."""

    availability_target: float = 0.99  # share of requests that do not fail
    ttft_seconds: float = 1.0  # a request is "good" for TTFT under this (a vLLM bucket bound)
    ttft_target: float = 0.95  # share of requests that must be good for TTFT
    itl_seconds: float = 0.1  # inter-token latency (and the plugin's TPOT) threshold (a vLLM bucket bound)
    itl_target: float = 0.95
    ttft_sla_seconds: float = 2.0  # p95 TTFT is never allowed above this; crossing it is critical
    itl_sla_seconds: float = 0.2

    def check(self) -> Problem:
        for name in ("availability_target", "ttft_target", "itl_target"):
            if not 0 < getattr(self, name) < 1:
                return name, f"must be between 0 and 1 (exclusive); got {getattr(self, name)!r}"
        for name, buckets in (("ttft_seconds", VLLM_TTFT_BUCKETS), ("itl_seconds", VLLM_ITL_BUCKETS)):
            if getattr(self, name) not in buckets:
                allowed = ", ".join(f"{b:g}" for b in buckets)
                return name, f"must be one of vLLM's bucket bounds ({allowed}); got {getattr(self, name):g}"
        return first_problem(*(check_seconds(name, getattr(self, name), most=3600.0)
                               for name in ("ttft_sla_seconds", "itl_sla_seconds")))


@dataclass
class ModelSlo:
    """Per-model overrides of `slo.defaults`; unset keys inherit."""

    availability_target: float | None = None
    ttft_seconds: float | None = None
    ttft_target: float | None = None
    itl_seconds: float | None = None
    itl_target: float | None = None
    ttft_sla_seconds: float | None = None
    itl_sla_seconds: float | None = None

    def check(self) -> Problem:
        return SloTargets(**{**dataclasses.asdict(SloTargets()), **self.overrides()}).check()

    def overrides(self) -> dict[str, float]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass
class SloConfig:
    """The one place SLOs and SLAs are set: read by the vLLM plugin and `inferwatch rules render`."""

    defaults: SloTargets = field(default_factory=SloTargets)
    models: dict[str, ModelSlo] = field(default_factory=dict)  # keyed by vLLM's model_name

    def for_model(self, model_name: str) -> SloTargets:
        override = self.models.get(model_name)
        if override is None:
            return self.defaults
        return dataclasses.replace(self.defaults, **override.overrides())


@dataclass
class CostConfig:
    gpu_hour_price_usd: float = 2.5  # for cost per million tokens

    def check(self) -> Problem:
        if not (math.isfinite(self.gpu_hour_price_usd) and self.gpu_hour_price_usd >= 0):
            return "gpu_hour_price_usd", f"must be a finite number, 0 or more; got {self.gpu_hour_price_usd!r}"
        return None


@dataclass
class LogSourceConfig:
    """One engine log stream: a file (followed across rotation), a Docker container, or stdin."""

    name: str
    engine: str = "vllm"  # which shipped rule set applies: vllm, sglang, tgi
    file: str | None = None
    container: str | None = None  # a Docker container name (needs the docker extra and its socket)
    stdin: bool = False

    def check(self) -> Problem:
        if not (self.name and len(self.name) <= 64 and set(self.name) <= _LABEL_VALUE_CHARS):
            return "name", f"must be 1-64 characters of letters, digits, '-', '_' or '.'; got {_clip(self.name)}"
        if self.engine not in LOG_ENGINES:
            return "engine", f"must be one of {', '.join(LOG_ENGINES)}; got {_clip(self.engine)}"
        given = [k for k in ("file", "container") if getattr(self, k)] + (["stdin"] if self.stdin else [])
        if len(given) != 1:
            return "file", "exactly one of file, container or stdin: true must be set"
        return None


@dataclass
class LogExporterConfig:
    listen_address: str = "0.0.0.0"
    port: int = 9840
    sources: list[LogSourceConfig] = field(default_factory=list)
    rules_files: list[str] = field(default_factory=list)  # extra rule files, tried before the shipped rules
    max_templates_per_source: int = 200  # recurring-problem templates kept per source (bounded)
    max_line_bytes: int = 16384  # longer lines are cut here before anything looks at them
    docker_socket: str = "unix:///var/run/docker.sock"
    # The engine exporter's inferwatch_model_version_info, for "new error after a deploy".
    prometheus_url: str | None = None
    version_poll_seconds: float = 30.0
    web_config_file: str | None = None

    def check(self) -> Problem:
        repeated = check_unique("sources", (s.name for s in self.sources), "source")
        if repeated:
            return repeated
        if sum(s.stdin for s in self.sources) > 1:
            return "sources", "only one source can read stdin"
        return first_problem(
            check_port("port", self.port),
            check_between("max_templates_per_source", self.max_templates_per_source, 1, 10000),
            check_between("max_line_bytes", self.max_line_bytes, 256, 1 << 20),
            check_seconds("version_poll_seconds", self.version_poll_seconds, most=3600.0),
            check_http_url("prometheus_url", self.prometheus_url) if self.prometheus_url else None,
        )


@dataclass
class LoggingConfig:
    """inferwatch's own logs: `text` for people, `json` (Elastic Common Schema fields) for Filebeat/Splunk."""

    format: str = "text"

    def check(self) -> Problem:
        if self.format not in LOG_FORMATS:
            return "format", f"must be one of {', '.join(LOG_FORMATS)}; got {_clip(self.format)}"
        return None


_ACTION_NAME_CHARS = _LABEL_VALUE_CHARS
_KIND_KEYS = {
    "http": ("method", "url", "headers", "body", "bearer_token_file"),
    "command": ("argv",),
    "kubernetes": ("operation", "namespace", "deployment", "service", "selector", "kubectl", "context"),
}
_HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_VOLATILE_LABELS = ["instance", "pod", "pod_name", "container", "container_id", "uid"]


@dataclass
class RemediationActionConfig:
    """One allow-listed action: which alerts it serves, when, how often, and what it runs.

    Templates (url, headers, body, argv, the kubernetes names and selector values) may use only
    `{alertname}`, `{status}`, `{fingerprint}`, `{group_key}`, `{labels.<name>}`, `{annotations.<name>}`.
    """

    name: str
    kind: Literal["http", "command", "kubernetes"]
    alerts: list[str]  # the alertnames this action serves (required: nothing runs for an unlisted alert)
    matchers: dict[str, str] = field(default_factory=dict)  # label equality, all must hold
    # `when`, not `on`: YAML 1.1 reads a bare `on` key as the boolean true.
    when: Literal["firing", "resolved"] = "firing"
    undo: str | None = None  # an action (with when: resolved) run when the same alert resolves
    max_per_hour: int = 6
    cooldown_seconds: float = 300.0  # not again for the same alert labels (minus the ignored ones) within this
    cooldown_ignore_labels: list[str] = field(default_factory=lambda: list(_VOLATILE_LABELS))
    timeout_seconds: float = 30.0
    # Any kind: GET this URL (templated like `url`) just before running and run only on a 2xx, e.g. the
    # primary's /health before a failback: a resolution Alertmanager sends in error must not switch
    # traffic back to a dead engine. Otherwise the action is skipped (precondition_failed).
    precondition_url: str | None = None
    # kind http
    method: str = "POST"
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    bearer_token_file: str | None = None  # sent as Authorization: Bearer, never audited
    # kind command: run without a shell, minimal environment
    argv: list[str] = field(default_factory=list)
    # kind kubernetes: a kubectl argv, run like a command
    operation: Literal["rollout_undo", "switch_service"] | None = None
    namespace: str | None = None
    deployment: str | None = None
    service: str | None = None
    selector: dict[str, str] = field(default_factory=dict)
    kubectl: str = "kubectl"
    context: str | None = None

    def check(self) -> Problem:
        if not (self.name and len(self.name) <= 64 and set(self.name) <= _ACTION_NAME_CHARS):
            return "name", f"must be 1-64 characters of letters, digits, '-', '_' or '.'; got {_clip(self.name)}"
        if not self.alerts or not all(self.alerts):
            return "alerts", "must list at least one alertname (the allow-list of alerts this action serves)"
        defaults = RemediationActionConfig(self.name, self.kind, self.alerts)
        for kind, keys in _KIND_KEYS.items():
            for key in keys:
                if kind != self.kind and getattr(self, key) != getattr(defaults, key):
                    return key, f"is for kind {kind}, not {self.kind}"
        return first_problem(
            check_between("max_per_hour", self.max_per_hour, 1, 3600),
            check_between("cooldown_seconds", self.cooldown_seconds, 0, 7 * 86400),
            check_seconds("timeout_seconds", self.timeout_seconds, most=MAX_TIMEOUT_SECONDS),
            self._kind_problem(),
            check_http_url("precondition_url", _blank_template(self.precondition_url))
            if self.precondition_url is not None else None,
            *(_template_problem(key, value) for key, value in self.templates()),
        )

    def templates(self) -> list[tuple[str, str]]:
        """(key, template) of every templated value this action uses."""
        precondition = [("precondition_url", self.precondition_url)] if self.precondition_url is not None else []
        return precondition + self._kind_templates()

    def _kind_templates(self) -> list[tuple[str, str]]:
        if self.kind == "http":
            return [("url", self.url or ""), *((f"headers.{k}", v) for k, v in self.headers.items()),
                    *([("body", self.body)] if self.body is not None else [])]
        if self.kind == "command":
            return [(f"argv[{i}]", v) for i, v in enumerate(self.argv)]
        names = [(k, getattr(self, k)) for k in ("namespace", "deployment", "service") if getattr(self, k)]
        return [*names, *((f"selector.{k}", v) for k, v in self.selector.items())]

    def _kind_problem(self) -> Problem:
        if self.kind == "http":
            if not self.url:
                return "url", "required for kind http"
            if self.method not in _HTTP_METHODS:
                return "method", f"must be one of {', '.join(_HTTP_METHODS)}; got {_clip(self.method)}"
            return check_http_url("url", _blank_template(self.url))
        if self.kind == "command":
            return None if self.argv and self.argv[0] else ("argv", "required for kind command: the program first")
        if self.operation is None:
            return "operation", "required for kind kubernetes: rollout_undo or switch_service"
        if not self.namespace:
            return "namespace", "required for kind kubernetes"
        if not self.kubectl:
            return "kubectl", "must not be empty"
        if self.operation == "rollout_undo":
            if not self.deployment:
                return "deployment", "required for operation rollout_undo"
            return None if not (self.service or self.selector) else ("service", "is for operation switch_service")
        if not self.service:
            return "service", "required for operation switch_service"
        if not self.selector:
            return "selector", "required for operation switch_service: the labels of the pods to send traffic to"
        return None if self.deployment is None else ("deployment", "is for operation rollout_undo")


def _template_problem(key: str, template: str) -> Problem:
    from inferwatch.remediate.templates import unknown_placeholder

    unknown = unknown_placeholder(template)
    if unknown:
        return key, (f"unknown placeholder {_clip(unknown).strip(chr(39))} (allowed: {{alertname}}, {{status}}, "
                     "{fingerprint}, {group_key}, {labels.<name>}, {annotations.<name>})")
    return None


def _blank_template(template: str) -> str:
    from inferwatch.remediate.templates import blank

    return blank(template)


@dataclass
class RemediationConfig:
    """`inferwatch remediate`: Alertmanager's webhook in, allow-listed actions out (dry run by default)."""

    listen_address: str = "0.0.0.0"
    port: int = 9841
    # The token Alertmanager sends (`http_config.authorization.credentials_file`). None = no auth:
    # set it in production, or anyone who can reach the port can trigger the actions.
    bearer_token_file: str | None = None
    max_body_bytes: int = 1 << 20
    execute: bool = False  # false: actions are rendered, logged and audited as dry_run, never run
    audit_log: str | None = None  # JSON Lines, fsynced per record (None: audit records go to the log only)
    actions: list[RemediationActionConfig] = field(default_factory=list)
    web_config_file: str | None = None  # TLS and basic auth (Prometheus' web-config format)

    def check(self) -> Problem:
        repeated = check_unique("actions", (a.name for a in self.actions), "action")
        if repeated:
            return repeated
        if len(self.actions) > 256:
            return "actions", f"at most 256 actions; got {len(self.actions)}"
        by_name = {a.name: a for a in self.actions}
        for i, action in enumerate(self.actions):
            if action.undo is None:
                continue
            target = by_name.get(action.undo)
            if target is None:
                return f"actions[{i}].undo", f"names no configured action: {_clip(action.undo)}"
            if target is action or target.when != "resolved" or action.when != "firing":
                return f"actions[{i}].undo", (f"must be a firing action's undo naming another action with "
                                              f"when: resolved; {_clip(action.undo)} is not")
        return first_problem(
            check_port("port", self.port),
            check_between("max_body_bytes", self.max_body_bytes, 1024, 16 << 20),
        )


class MetadataText(str):
    """A value written as KEDA trigger metadata would be: any YAML scalar, kept as the text written
    (`headroom: 0.2` is "0.2", `enableTLS: true` is "true"), because the scaler parses the same keys
    from a ScaledObject's `metadata` map, where every value is a string."""


_POLICY_NAME_CHARS = _LABEL_VALUE_CHARS


@dataclass
class ScalerConfig:
    """`inferwatch scaler`: KEDA's external scaler (gRPC) predicting replicas from Prometheus; docs/scaler.md."""

    listen_address: str = "0.0.0.0"
    port: int = 9842  # gRPC: the ScaledObject's scalerAddress
    metrics_port: int = 9843  # the scaler's own /metrics (HTTP, through the kit)
    prometheus_url: str = "http://127.0.0.1:9090"
    query_timeout_seconds: float = 2.0  # one deadline for all queries of one KEDA call
    # TLS for the gRPC port (KEDA: enableTLS / caCert; mTLS when tls_client_ca_file is set: KEDA's
    # tlsClientCert / tlsClientKey from a TriggerAuthentication). Cert and key go together.
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_client_ca_file: str | None = None
    # Named policies a trigger picks with `policy: <name>`; its own metadata keys override them.
    # Keys and values as in trigger metadata (docs/scaler.md).
    policies: dict[str, dict[str, MetadataText]] = field(default_factory=dict)
    max_tracked_objects: int = 64  # ScaledObjects with their own series in /metrics; the rest are "other"
    stream_poll_seconds: float = 15.0  # StreamIsActive re-evaluates this often and pushes on a change
    # KEDA asks GetMetrics and IsActive back to back: a decision answers both for this long (0: never reused).
    decision_cache_seconds: float = 2.0
    max_workers: int = 8  # gRPC worker threads (each KEDA call holds one while it queries Prometheus)
    web_config_file: str | None = None  # TLS and basic auth of the metrics port (Prometheus' web-config format)

    def check(self) -> Problem:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            key = "tls_key_file" if self.tls_key_file is None else "tls_cert_file"
            return key, "tls_cert_file and tls_key_file go together"
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            return "tls_client_ca_file", "needs tls_cert_file and tls_key_file (mTLS is TLS with client certificates)"
        if len(self.policies) > 256:
            return "policies", f"at most 256 named policies; got {len(self.policies)}"
        for name, keys in self.policies.items():
            if not (name and len(name) <= 64 and set(name) <= _POLICY_NAME_CHARS):
                return f"policies.{name}", "policy names must be 1-64 letters, digits, '-', '_' or '.'"
            if "policy" in keys:
                return f"policies.{name}.policy", "a named policy cannot name another policy"
            if problem := _policy_problem(name, self.policies):
                return problem
        if self.port == self.metrics_port and self.port != 0:
            return "metrics_port", f"must differ from port (the gRPC port); both are {self.port}"
        return first_problem(
            check_port("port", self.port),
            check_port("metrics_port", self.metrics_port),
            check_http_url("prometheus_url", self.prometheus_url),
            check_seconds("query_timeout_seconds", self.query_timeout_seconds, most=60.0),
            check_between("max_tracked_objects", self.max_tracked_objects, 1, 10000),
            check_seconds("stream_poll_seconds", self.stream_poll_seconds, most=3600.0),
            check_between("max_workers", self.max_workers, 4, 256),
            check_between("decision_cache_seconds", self.decision_cache_seconds, 0, 60),
        )


@dataclass
class InferwatchConfig:
    gpu_exporter: GpuExporterConfig = field(default_factory=GpuExporterConfig)
    engine_exporter: EngineExporterConfig = field(default_factory=EngineExporterConfig)
    probe_exporter: ProbeExporterConfig = field(default_factory=ProbeExporterConfig)
    feedback_server: FeedbackServerConfig = field(default_factory=FeedbackServerConfig)
    drift_exporter: DriftExporterConfig = field(default_factory=DriftExporterConfig)
    log_exporter: LogExporterConfig = field(default_factory=LogExporterConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    remediation: RemediationConfig = field(default_factory=RemediationConfig)
    scaler: ScalerConfig = field(default_factory=ScalerConfig)
    vllm_plugin: VllmPluginConfig = field(default_factory=VllmPluginConfig)
    slo: SloConfig = field(default_factory=SloConfig)
    cost: CostConfig = field(default_factory=CostConfig)


MAX_CONFIG_BYTES = 1 << 20  # a config file is hand-written: anything larger is a mistake (or /dev/zero)
MAX_NODES = 100_000  # bounds alias expansion ("billion laughs") and absurd files
QUOTE_CHARS = 80  # an error quotes at most this much of the offending value


def load_config(path: str | os.PathLike | None = None) -> InferwatchConfig:
    """Load and validate the config at `path`, `$INFERWATCH_CONFIG`, or return defaults."""
    path = path or os.environ.get(ENV_VAR)
    if not path:
        return InferwatchConfig()
    return parse_config(read_config_text(path), str(path))


def load_section(path: str | os.PathLike, cls: type[T]) -> T:
    """Load a file that is one dataclass at its top level (e.g. a web-config file), same rules."""
    return parse_config(read_config_text(path), str(path), cls)


def read_config_text(path: str | os.PathLike) -> str:
    """The file as text: bounded in size, UTF-8 or a located error."""
    name = str(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(name, None, "", "file not found") from None
    except IsADirectoryError:
        raise ConfigError(name, None, "", "is a directory, not a file") from None
    except OSError as exc:
        raise ConfigError(name, None, "", f"cannot read file ({exc.strerror})") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(name, None, "", f"file is larger than {MAX_CONFIG_BYTES // 1024} KiB")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(name, line, "", f"not UTF-8 text (byte 0x{raw[exc.start]:02x})") from None


def parse_config(text: str, file: str = "<string>", cls: type[T] = InferwatchConfig) -> T:  # type: ignore[assignment]
    try:
        node = yaml.compose(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise ConfigError(file, line, "", f"invalid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:  # e.g. a control character the reader rejects
        raise ConfigError(file, None, "", f"invalid YAML: {_clip(str(exc))}") from None
    if node is None:
        return cls()
    return _Validator(file).build(cls, node, "")


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: same nodes and marks, 5x faster


@functools.cache
def _schema(cls: type) -> tuple[dict[str, dataclasses.Field], dict[str, Any]]:
    return {f.name: f for f in dataclasses.fields(cls)}, typing.get_type_hints(cls)


_TYPE_WORDS = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
               MetadataText: "a string, number or true/false"}
_CORE = "tag:yaml.org,2002:"
_PLAIN_TAGS = {_CORE + t for t in ("str", "int", "float", "bool", "null", "map", "seq")}


class _Validator:
    def __init__(self, file: str):
        self.file = file
        self._constructor = yaml.SafeLoader("")
        self._nodes = 0

    def error(self, node: yaml.Node, key: str, message: str) -> ConfigError:
        return ConfigError(self.file, node.start_mark.line + 1, key, message)

    def visit(self, node: yaml.Node, key: str) -> None:
        """Checks every node passes before it is interpreted: size, tags."""
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise self.error(node, key, f"too many values (more than {MAX_NODES})")
        if node.tag not in _PLAIN_TAGS:
            raise self.error(node, key or "(top level)", f"YAML tags are not supported (got {_clip(node.tag)})")

    def key_of(self, key_node: yaml.Node, parent: str) -> str:
        if key_node.tag == _CORE + "merge":
            raise self.error(key_node, parent or "(top level)", "YAML merge keys (<<) are not supported")
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _CORE + "str":
            what = _describe(key_node) if not isinstance(key_node, yaml.ScalarNode) else _clip(key_node.value)
            raise self.error(key_node, parent or "(top level)", f"keys must be plain strings, got {what}")
        return key_node.value

    def mapping(self, node: yaml.Node, key: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
        """(name, key node, value node) of a mapping, with duplicate keys rejected."""
        self.visit(node, key)
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, key or "(top level)", f"expected a mapping, got {_describe(node)}")
        seen: dict[str, int] = {}
        out = []
        for key_node, value_node in node.value:
            name = self.key_of(key_node, key)
            dotted = f"{key}.{name}" if key else name
            if name in seen:
                raise self.error(key_node, dotted, f"duplicate key (first given on line {seen[name]})")
            seen[name] = key_node.start_mark.line + 1
            out.append((name, key_node, value_node))
        return out

    def build(self, cls: type, node: yaml.Node, key: str) -> Any:
        fields, hints = _schema(cls)
        values: dict[str, Any] = {}
        value_nodes: dict[str, yaml.Node] = {}
        for name, key_node, value_node in self.mapping(node, key):
            dotted = f"{key}.{name}" if key else name
            if name not in fields:
                expected = ", ".join(fields)
                raise self.error(key_node, dotted, f"unknown key (expected one of: {expected})")
            values[name] = self.convert(hints[name], value_node, dotted)
            value_nodes[name] = value_node
        for f in fields.values():
            missing = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            if missing and f.name not in values:
                dotted = f"{key}.{f.name}" if key else f.name
                raise self.error(node, dotted, "required key is missing")
        built = cls(**values)
        problem = built.check() if hasattr(built, "check") else None
        if problem:
            field_name, message = problem
            head, *rest = field_name.split(".")
            where = _descend(value_nodes.get(head.split("[")[0], node), rest)
            raise self.error(where, f"{key}.{field_name}" if key else field_name, message)
        return built

    def convert(self, hint: Any, node: yaml.Node, key: str) -> Any:
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if origin in (typing.Union, types.UnionType):
            if _is_null(node) and type(None) in args:
                return None
            (inner,) = [a for a in args if a is not type(None)]
            return self.convert(inner, node, key)
        if dataclasses.is_dataclass(hint):
            return self.build(hint, node, key)
        self.visit(node, key)
        if origin in (list, dict) and _is_null(node):  # `models:` with every entry commented out
            return origin()
        if origin is list:
            if not isinstance(node, yaml.SequenceNode):
                raise self.error(node, key, f"expected a list, got {_describe(node)}")
            return [self.convert(args[0], item, f"{key}[{i}]") for i, item in enumerate(node.value)]
        if origin is dict:
            self._nodes -= 1  # counted again by mapping()
            return {name: self.convert(args[1], v, f"{key}.{name}") for name, _, v in self.mapping(node, key)}
        if not isinstance(node, yaml.ScalarNode):
            raise self.error(node, key, f"expected {_expected(hint)}, got {_describe(node)}")
        if node.tag == _CORE + "str" and hint is str:
            return node.value
        if hint is MetadataText:
            if _is_null(node):
                raise self.error(node, key, "expected a value (a string, number or true/false), got null")
            return MetadataText(node.value)
        try:
            value = self._constructor.construct_object(node)
        except (yaml.YAMLError, ValueError, OverflowError):
            raise self.error(node, key, f"expected {_expected(hint)}, got {_clip(node.value)}") from None
        if origin is Literal:
            if value not in args:
                allowed = ", ".join(str(a) for a in args)
                raise self.error(node, key, f"must be one of: {allowed}; got {_clip(value)}")
            return value
        if hint is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not isinstance(value, hint) or (hint is not bool and isinstance(value, bool)):
            raise self.error(node, key, f"expected {_expected(hint)}, got {_clip(value)}")
        return value


def _descend(node: yaml.Node, keys: list[str]) -> yaml.Node:
    """The node of a nested mapping key (`policies.chat.headroom` -> the `headroom:` line), as deep as it goes."""
    for depth, name in enumerate(keys, 1):
        if not isinstance(node, yaml.MappingNode):
            break
        found = next(((k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == name), None)
        if found is None:
            break
        node = found[0] if depth == len(keys) else found[1]
    return node


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == _CORE + "null"


def _expected(hint: Any) -> str:
    return _TYPE_WORDS.get(hint, getattr(hint, "__name__", str(hint)))


def _clip(value: Any) -> str:
    """repr() of a value, at most QUOTE_CHARS of it: a 10 MB mistake is not echoed whole."""
    if isinstance(value, str) and len(value) > QUOTE_CHARS:
        return f"{value[:QUOTE_CHARS]!r}... ({len(value)} characters)"
    return repr(value)


def _describe(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return _clip(node.value)


def _policy_problem(name: str, policies: dict[str, dict[str, MetadataText]]) -> Problem:
    """A named scaler policy parsed as a trigger naming it would be (with a placeholder model when the policy
    leaves the model to the trigger): a bad key fails at load, not at KEDA's first call."""
    from inferwatch.scaler.policy import PolicyError, parse_policy

    trigger = {"policy": name} if "model" in policies[name] else {"policy": name, "model": "any"}
    try:
        parse_policy(trigger, policies)
    except PolicyError as exc:
        return f"policies.{name}.{exc.key}", exc.message.removesuffix(f" in policy {name!r}")
    return None
