"""Cheap per-sample features of prompts and responses, computed in batches with numpy.

Only numbers leave this module: lengths, character-class shares and a small "shape" embedding of
the prompt (hashed character n-grams, randomly projected). The text is encoded, measured and
dropped; nothing here logs, keeps or returns it. Categorical values are mapped onto a closed set
so they cannot carry text either.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

# Counts are per sample; ratios are shares of the text's characters in [0, 1].
PROMPT_FEATURES = (
    "prompt_chars",
    "prompt_words",
    "prompt_lines",
    "prompt_non_ascii_ratio",
    "prompt_digit_ratio",
    "prompt_upper_ratio",
    "prompt_whitespace_ratio",
    "prompt_code_blocks",
)
RESPONSE_FEATURES = (
    "response_chars",
    "response_words",
    "response_lines",
    "response_non_ascii_ratio",
    "response_code_blocks",
)
NUMERIC_FEATURES: tuple[str, ...] = PROMPT_FEATURES + RESPONSE_FEATURES
CATEGORICAL_FEATURES = ("prompt_language",)
EMBEDDING_KEY = "embedding"

# langid codes of the 20 most used languages on the web; anything else is "other", so the label set stays closed.
LANGUAGES = (
    "en", "zh", "es", "fr", "de", "ja", "ru", "pt", "it", "ko",
    "ar", "hi", "nl", "tr", "pl", "vi", "id", "sv", "uk", "fa",
)  # fmt: skip
OTHER = "other"
CATEGORY_VALUES: dict[str, frozenset[str]] = {"prompt_language": frozenset((*LANGUAGES, OTHER))}

_CHUNK = 256  # samples per count matrix: bounds the (chunk, hash_buckets) scratch array
_HASH_PRIME = np.uint32(0x01000193)  # FNV-1a's 32-bit prime; 32-bit arithmetic is ~7x faster than 64-bit here
_HASH_MIX = np.uint32(0x9E3779B1)  # 2^32 / golden ratio, odd


@dataclass
class Batch:
    """Features of n samples: one value per sample and feature (NaN: does not apply), vectors (n, dim)."""

    numeric: dict[str, np.ndarray]
    categorical: dict[str, list[str]] = field(default_factory=dict)  # "" = not known for that sample
    vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))

    def __len__(self) -> int:
        return len(next(iter(self.numeric.values()))) if self.numeric else len(self.vectors)


# Byte classes, counted per text with one bincount: (class, starts-a-word) pairs.
_OTHER, _DIGIT, _UPPER, _CONTINUATION, _LEAD, _SPACE, _NEWLINE = range(7)  # the two spaces last
_CLASSES = 7
_CLASS = np.full(256, _OTHER, dtype=np.uint8)
_CLASS[48:58] = _DIGIT
_CLASS[65:91] = _UPPER
_CLASS[[9, 11, 12, 13, 32]] = _SPACE
_CLASS[10] = _NEWLINE
_CLASS[0x80:0xC0] = _CONTINUATION
_CLASS[0xC0:] = _LEAD
_CODE = _CLASS * np.uint8(2)  # low bit: the byte starts a word


@dataclass(frozen=True)
class _Texts:
    """All texts' UTF-8 bytes in one array, with each text's start offset and byte length."""

    data: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray

    @classmethod
    def encode(cls, texts: Sequence[str]) -> _Texts:
        encoded = [t.encode("utf-8", "surrogatepass") for t in texts]
        lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
        starts = np.zeros(len(encoded), dtype=np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
        return cls(np.frombuffer(b"".join(encoded), dtype=np.uint8), starts, lengths)

    def __len__(self) -> int:
        return len(self.lengths)

    def owner(self, scale: int) -> np.ndarray:
        """Per byte: the index of its text times `scale` (the row offset of a flattened per-text table)."""
        return np.repeat(np.arange(len(self), dtype=np.int64) * scale, self.lengths)

    def slice(self, begin: int, end: int) -> _Texts:
        """Texts [begin, end) as their own _Texts (views, no copy of the bytes)."""
        lo = int(self.starts[begin]) if begin < len(self) else int(self.data.size)
        hi = int(self.starts[end - 1] + self.lengths[end - 1]) if end > begin else lo
        return _Texts(self.data[lo:hi], self.starts[begin:end] - lo, self.lengths[begin:end])


def _text_stats(texts: _Texts, raw: Sequence[str]) -> dict[str, np.ndarray]:
    """Length and character-class statistics of each text (ASCII classes; non-ASCII characters counted once)."""
    n, data = len(texts), texts.data
    codes = _CODE[data]
    space = codes >= _SPACE * 2
    word_start = ~space
    word_start[1:] &= space[:-1]
    first = texts.starts[texts.lengths > 0]
    word_start[first] = ~space[first]  # a text starts afresh, whatever the previous one ended with
    codes += word_start
    flat = texts.owner(_CLASSES * 2)
    flat += codes
    table = np.bincount(flat, minlength=n * _CLASSES * 2).reshape(n, _CLASSES, 2)
    per_class = table.sum(axis=2)
    chars = texts.lengths - per_class[:, _CONTINUATION]  # one non-continuation byte per UTF-8 sequence
    with np.errstate(divide="ignore", invalid="ignore"):
        denominator = np.where(chars > 0, chars, np.nan)
        stats = {
            "chars": chars.astype(float),
            "words": table[:, :, 1].sum(axis=1).astype(float),
            "lines": np.where(chars > 0, per_class[:, _NEWLINE] + 1, 0).astype(float),
            "non_ascii_ratio": per_class[:, _LEAD] / denominator,
            "digit_ratio": per_class[:, _DIGIT] / denominator,
            "upper_ratio": per_class[:, _UPPER] / denominator,
            "whitespace_ratio": (per_class[:, _SPACE] + per_class[:, _NEWLINE]) / denominator,
        }
    stats["code_blocks"] = np.fromiter(((t.count("```") + 1) // 2 for t in raw), dtype=float, count=n)
    return stats


class FeatureExtractor:
    """Turns batches of prompts (and optional responses) into a `Batch`; holds only the fixed projection."""

    def __init__(self, dim: int = 32, ngram: int = 3, hash_buckets: int = 4096, seed: int = 0, language: bool = False):
        if dim < 1 or ngram < 1 or not 2 <= hash_buckets <= 1 << 24:
            raise ValueError("dim and ngram must be >= 1 and hash_buckets in [2, 2**24]")
        self.dim, self.ngram, self.hash_buckets, self.seed, self.language = dim, ngram, hash_buckets, seed, language
        rng = np.random.default_rng(seed)
        # Achlioptas' sparse projection: each entry +1 or -1 with probability 1/6 each, else 0.
        values = np.array([-1.0, 0.0, 1.0], dtype=np.float32)
        self._projection = rng.choice(values, size=(hash_buckets, dim), p=[1 / 6, 2 / 3, 1 / 6])
        bits = hash_buckets.bit_length() - 1
        self._bucket_shift = np.uint32(32 - bits) if hash_buckets == 1 << bits else None

    def extract_batch(self, prompts: Sequence[str], responses: Sequence[str | None]) -> Batch:
        """Features of each (prompt, response) pair; a None response leaves the response features NaN."""
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        n = len(prompts)
        numeric = {name: np.full(n, np.nan) for name in NUMERIC_FEATURES}
        encoded = _Texts.encode(prompts)
        for key, values in _text_stats(encoded, prompts).items():
            numeric[f"prompt_{key}"] = values
        answered = [i for i, r in enumerate(responses) if r is not None]
        if answered:
            texts = [responses[i] or "" for i in answered]
            stats = _text_stats(_Texts.encode(texts), texts)
            for name in RESPONSE_FEATURES:
                numeric[name][answered] = stats[name.removeprefix("response_")]
        categorical = {"prompt_language": self._languages(prompts)} if self.language else {}
        return Batch(numeric, categorical, self._embed(encoded))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float32 L2-normalised shape vectors; a text shorter than one n-gram gets zeros."""
        return self._embed(_Texts.encode(texts))

    def _embed(self, texts: _Texts) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for begin in range(0, len(texts), _CHUNK):
            end = min(begin + _CHUNK, len(texts))
            out[begin:end] = self._embed_chunk(texts.slice(begin, end))
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out

    def _embed_chunk(self, texts: _Texts) -> np.ndarray:
        data, n, k, buckets = texts.data, len(texts), self.ngram, self.hash_buckets
        if data.size < k:
            return np.zeros((n, self.dim), dtype=np.float32)
        # Polynomial hash of every byte n-gram at once (k vector ops, uint32 wrap-around), then
        # multiplicative (Fibonacci) hashing: the top bits of h * odd constant pick the bucket.
        width = data.size - k + 1
        h = np.full(width, (self.seed * 0x9E3779B1 + 1) & 0xFFFFFFFF, dtype=np.uint32)
        for offset in range(k):
            h *= _HASH_PRIME
            h += data[offset : offset + width]
        h *= _HASH_MIX
        if self._bucket_shift is not None:
            h >>= self._bucket_shift
        else:
            h %= np.uint32(buckets)
        flat = texts.owner(buckets)[:width]
        flat += h
        # The n-grams straddling two texts start in the last k-1 bytes of a text: send them to a spare bin.
        ends = texts.starts + texts.lengths
        straddling = (ends[:, None] - np.arange(1, k, dtype=np.int64)).ravel()
        flat[straddling[(straddling >= 0) & (straddling < width)]] = n * buckets
        counts = np.bincount(flat, minlength=n * buckets + 1)[: n * buckets].reshape(n, buckets)
        weights = np.sqrt(counts, dtype=np.float32)  # sublinear: frequent n-grams (spaces, "the") do not dominate
        return weights @ self._projection

    def _languages(self, prompts: Sequence[str]) -> list[str]:
        try:
            import langid  # optional: the drift extra
        except ModuleNotFoundError as err:
            raise ModuleNotFoundError("language detection needs the `langid` package", name="langid") from err
        known = CATEGORY_VALUES["prompt_language"]
        codes = (langid.classify(p)[0] for p in prompts)
        return [c if c in known else OTHER for c in codes]

    def from_features(self, rows: Sequence[Mapping[str, float | str]]) -> Batch:
        """A Batch from features a client computed itself (same names); missing numbers are NaN.

        An optional "embedding" of `dim` floats fills the row's vector; without it the vector is NaN
        and the reservoir skips it. Categorical values outside the closed label set become "other".
        """
        n = len(rows)
        numeric = {name: np.full(n, np.nan) for name in NUMERIC_FEATURES}
        categorical: dict[str, list[str]] = {}
        vectors = np.full((n, self.dim), np.nan, dtype=np.float32)
        for i, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise ValueError(f"rows[{i}]: expected an object of feature names to values")
            for name, value in row.items():
                if name in numeric:
                    numeric[name][i] = _finite(value, f"rows[{i}].{name}")
                elif name in CATEGORY_VALUES:
                    if not isinstance(value, str):
                        raise ValueError(f"rows[{i}].{name}: expected a string label")
                    label = value.strip().lower()
                    column = categorical.setdefault(name, [""] * n)
                    column[i] = label if label in CATEGORY_VALUES[name] else OTHER
                elif name == EMBEDDING_KEY:
                    vectors[i] = self._vector(value, f"rows[{i}].{name}")
                else:
                    raise ValueError(f"rows[{i}]: unknown feature {str(name)[:64]!r}")
        return Batch(numeric, categorical, vectors)

    def _vector(self, value: object, key: str) -> np.ndarray:
        if not isinstance(value, list | tuple) or len(value) != self.dim:
            raise ValueError(f"{key}: expected a list of {self.dim} numbers")
        return np.array([_finite(v, f"{key}[{j}]") for j, v in enumerate(value)], dtype=np.float32)


def _finite(value: object, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key}: expected a number")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{key}: must be finite")
    return number
