"""Drift core: distances against hand-computed values, features, reservoir and sketch round trips.

Expected numbers are computed here with plain `math` from the definitions, never by calling the
function under test, so a wrong formula fails.
"""

from __future__ import annotations

import copy
import json
import math
import sys
import types

import numpy as np
import pytest

from inferwatch.exporters.drift.features import (
    CATEGORICAL_FEATURES,
    NUMERIC_FEATURES,
    Batch,
    FeatureExtractor,
)
from inferwatch.exporters.drift.sketch import EDGES, MAX_CATEGORIES, Reservoir, WindowSketch, bin_counts, compare
from inferwatch.exporters.drift.stats import (
    EMBEDDING_METHOD,
    METHODS,
    THRESHOLDS,
    Score,
    buckets_from_cumulative,
    compare_bins,
    jensenshannon,
    kolmogorov_q,
    ks,
    mmd2,
    psi,
)

REF = [50, 30, 20]
CUR = [30, 30, 40]
VLLM_BOUNDS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, math.inf]


def shares(counts: list[float]) -> list[float]:
    total = sum(counts)
    return [c / total if c else 0.0001 for c in counts]


def q_ks(x: float, terms: int = 200) -> float:
    """The Kolmogorov survival function, summed directly to many terms."""
    return 2 * sum((-1) ** (j - 1) * math.exp(-2 * j * j * x * x) for j in range(1, terms + 1))


# --- stats ---------------------------------------------------------------------------------------------------------


def test_constants_are_evidently_defaults() -> None:
    assert METHODS == ("psi", "jensenshannon", "ks")
    assert EMBEDDING_METHOD == "mmd"
    assert THRESHOLDS == {"psi": 0.1, "jensenshannon": 0.1, "ks": 0.05, "mmd": 0.015}


def test_psi_hand_computed() -> None:
    # shares 0.5/0.3/0.2 -> 0.3/0.3/0.4: (0.3-0.5) ln(0.3/0.5) + 0 + (0.4-0.2) ln(0.4/0.2)
    expected = -0.2 * math.log(0.6) + 0.2 * math.log(2.0)
    assert psi(REF, CUR) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(0.24079, abs=1e-5)
    assert psi(REF, CUR) == pytest.approx(psi(CUR, REF), rel=1e-12)  # PSI is symmetric


def test_psi_empty_bin_uses_evidently_floor() -> None:
    # reference [10, 0] -> shares [1, 0.0001] (not renormalised); current [5, 5] -> [0.5, 0.5]
    expected = (0.5 - 1.0) * math.log(0.5 / 1.0) + (0.5 - 0.0001) * math.log(0.5 / 0.0001)
    assert psi([10, 0], [5, 5]) == pytest.approx(expected, rel=1e-12)


def test_jensenshannon_hand_computed() -> None:
    p, q = [0.5, 0.3, 0.2], [0.3, 0.3, 0.4]
    m = [(a + b) / 2 for a, b in zip(p, q, strict=True)]
    kl = lambda a, b: sum(x * math.log(x / y) for x, y in zip(a, b, strict=True))  # noqa: E731
    expected = math.sqrt((kl(p, m) + kl(q, m)) / 2)
    assert jensenshannon(REF, CUR) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(0.17211, abs=1e-5)


def test_jensenshannon_floor_then_renormalise() -> None:
    # [10, 0] -> [1, 0.0001] renormalised; [0, 10] -> [0.0001, 1] renormalised: almost the maximum, sqrt(ln 2)
    p = [1 / 1.0001, 0.0001 / 1.0001]
    q = [p[1], p[0]]
    m = [0.5, 0.5]
    expected = math.sqrt(sum(x * math.log(x / y) for x, y in zip(p, m, strict=True)))
    assert jensenshannon([10, 0], [0, 10]) == pytest.approx(expected, rel=1e-12)
    assert expected < math.sqrt(math.log(2)) and expected > 0.8
    assert q == list(reversed(p))


