"""The probe modules file: what each module asks an endpoint and what the answers must satisfy.

Parsed by the one config validator (`inferwatch.config`), so every mistake is reported as
`file:line: modules.<name>.cases[i].assert[j].<key>: message`. Everything that can be checked
before a probe runs is checked here (regexes compiled, schema keywords known, names unique), so
a probe never fails because of its own configuration.
"""

from __future__ import annotations

import functools
import math
import os
import re
from dataclasses import dataclass, field
from typing import Literal

from inferwatch.config import Problem, check_seconds, first_problem, load_section

MAX_CASES = 40  # per module: a probe runs them all inside one scrape timeout
MAX_STOP = 4  # OpenAI's limit on `stop` sequences
MAX_NAME_CHARS = 64  # names become label values
_MODULE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
_CASE_NAME = re.compile(r"[a-z0-9_]+")
_ASSERTION_NAME = re.compile(r"[a-z0-9_-]+")


class _ScalarType(type):
    def __instancecheck__(cls, value: object) -> bool:
        return isinstance(value, str | int | float)


class Scalar(metaclass=_ScalarType):
    """A YAML string or number (`value`, `enum` entries): the validator checks values with isinstance()."""


Scalar.__name__ = "a string or a number"  # how the validator words "expected ..." errors


def _check_name(key: str, value: str, pattern: re.Pattern[str], allowed: str) -> Problem:
    if not (pattern.fullmatch(value) and len(value) <= MAX_NAME_CHARS):
        return key, f"must be 1 to {MAX_NAME_CHARS} characters of {allowed}; got {value!r:.80}"
    return None


def _duplicates(key: str, names: list[str]) -> Problem:
    """The second use of any name, as `key[i].name` (linear in the number of names)."""
    first: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in first:
            return f"{key}[{i}].name", f"duplicate name {name!r} (also {key}[{first[name]}])"
        first[name] = i
    return None


JsonType = Literal["string", "number", "integer", "boolean", "object", "array", "null"]


@dataclass
class JsonSchema:
    """The JSON Schema subset a probe needs; any other keyword is a config error, never silently ignored."""

    type: JsonType | None = None
    properties: dict[str, JsonSchema] = field(default_factory=dict)
    required: list[str] = field(default_factory=list)
    items: JsonSchema | None = None
    enum: list[Scalar] | None = None
    minimum: float | None = None
    maximum: float | None = None
    minLength: int | None = None  # JSON Schema spells keywords in camelCase
    maxLength: int | None = None
    additionalProperties: bool = True

    def check(self) -> Problem:
        for name in ("minimum", "maximum"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                return name, f"must be a finite number; got {value!r}"
        for name in ("minLength", "maxLength"):
            if (getattr(self, name) or 0) < 0:
                return name, f"must be 0 or more; got {getattr(self, name)}"
        for low, high in (("minimum", "maximum"), ("minLength", "maxLength")):
            least, most = getattr(self, low), getattr(self, high)
            if least is not None and most is not None and least > most:
                return high, f"must not be less than {low} ({least:g})"
        return None


AssertionType = Literal[
    "equals", "contains", "not-contains", "icontains", "regex", "is-json", "json-schema", "number", "length",
    "refusal", "not-refusal", "similar",
]
_TEXT_TYPES = ("equals", "contains", "not-contains", "icontains", "regex", "similar")
_OPTIONS = ("value", "schema", "tolerance", "threshold", "min_chars", "max_chars", "min_tokens", "max_tokens")
_LENGTHS = ("min_chars", "max_chars", "min_tokens", "max_tokens")
# type -> (keys it needs, keys it may have); any other option given is a mistake worth naming
_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    **{t: (("value",), ()) for t in _TEXT_TYPES},
    "similar": (("value",), ("threshold",)),
    "number": (("value",), ("tolerance",)),
    "json-schema": (("schema",), ()),
    "length": ((), _LENGTHS),
    **{t: ((), ()) for t in ("is-json", "refusal", "not-refusal")},
}
DEFAULT_SIMILARITY_THRESHOLD = 0.75  # promptfoo's default for `similar`


