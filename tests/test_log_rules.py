"""The shipped rule tables against real engine log lines (tests/data/logs/, sources in its README)."""

from __future__ import annotations

from pathlib import Path

import pytest

from inferwatch.config import LOG_ENGINES, ConfigError, load_section
from inferwatch.exporters.logs import rules
from inferwatch.exporters.logs.rules import CLASSES, Classifier, RuleFile, shipped_rules

DATA = Path(__file__).parent / "data" / "logs"


def corpus(engine: str) -> list[tuple[str, str, str]]:
    """(expected, near_miss_of, line) rows; expected is a rule name, `level`, or `-` (None)."""
    rows = []
    for raw in (DATA / f"{engine}.tsv").read_text(encoding="utf-8").splitlines():
        if raw and not raw.startswith("#"):
            expected, near_miss_of, line = raw.split("\t", 2)
            rows.append((expected, near_miss_of, line))
    return rows


@pytest.mark.parametrize("engine", LOG_ENGINES)
def test_corpus_lines_classify_as_labelled(engine):
    classifier = Classifier.for_engine(engine)
    wrong = []
    for expected, _, line in corpus(engine):
        verdict = classifier.classify(line)
        got = verdict.rule if verdict else "-"
        if got != expected:
            wrong.append((expected, got, line[:120]))
    assert not wrong


@pytest.mark.parametrize("engine", LOG_ENGINES)
def test_every_shipped_rule_has_a_positive_and_a_near_miss(engine):
    classifier = Classifier.for_engine(engine)
    rows = corpus(engine)
    for rule in shipped_rules(engine):
        positives = [line for expected, _, line in rows if expected == rule.name]
        near_misses = [line for _, near, line in rows if near == rule.name]
        assert positives, f"{engine}: no corpus line for rule {rule.name}"
        assert near_misses, f"{engine}: no near-miss line for rule {rule.name}"
        assert all(classifier.classify(line).rule == rule.name for line in positives)
        for line in near_misses:
            verdict = classifier.classify(line)
            assert verdict is None or verdict.rule != rule.name, line


@pytest.mark.parametrize("engine", LOG_ENGINES)
def test_each_engine_file_loads_with_known_classes(engine):
    loaded = shipped_rules(engine)
    assert loaded and {r.klass for r in loaded} <= set(CLASSES)
    assert len({r.name for r in loaded}) == len(loaded)


def test_classes_are_the_closed_set():
    assert CLASSES == ("oom_gpu", "oom_kv_cache", "preemption", "engine_dead", "nccl", "cuda_error",
                       "request_rejected", "tokenizer", "timeout", "http_5xx", "other_error")
    assert rules.SEVERITIES == ("critical", "error", "warning", "info")


def test_demo_run_info_lines_are_not_counted():
    """Real vLLM CPU server output (stats, access lines, start-up): nothing there is an error."""
    classifier = Classifier.for_engine("vllm")
    lines = (DATA / "vllm-cpu-demo.log").read_text(encoding="utf-8").splitlines()
    assert len(lines) > 300
    assert [line for line in lines if classifier.classify(line)] == []


def test_unmatched_error_line_is_other_error_and_info_is_none():
    classifier = Classifier.for_engine("vllm")
    error = classifier.classify("(APIServer pid=7) ERROR 12-02 13:05:01 [x.py:1] the flux capacitor is off")
    assert error == rules.Verdict("other_error", "error", "level")
    critical = classifier.classify("CRITICAL 12-02 13:05:01 [x.py:1] the flux capacitor is off")
    assert critical == rules.Verdict("other_error", "critical", "level")
    assert classifier.classify("(APIServer pid=7) INFO 12-02 13:05:01 [x.py:1] the flux capacitor is on") is None
    tgi_json = '{"timestamp":"2024-01-01T00:00:00Z","level":"ERROR","fields":{"message":"x"}}'
    assert classifier.classify(tgi_json).rule == "level"


def write_rules(tmp_path: Path, body: str) -> str:
    path = tmp_path / "my-rules.yaml"
    path.write_text(body)
    return str(path)


RULE = "  - name: {name}\n    class_name: {klass}\n    severity: error\n    regex: '{regex}'\n"


@pytest.mark.parametrize(("rule", "line", "key", "message"), [
    (RULE.format(name="bad", klass="nccl", regex="foo("), 9, "rules[1].regex", "not a valid regular expression"),
    (RULE.format(name="bad", klass="gremlins", regex="foo"), 7, "rules[1].class_name", "must be one of oom_gpu"),
    (RULE.format(name="ok", klass="nccl", regex="bar"), 2, "rules[1].name", "duplicate name 'ok' (also rules[0])"),
    (RULE.format(name="bad", klass="nccl", regex="(?i)foo"), 9, "rules[1].regex", "not a valid regular expression"),
    (RULE.format(name="bad", klass="nccl", regex="(a)\\1"), 9, "rules[1].regex", "backreferences"),
    (RULE.format(name="bad", klass="nccl", regex="x*"), 9, "rules[1].regex", "matches the empty string"),
])
def test_bad_rule_files_name_file_line_and_key(tmp_path, rule, line, key, message):
    path = write_rules(tmp_path, "rules:\n" + RULE.format(name="ok", klass="nccl", regex="fine") + rule)
    with pytest.raises(ConfigError) as caught:
        load_section(path, RuleFile)
    assert caught.value.key == key
    assert caught.value.line == line
    assert message in caught.value.message
    assert str(caught.value).startswith(f"{path}:{line}: {key}: ")


def test_bad_severity_is_located(tmp_path):
    path = write_rules(tmp_path, "rules:\n  - name: x\n    class_name: nccl\n    severity: dire\n    regex: 'y'\n")
    with pytest.raises(ConfigError, match=r"my-rules.yaml:4: rules\[0\].severity: must be one of critical"):
        Classifier.for_engine("vllm", [path])


def test_user_rules_take_precedence(tmp_path):
    line = "RuntimeError: CUDA error: an illegal memory access was encountered"
    assert Classifier.for_engine("vllm").classify(line).rule == "cuda_runtime_error"
    path = write_rules(tmp_path, "rules:\n" + RULE.format(name="ours", klass="other_error", regex="illegal memory"))
    assert Classifier.for_engine("vllm", [path]).classify(line) == rules.Verdict("other_error", "error", "ours")


def test_gate_words_never_hide_a_match():
    """Every corpus line a rule's regex matches also contains one of the rule's gate words."""
    for engine in LOG_ENGINES:
        for rule in shipped_rules(engine):
            words = rules._gate_words(rule.regex)
            for _, _, line in corpus(engine):
                if rule.pattern.search(line) and words is not None:
                    assert any(w in line for w in words), (rule.name, line)