def test_ks_statistic_and_p_value_hand_computed() -> None:
    # CDFs 0.5/0.8/1.0 and 0.3/0.6/1.0 -> D = 0.2; n = m = 100 -> en = sqrt(50)
    statistic, p_value = ks(REF, CUR)
    assert statistic == pytest.approx(0.2, abs=1e-12)
    en = math.sqrt(100 * 100 / 200)
    assert p_value == pytest.approx(q_ks((en + 0.12 + 0.11 / en) * 0.2), rel=1e-6)
    assert 0.025 < p_value < 0.035


def test_kolmogorov_q_textbook_values() -> None:
    # Critical values of the Kolmogorov distribution: P(K > 1.3581) = 0.05, P(K > 1.6276) = 0.01.
    assert kolmogorov_q(1.3581) == pytest.approx(0.05, abs=2e-4)
    assert kolmogorov_q(1.6276) == pytest.approx(0.01, abs=1e-4)
    assert kolmogorov_q(0.0) == 1.0
    assert kolmogorov_q(0.05) == 1.0
    # Small x, from the other series of the same distribution: P(K <= x) = sqrt(2 pi)/x sum exp(-(2j-1)^2 pi^2/(8x^2)).
    for x in (0.3, 0.5, 0.8):
        terms = (math.exp(-((2 * j - 1) ** 2) * math.pi**2 / (8 * x * x)) for j in (1, 2, 3))
        cdf = math.sqrt(2 * math.pi) / x * sum(terms)
        assert kolmogorov_q(x) == pytest.approx(1 - cdf, abs=1e-7)
    assert kolmogorov_q(10.0) == pytest.approx(0.0, abs=1e-12)


def test_ks_p_value_sanity() -> None:
    same = [5, 40, 300, 900, 400, 60]
    statistic, p_value = ks(same, [2 * c for c in same])
    assert statistic == pytest.approx(0.0, abs=1e-12)
    assert p_value == pytest.approx(1.0)
    shifted = [0, 5, 40, 300, 900, 460]
    _, p_value = ks(same, shifted)
    assert p_value < 0.05


def test_identical_distributions_do_not_drift() -> None:
    counts = [3, 17, 120, 400, 380, 90, 4]
    scores = compare_bins("prompt_tokens", counts, [c * 3 for c in counts])
    assert [s.method for s in scores] == list(METHODS)
    for s in scores:
        assert s.score == pytest.approx(0.0, abs=1e-12), s
        assert s.drifted is False


def test_shifted_distribution_exceeds_thresholds() -> None:
    ref = [3, 17, 120, 400, 380, 90, 4]
    cur = [0, 3, 17, 120, 400, 380, 90]
    by_method = {s.method: s for s in compare_bins("prompt_tokens", ref, cur)}
    assert by_method["psi"].score >= 0.1 and by_method["psi"].drifted
    assert by_method["jensenshannon"].score >= 0.1 and by_method["jensenshannon"].drifted
    assert by_method["ks"].drifted and by_method["ks"].score > 0.2


