"""One YAML file, one section per component, validated against typed dataclasses.

Validation walks the YAML *node* tree (not the loaded dict) so every error can name the
file, the line and the dotted key. The first error wins: operators fix one thing at a time.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

ENV_VAR = "INFERWATCH_CONFIG"


class ConfigError(Exception):
    """A config problem located as `file:line: key: message`."""

    def __init__(self, file: str, line: int | None, key: str, message: str):
        self.file, self.line, self.key, self.message = file, line, key, message
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {key}: {message}" if key else f"{where}: {message}")


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


@dataclass
class EngineExporterConfig:
    listen_address: str = "0.0.0.0"
    port: int = 9836
    # One deadline for all of an endpoint's probe requests; keep it under the scrape timeout.
    probe_timeout_seconds: float = 0.8
    endpoints: list[EndpointConfig] = field(default_factory=list)

    def check(self) -> tuple[str, str] | None:
        names = [e.name for e in self.endpoints]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            return "endpoints", f"endpoint names must be unique; repeated: {', '.join(duplicates)}"
        if self.probe_timeout_seconds <= 0:
            return "probe_timeout_seconds", "must be greater than 0"
        return None


@dataclass
class VllmPluginConfig:
    """The vLLM stat-logger plugin; its SLO targets come from the `slo` section."""

    max_lora_adapters: int = 32


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

    def check(self) -> tuple[str, str] | None:
        for name in ("availability_target", "ttft_target", "itl_target"):
            if not 0 < getattr(self, name) < 1:
                return name, "must be between 0 and 1 (exclusive)"
        for name, buckets in (("ttft_seconds", VLLM_TTFT_BUCKETS), ("itl_seconds", VLLM_ITL_BUCKETS)):
            if getattr(self, name) not in buckets:
                allowed = ", ".join(f"{b:g}" for b in buckets)
                return name, f"must be one of vLLM's bucket bounds ({allowed}); got {getattr(self, name):g}"
        for name in ("ttft_sla_seconds", "itl_sla_seconds"):
            if getattr(self, name) <= 0:
                return name, "must be greater than 0"
        return None


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

    def check(self) -> tuple[str, str] | None:
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

    def check(self) -> tuple[str, str] | None:
        return ("gpu_hour_price_usd", "must not be negative") if self.gpu_hour_price_usd < 0 else None


@dataclass
class InferwatchConfig:
    gpu_exporter: GpuExporterConfig = field(default_factory=GpuExporterConfig)
    engine_exporter: EngineExporterConfig = field(default_factory=EngineExporterConfig)
    vllm_plugin: VllmPluginConfig = field(default_factory=VllmPluginConfig)
    slo: SloConfig = field(default_factory=SloConfig)
    cost: CostConfig = field(default_factory=CostConfig)


def load_config(path: str | os.PathLike | None = None) -> InferwatchConfig:
    """Load and validate the config at `path`, `$INFERWATCH_CONFIG`, or return defaults."""
    path = path or os.environ.get(ENV_VAR)
    if not path:
        return InferwatchConfig()
    name = str(path)
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise ConfigError(name, None, "", "file not found") from None
    except OSError as exc:
        raise ConfigError(name, None, "", f"cannot read file ({exc.strerror})") from None
    return parse_config(text, name)


def parse_config(text: str, file: str = "<string>") -> InferwatchConfig:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise ConfigError(file, line, "", f"invalid YAML: {exc.problem}") from None
    if node is None:
        return InferwatchConfig()
    return _Validator(file).build(InferwatchConfig, node, "")


_TYPE_WORDS = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


class _Validator:
    def __init__(self, file: str):
        self.file = file
        self._constructor = yaml.SafeLoader("")

    def error(self, node: yaml.Node, key: str, message: str) -> ConfigError:
        return ConfigError(self.file, node.start_mark.line + 1, key, message)

    def build(self, cls: type, node: yaml.Node, key: str) -> Any:
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, key or "(top level)", f"expected a mapping, got {_describe(node)}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        for key_node, value_node in node.value:
            name = self._constructor.construct_object(key_node)
            dotted = f"{key}.{name}" if key else str(name)
            if name not in fields:
                expected = ", ".join(fields)
                raise self.error(key_node, dotted, f"unknown key (expected one of: {expected})")
            values[name] = self.convert(hints[name], value_node, dotted)
        for f in fields.values():
            missing = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            if missing and f.name not in values:
                dotted = f"{key}.{f.name}" if key else f.name
                raise self.error(node, dotted, "required key is missing")
        built = cls(**values)
        problem = built.check() if hasattr(built, "check") else None
        if problem:
            field_name, message = problem
            raise self.error(node, f"{key}.{field_name}" if key else field_name, message)
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
        if origin in (list, dict) and _is_null(node):  # `models:` with every entry commented out
            return origin()
        if origin is list:
            if not isinstance(node, yaml.SequenceNode):
                raise self.error(node, key, f"expected a list, got {_describe(node)}")
            return [self.convert(args[0], item, f"{key}[{i}]") for i, item in enumerate(node.value)]
        if origin is dict:
            if not isinstance(node, yaml.MappingNode):
                raise self.error(node, key, f"expected a mapping, got {_describe(node)}")
            return {
                self._constructor.construct_object(k): self.convert(args[1], v, f"{key}.{k.value}")
                for k, v in node.value
            }
        if not isinstance(node, yaml.ScalarNode):
            raise self.error(node, key, f"expected {_expected(hint)}, got {_describe(node)}")
        value = self._constructor.construct_object(node)
        if origin is Literal:
            if value not in args:
                allowed = ", ".join(str(a) for a in args)
                raise self.error(node, key, f"must be one of: {allowed}; got {value!r}")
            return value
        if hint is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not isinstance(value, hint) or (hint is not bool and isinstance(value, bool)):
            raise self.error(node, key, f"expected {_expected(hint)}, got {value!r}")
        return value


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def _expected(hint: Any) -> str:
    return _TYPE_WORDS.get(hint, getattr(hint, "__name__", str(hint)))


def _describe(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return repr(node.value)