@dataclass
class Assertion:
    """One check of an answer. `name` defaults to `<index>_<type>` (filled in by the case)."""

    type: AssertionType
    name: str = ""
    value: Scalar | None = None  # text for the text types, a number for `number`
    schema: JsonSchema | None = None
    tolerance: float | None = None  # `number`: allowed absolute difference (default 0)
    threshold: float | None = None  # `similar`: least cosine similarity (default 0.75)
    min_chars: int | None = None
    max_chars: int | None = None
    min_tokens: int | None = None  # tokens are the endpoint's reported completion tokens
    max_tokens: int | None = None

    @functools.cached_property
    def regex(self) -> re.Pattern[str]:
        """The compiled `value` of a `regex` assertion (compiled once, by check() at load)."""
        return re.compile(str(self.value))

    def check(self) -> Problem:
        needs, may = _KEYS[self.type]
        for key in _OPTIONS:
            given = getattr(self, key) is not None
            if given and key not in needs + may:
                return key, f"is not used by type {self.type}"
            if not given and key in needs:
                return key, f"required for type {self.type}"
        return first_problem(
            _check_name("name", self.name, _ASSERTION_NAME, "a-z, 0-9, _ and -") if self.name else None,
            self._check_value(),
            self._check_numbers(),
        )

    def _check_value(self) -> Problem:
        if self.type in _TEXT_TYPES and not isinstance(self.value, str):
            return "value", f"must be a string for type {self.type} (quote it); got {self.value!r:.80}"
        if self.type == "number" and not (isinstance(self.value, int | float) and math.isfinite(self.value)):
            return "value", f"must be a finite number for type number; got {self.value!r:.80}"
        if self.type in _TEXT_TYPES and not self.value:
            return "value", "must not be empty"
        if self.type == "regex":
            try:
                self.regex  # noqa: B018 - compiles and caches the pattern
            except re.error as exc:
                return "value", f"not a valid regular expression ({exc})"
        return None

    def _check_numbers(self) -> Problem:
        if self.tolerance is not None and not (math.isfinite(self.tolerance) and self.tolerance >= 0):
            return "tolerance", f"must be a finite number, 0 or more; got {self.tolerance!r}"
        if self.threshold is not None and not 0 < self.threshold <= 1:
            return "threshold", f"must be greater than 0 and at most 1; got {self.threshold!r}"
        if self.type == "length":
            if all(getattr(self, key) is None for key in _LENGTHS):
                return "type", "length needs at least one of: " + ", ".join(_LENGTHS)
            for key in _LENGTHS:
                if (getattr(self, key) or 0) < 0:
                    return key, f"must be 0 or more; got {getattr(self, key)}"
            for unit in ("chars", "tokens"):
                low, high = getattr(self, f"min_{unit}"), getattr(self, f"max_{unit}")
                if low is not None and high is not None and low > high:
                    return f"max_{unit}", f"must not be less than min_{unit} ({low})"
        return None


@dataclass(init=False, repr=False, eq=False)  # generated methods would spell `self.assert`, a syntax error
class Case:
    """One golden prompt. Its YAML key `assert` (promptfoo's word) is a Python keyword: read `.assertions`."""

    name: str
    prompt: str  # for kind chat: the user message
    __annotations__["assert"] = "list[Assertion]"  # a required field the validator fills by its YAML key

    def __init__(self, name: str, prompt: str, **keys: list[Assertion]) -> None:
        self.name, self.prompt = name, prompt
        assertions = keys.pop("assert", [])
        if keys:
            raise TypeError(f"unexpected arguments: {', '.join(keys)}")
        for i, assertion in enumerate(assertions):
            assertion.name = assertion.name or f"{i}_{assertion.type}"
        vars(self)["assert"] = assertions

    @property
    def assertions(self) -> list[Assertion]:
        return vars(self)["assert"]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Case):
            return NotImplemented
        return (self.name, self.prompt, self.assertions) == (other.name, other.prompt, other.assertions)

    def __repr__(self) -> str:  # without the prompt: a repr ends up in logs
        return f"Case(name={self.name!r}, assertions={[a.name for a in self.assertions]!r})"

    def check(self) -> Problem:
        return first_problem(
            _check_name("name", self.name, _CASE_NAME, "a-z, 0-9 and _"),
            None if self.prompt else ("prompt", "must not be empty"),
            None if self.assertions else ("assert", "needs at least one assertion"),
            _duplicates("assert", [a.name for a in self.assertions]),
        )