def test_compare_bins_thresholds_and_edge_cases() -> None:
    scores = compare_bins("f", REF, CUR, {"psi": 0.5, "jensenshannon": 0.5, "ks": 0.01})
    assert not any(s.drifted for s in scores)  # psi 0.24, js 0.17, ks p 0.03 > 0.01
    assert compare_bins("f", [0, 0, 0], CUR) == []
    assert compare_bins("f", REF, [0, 0, 0]) == []
    with pytest.raises(ValueError, match="bins"):
        compare_bins("f", [1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="finite"):
        compare_bins("f", [1, math.nan], [1, 2])
    with pytest.raises(ValueError, match="negative"):
        psi([1, -1], [1, 2])
    assert Score("f", "psi", 0.2, True) == Score("f", "psi", 0.2, True)


def test_buckets_from_cumulative_vllm_prompt_tokens() -> None:
    cumulative = [0.0, 1.0, 3.5, 10.2, 30.0, 80.5, 150.0, 260.0, 410.0, 480.0, 498.0, 500.0, 500.0, 500.0]
    buckets = buckets_from_cumulative(VLLM_BOUNDS, cumulative)
    expected = [0.0, 1.0, 2.5, 6.7, 19.8, 50.5, 69.5, 110.0, 150.0, 70.0, 18.0, 2.0, 0.0, 0.0]
    assert buckets == pytest.approx(expected)
    assert sum(buckets) == pytest.approx(500.0)
    # increase() extrapolates per series: a bucket can read slightly below the one before it.
    wobbly = [0.0, 1.0, 3.5, 10.2, 30.0, 80.5, 150.0, 260.0, 410.0, 480.0, 479.6, 500.0, 499.9, 500.1]
    buckets = buckets_from_cumulative(VLLM_BOUNDS, wobbly)
    assert buckets[10] == 0.0 and buckets[11] == pytest.approx(20.4) and buckets[12] == 0.0
    assert buckets[13] == pytest.approx(0.2)
    assert min(buckets) >= 0.0
    assert buckets_from_cumulative(["1", "+Inf"], [2, 3]) == [2.0, 1.0]


@pytest.mark.parametrize(
    ("bounds", "cumulative", "message"),
    [
        ([1, math.inf], [1, math.nan], "finite"),
        ([1, math.inf], [1, math.inf], "finite"),
        ([1, 2], [1, 2], r"\+Inf"),
        ([2, 1, math.inf], [1, 2, 3], "ascending"),
        ([math.nan, math.inf], [1, 2], "NaN"),
        ([1, math.inf], [1], "equal length"),
        ([], [], "Inf"),
    ],
)
def test_buckets_from_cumulative_rejects(bounds: list[float], cumulative: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        buckets_from_cumulative(bounds, cumulative)


def test_mmd2_same_small_shifted_large() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(400, 8)), rng.normal(size=(400, 8))
    same = mmd2(x, y)
    assert 0.0 <= same < 0.005
    shifted = mmd2(x, rng.normal(0.5, 1.0, size=(400, 8)))
    assert shifted > 0.015
    assert mmd2(x[:1], y) == 0.0
    assert mmd2(x, x) == 0.0  # identical rows: the unbiased estimate is negative, reported as 0


def test_mmd2_matches_direct_formula_and_subsamples() -> None:
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(6, 2)), rng.normal(0.7, 1.0, size=(5, 2))
    dist = lambda a, b: math.dist(a, b)  # noqa: E731
    cross = sorted(dist(a, b) for a in x for b in y)
    median = (cross[14] + cross[15]) / 2  # 30 distances
    k = lambda a, b: math.exp(-(dist(a, b) ** 2) / median**2)  # noqa: E731
    xx = sum(k(a, b) for i, a in enumerate(x) for j, b in enumerate(x) if i != j) / (6 * 5)
    yy = sum(k(a, b) for i, a in enumerate(y) for j, b in enumerate(y) if i != j) / (5 * 4)
    xy = sum(k(a, b) for a in x for b in y) / 30
    assert mmd2(x, y) == pytest.approx(max(xx + yy - 2 * xy, 0.0), rel=1e-9)
    big_x, big_y = rng.normal(size=(3000, 4)), rng.normal(size=(3000, 4))
    assert mmd2(big_x, big_y, max_samples=200, seed=3) == mmd2(big_x, big_y, max_samples=200, seed=3)
    with pytest.raises(ValueError, match="columns"):
        mmd2(x, y[:, :1])


# --- features ------------------------------------------------------------------------------------------------------

ENGLISH = [
    "Please summarise the following article about the economy in three short sentences.",
    "Please summarize this article about the housing market in two short sentences.",
    "Please summarise the following report about the labour market in three sentences.",
]
OTHERS = [
    "请用三句话总结下面这篇关于经济的文章、并列出主要观点。",
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n\nprint([fib(i) for i in range(10)])",
    "SELECT user_id, COUNT(*) FROM orders WHERE created_at > '2024-01-01' GROUP BY user_id;",
]


def test_features_values() -> None:
    fx = FeatureExtractor()
    prompts = ["Hello World 42\nsecond line", "日本語 ok", "", "```py\nx = 1\n```"]
    batch = fx.extract_batch(prompts, ["Fine, thanks.", None, "", None])
    n = batch.numeric
    assert set(n) == set(NUMERIC_FEATURES)
    assert list(n["prompt_chars"]) == [len(p) for p in prompts]
    assert list(n["prompt_words"]) == [len(p.split()) for p in prompts]
    assert list(n["prompt_lines"]) == [2, 1, 0, 3]
    assert n["prompt_digit_ratio"][0] == pytest.approx(2 / 26)
    assert n["prompt_upper_ratio"][0] == pytest.approx(2 / 26)
    assert n["prompt_whitespace_ratio"][0] == pytest.approx(4 / 26)
    assert n["prompt_non_ascii_ratio"][1] == pytest.approx(3 / 6)
    assert math.isnan(n["prompt_non_ascii_ratio"][2])  # no characters: a share does not apply
    assert list(n["prompt_code_blocks"]) == [0, 0, 0, 1]
    assert n["response_chars"][0] == 13 and n["response_words"][0] == 2
    assert math.isnan(n["response_chars"][1]) and math.isnan(n["response_chars"][3])
    assert n["response_chars"][2] == 0
    assert batch.categorical == {}
    assert batch.vectors.shape == (4, 32) and batch.vectors.dtype == np.float32
    assert len(batch) == 4


def test_word_count_does_not_leak_across_texts() -> None:
    # The byte before each text belongs to the previous one: words must still be counted per text.
    prompts = ["alpha", "beta gamma", " delta", "x"]
    batch = FeatureExtractor().extract_batch(prompts, [None] * 4)
    assert list(batch.numeric["prompt_words"]) == [1, 2, 1, 1]


def test_vectors_normalised_and_similar_texts_closer() -> None:
    fx = FeatureExtractor()
    v = fx.extract_batch(ENGLISH + OTHERS, [None] * 6).vectors
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    sims = v @ v.T
    within = [sims[i, j] for i in range(3) for j in range(3) if i < j]
    across = [sims[i, j] for i in range(3) for j in range(3, 6)]
    assert min(within) > max(across), (within, across)
    assert np.mean(within) > np.mean(across) + 0.3
    assert np.array_equal(v, FeatureExtractor().embed(ENGLISH + OTHERS))  # same seed, same projection
    assert not np.allclose(v, FeatureExtractor(seed=1).embed(ENGLISH + OTHERS))
    assert not np.any(FeatureExtractor().embed(["ab"]))  # shorter than one n-gram: zero vector


def test_embedding_independent_of_batch_composition() -> None:
    # Chunking and neighbours must not change a text's vector (n-grams never straddle texts).
    fx = FeatureExtractor(dim=16)
    texts = [f"prompt number {i} " * (i % 7 + 1) for i in range(600)]
    together = fx.embed(texts)
    alone = np.vstack([fx.embed([t]) for t in texts[::97]])
    assert np.allclose(together[::97], alone, atol=1e-6)
    assert FeatureExtractor(hash_buckets=1000).embed(texts[:3]).shape == (3, 32)


def test_language_uses_langid_and_closed_labels(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("langid")
    fake.classify = lambda text: ("zh", -1.0) if "总结" in text else ("en", -1.0) if "Please" in text else ("xx", 0)
    monkeypatch.setitem(sys.modules, "langid", fake)
    batch = FeatureExtractor(language=True).extract_batch(ENGLISH[:1] + OTHERS, [None] * 4)
    assert batch.categorical == {"prompt_language": ["en", "zh", "other", "other"]}
    assert CATEGORICAL_FEATURES == ("prompt_language",)


def test_language_without_langid_names_the_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "langid", None)
    with pytest.raises(ModuleNotFoundError, match="langid") as err:
        FeatureExtractor(language=True).extract_batch(["hello"], [None])
    assert err.value.name == "langid"
    FeatureExtractor().extract_batch(["hello"], [None])  # off by default: no import