@dataclass
class Params:
    """Sampling parameters. Deterministic by default, because a probe compares answers over time."""

    max_tokens: int = 64
    temperature: float = 0.0
    seed: int | None = 0  # null: send no seed
    top_p: float | None = None
    stop: list[str] = field(default_factory=list)
    # vLLM's extension: generate exactly max_tokens (timing probes); null: not sent (other engines reject it)
    ignore_eos: bool | None = None

    def request_params(self) -> dict[str, object]:
        """The request body's sampling fields: unset options are not sent."""
        body: dict[str, object] = {"max_tokens": self.max_tokens, "temperature": self.temperature}
        if self.seed is not None:
            body["seed"] = self.seed
        if self.top_p is not None:
            body["top_p"] = self.top_p
        if self.stop:
            body["stop"] = list(self.stop)
        if self.ignore_eos is not None:
            body["ignore_eos"] = self.ignore_eos
        return body

    def check(self) -> Problem:
        if not 1 <= self.max_tokens <= 4096:
            return "max_tokens", f"must be between 1 and 4096; got {self.max_tokens}"
        if not (math.isfinite(self.temperature) and 0 <= self.temperature <= 2):
            return "temperature", f"must be between 0 and 2; got {self.temperature!r}"
        if self.top_p is not None and not 0 < self.top_p <= 1:
            return "top_p", f"must be greater than 0 and at most 1; got {self.top_p!r}"
        if len(self.stop) > MAX_STOP:
            return "stop", f"at most {MAX_STOP} stop sequences; got {len(self.stop)}"
        if "" in self.stop:
            return f"stop[{self.stop.index('')}]", "must not be empty"
        return None


@dataclass
class Health:
    """Model health checks run with the module (`health:`); unset ones are not run."""

    max_model_len: int | None = None  # the context /v1/models must report for the model
    tokenizer_text: str | None = None  # must survive POST /tokenize then /detokenize unchanged

    def check(self) -> Problem:
        if self.max_model_len is not None and self.max_model_len < 1:
            return "max_model_len", f"must be at least 1; got {self.max_model_len}"
        if self.tokenizer_text is not None and not self.tokenizer_text:
            return "tokenizer_text", "must not be empty (leave it out to skip the round trip)"
        return None


@dataclass
class Module:
    """One probe: a request shape and its golden cases (`GET /probe?module=<name>&target=...`)."""

    kind: Literal["chat", "completion"]
    cases: list[Case]
    model: str = ""  # the served model id the endpoint must report; "" accepts any
    timeout_seconds: float = 30.0
    params: Params = field(default_factory=Params)
    system: str | None = None  # kind chat only
    health: Health = field(default_factory=Health)

    def check(self) -> Problem:
        if self.system is not None and self.kind != "chat":
            return "system", "only for kind chat (a completion has no system prompt)"
        if not 1 <= len(self.cases) <= MAX_CASES:
            return "cases", f"must have 1 to {MAX_CASES} cases; got {len(self.cases)}"
        return first_problem(
            check_seconds("timeout_seconds", self.timeout_seconds),
            _duplicates("cases", [c.name for c in self.cases]),
        )


@dataclass
class Modules:
    """The whole probe modules file."""

    modules: dict[str, Module] = field(default_factory=dict)

    def check(self) -> Problem:
        return first_problem(*(_check_name(f"modules.{name}", name, _MODULE_NAME, "a-z, 0-9, _ and -")
                               for name in self.modules))


def load_modules(path: str | os.PathLike) -> Modules:
    """Read and validate a probe modules file; ConfigError names `file:line: key` on any mistake."""
    return load_section(path, Modules)