def test_from_features() -> None:
    fx = FeatureExtractor(dim=4)
    batch = fx.from_features(
        [
            {"prompt_chars": 120, "prompt_language": "DE", "embedding": [1, 0, 0, 0]},
            {"response_chars": 3.5, "prompt_language": "Some Raw Prompt Text"},
            {},
        ]
    )
    assert batch.numeric["prompt_chars"][0] == 120 and math.isnan(batch.numeric["prompt_chars"][1])
    assert batch.numeric["response_chars"][1] == 3.5
    assert batch.categorical == {"prompt_language": ["de", "other", ""]}
    assert batch.vectors.shape == (3, 4) and list(batch.vectors[0]) == [1, 0, 0, 0]
    assert np.isnan(batch.vectors[1]).all()
    with pytest.raises(ValueError, match="prompt_colour"):
        fx.from_features([{"prompt_colour": 1}])
    with pytest.raises(ValueError, match=r"rows\[1\]\.prompt_chars: must be finite"):
        fx.from_features([{}, {"prompt_chars": math.inf}])
    with pytest.raises(ValueError, match="expected a number"):
        fx.from_features([{"prompt_chars": "12"}])
    with pytest.raises(ValueError, match="list of 4"):
        fx.from_features([{"embedding": [1, 2]}])
    with pytest.raises(ValueError, match=r"embedding\[2\]"):
        fx.from_features([{"embedding": [1, 2, math.nan, 4]}])


def test_extract_batch_rejects_mismatch_and_handles_empty() -> None:
    fx = FeatureExtractor()
    with pytest.raises(ValueError, match="responses"):
        fx.extract_batch(["a", "b"], [None])
    empty = fx.extract_batch([], [])
    assert len(empty) == 0 and empty.vectors.shape == (0, 32)


# --- sketch --------------------------------------------------------------------------------------------------------


def make_batch(fx: FeatureExtractor, n: int, seed: int, chinese: bool = False) -> Batch:
    rng = np.random.default_rng(seed)
    words = ["請", "總結", "文章", "經濟"] if chinese else ["please", "summarise", "the", "article", "Model", "42"]
    prompts = [" ".join(rng.choice(words, size=int(rng.integers(5, 80)))) for _ in range(n)]
    responses = [None if i % 3 == 0 else " ".join(rng.choice(words, size=10)) for i in range(n)]
    return fx.extract_batch(prompts, responses)


def test_edges_fixed_and_clipped() -> None:
    assert set(EDGES) == set(NUMERIC_FEATURES)
    assert list(EDGES["prompt_chars"][:5]) == [0, 1, 2, 4, 8] and EDGES["prompt_chars"][-1] == 65536
    assert len(EDGES["prompt_digit_ratio"]) == 21
    counts = bin_counts("prompt_chars", np.array([-5, 0, 1, 3, 1e9, math.nan]))
    assert counts[0] == 2 and counts[1] == 1 and counts[2] == 1 and counts[-1] == 1 and counts.sum() == 5
    assert bin_counts("prompt_digit_ratio", np.array([1.0, 0.0]))[[0, -1]].tolist() == [1, 1]


def test_reservoir_bounded_and_uniform() -> None:
    reservoir = Reservoir(size=1000, dim=1, seed=0)
    for start in range(0, 100_000, 1000):
        reservoir.add(np.arange(start, start + 1000, dtype=np.float32)[:, None])
    assert reservoir.seen == 100_000
    assert reservoir.vectors.shape == (1000, 1)
    kept = reservoir.vectors[:, 0]
    assert len(np.unique(kept)) == 1000
    # Uniform over 0..99,999: mean 50,000, standard error ~ 28,868 / sqrt(1000) ~ 913.
    assert abs(kept.mean() - 50_000) < 4_000
    assert abs(np.mean(kept < 10_000) - 0.1) < 0.04  # the first batches are not over-represented
    one_go = Reservoir(size=1000, dim=1, seed=0)
    one_go.add(np.arange(100_000, dtype=np.float32)[:, None])  # duplicate slots inside one call
    assert one_go.seen == 100_000 and abs(one_go.vectors[:, 0].mean() - 50_000) < 4_000
    one_go.add(np.full((5, 1), np.nan, dtype=np.float32))  # no embedding: not a sample
    assert one_go.seen == 100_000


def test_reservoir_merge_weights_by_seen() -> None:
    a, b = Reservoir(size=500, dim=1, seed=1), Reservoir(size=500, dim=1, seed=2)
    a.add(np.zeros((90_000, 1), dtype=np.float32))
    b.add(np.ones((10_000, 1), dtype=np.float32))
    merged = a.merge(b)
    assert merged.seen == 100_000 and len(merged.vectors) == 500
    assert merged.vectors[:, 0].sum() == 50  # 10 % of the union came from b
    small = Reservoir(size=500, dim=1).merge(Reservoir(size=500, dim=1))
    assert small.seen == 0 and len(small.vectors) == 0
    c, d = Reservoir(size=10, dim=1), Reservoir(size=10, dim=1)
    c.add(np.zeros((3, 1))), d.add(np.ones((4, 1)))
    assert sorted(c.merge(d).vectors[:, 0]) == [0, 0, 0, 1, 1, 1, 1]  # nothing dropped: the union itself
    # A big reservoir merged with a small full one holds fewer than `size`: later adds fill it, no zero rows.
    big, full = Reservoir(size=100, dim=1), Reservoir(size=10, dim=1)
    big.add(np.ones((5, 1))), full.add(np.ones((50, 1)))
    joined = big.merge(full)
    assert joined.seen == 55 and len(joined.vectors) == 15
    joined.add(np.full((200, 1), 2.0))
    assert len(joined.vectors) == 100 and joined.seen == 255 and joined.vectors.min() >= 1


def test_sketch_merge_equals_adding_both() -> None:
    fx = FeatureExtractor()
    first, second = make_batch(fx, 300, 1), make_batch(fx, 500, 2, chinese=True)
    first.categorical = {"prompt_language": ["en"] * 300}
    second.categorical = {"prompt_language": ["zh"] * 400 + ["de"] * 100}
    a, b, both = WindowSketch(), WindowSketch(seed=1), WindowSketch()
    a.add(first), b.add(second), both.add(first), both.add(second)
    merged = a.merge(b)
    assert merged.count == both.count == 800
    for feature in NUMERIC_FEATURES:
        assert np.array_equal(merged.counts[feature], both.counts[feature]), feature
    assert merged.categories == both.categories == {"prompt_language": {"en": 300, "zh": 400, "de": 100}}
    assert merged.reservoir.seen == both.reservoir.seen == 800 and len(merged.vectors) == 800
    assert a.count == 300 and b.count == 500  # inputs unchanged


def test_categories_capped() -> None:
    sketch = WindowSketch()
    labels = [f"l{i}" for i in range(40)]
    sketch.add(Batch({}, {"prompt_language": labels}, np.zeros((0, 32), dtype=np.float32)))
    assert len(sketch.categories["prompt_language"]) == MAX_CATEGORIES
    assert sum(sketch.categories["prompt_language"].values()) == 40


def test_sketch_memory_is_fixed() -> None:
    fx = FeatureExtractor()
    sketch = WindowSketch(reservoir_size=100)
    batch = make_batch(fx, 500, 3)
    sizes = []
    for _ in range(20):
        sketch.add(batch)
        sizes.append(sum(c.nbytes for c in sketch.counts.values()) + sketch.reservoir._buffer.nbytes)
    assert len(set(sizes)) == 1 and sketch.count == 10_000 and len(sketch.vectors) == 100


def test_sketch_json_round_trip_and_no_text() -> None:
    fx = FeatureExtractor()
    secret = "zebra-quokka-7781 confidential"
    batch = fx.extract_batch([f"Please review {secret} today"] * 60, [f"Reply about {secret}"] * 60)
    batch.categorical = {"prompt_language": ["en"] * 60}
    sketch = WindowSketch()
    sketch.add(batch)
    data = sketch.to_json()
    text = json.dumps(data)
    assert "zebra" not in text and "quokka" not in text and "7781" not in text and "confidential" not in text
    loaded = WindowSketch.from_json(json.loads(text))
    assert loaded.to_json() == data
    assert np.array_equal(loaded.vectors, sketch.vectors)
    assert all(not s.drifted for s in compare(sketch, loaded))


def corrupt(data: dict, path: list, value: object) -> dict:
    bad = copy.deepcopy(data)
    target = bad
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return bad


@pytest.fixture(scope="module")
def saved() -> dict:
    fx = FeatureExtractor(dim=4)
    sketch = WindowSketch(dim=4, reservoir_size=10)
    sketch.add(fx.extract_batch(["hello there"] * 20, [None] * 20))
    sketch.categories["prompt_language"] = {"en": 20}
    return sketch.to_json()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (["counts", "prompt_chars"], [1, 2], r"^counts\.prompt_chars: expected a list of 17 counts"),
        (["counts", "prompt_chars", 3], -1, r"^counts\.prompt_chars\[3\]: must be >= 0"),
        (["counts", "prompt_chars", 3], math.nan, r"^counts\.prompt_chars\[3\]: expected an integer"),
        (["counts", "prompt_chars", 3], 10_000, r"^counts\.prompt_chars: holds .* more than count"),
        (["counts", "prompt_colour"], [0], r"^counts\.prompt_colour: unknown key"),
        (["counts", "prompt_words"], KeyError, r"^counts\.prompt_words: missing"),
        (["edges", "prompt_chars", 1], 1.5, r"^edges\.prompt_chars: bin edges differ"),
        (["reservoir", "vectors", 0], [1.0, 2.0], r"^reservoir\.vectors\[0\]: expected a list of 4 numbers"),
        (["reservoir", "vectors", 0, 1], math.inf, r"^reservoir\.vectors\[0\]: values must be finite"),
        (["reservoir", "vectors", 0, 1], "x", r"^reservoir\.vectors\[0\]: expected numbers"),
        (["reservoir", "seen"], 5, r"^reservoir\.vectors: expected a list of at most min\(seen, size\) = 5"),
        (["reservoir", "size"], 0, r"^reservoir\.size: must be >= 1"),
        (["categories", "prompt_language"], {"a secret prompt": 3}, r"^categories\.prompt_language: unknown value"),
        (["categories", "prompt_language", "en"], -2, r"^categories\.prompt_language\.en: must be >= 0"),
        (["count"], True, r"^count: expected an integer"),
        (["dim"], "4", r"^dim: expected an integer"),
        (["version"], 99, r"^version: unsupported"),
        (["reservoir"], [], r"^reservoir: expected an object"),
    ],
)
def test_from_json_rejects_corrupt_input(saved: dict, path: list, value: object, message: str) -> None:
    WindowSketch.from_json(copy.deepcopy(saved))  # the untouched file loads
    with pytest.raises(ValueError, match=message):
        WindowSketch.from_json(corrupt(saved, path, value))


def test_from_json_rejects_non_object() -> None:
    with pytest.raises(ValueError, match=r"^sketch: expected an object"):
        WindowSketch.from_json([])  # type: ignore[arg-type]


def test_compare_detects_drift_and_skips_empty_features() -> None:
    fx = FeatureExtractor()
    reference, same, shifted = WindowSketch(), WindowSketch(seed=1), WindowSketch(seed=2)
    reference.add(make_batch(fx, 400, 5))
    same.add(make_batch(fx, 400, 6))
    shifted.add(make_batch(fx, 400, 7, chinese=True))
    calm = compare(reference, same)
    assert {s.feature for s in calm} == set(NUMERIC_FEATURES) | {"embedding"}  # no language data: skipped
    assert not any(s.drifted for s in calm), [s for s in calm if s.drifted]
    drift = {(s.feature, s.method): s for s in compare(reference, shifted)}
    assert drift["prompt_non_ascii_ratio", "psi"].drifted
    assert drift["prompt_chars", "ks"].drifted
    assert drift["embedding", "mmd"].drifted and drift["embedding", "mmd"].score > 0.015
    few = WindowSketch()
    few.add(make_batch(fx, 49, 8))
    assert "embedding" not in {s.feature for s in compare(reference, few)}
    no_responses = WindowSketch()
    no_responses.add(fx.extract_batch(["hello world"] * 10, [None] * 10))
    assert not any(s.feature.startswith("response_") for s in compare(reference, no_responses))
