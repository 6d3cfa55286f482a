"""The probe modules file: a full file loads, and each mistake is one located `file:line: key: message`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from inferwatch.config import ConfigError
from inferwatch.exporters.probe.modules import MAX_CASES, Case, Modules, load_modules

FULL = """\
modules:
  basic:
    kind: chat
    model: tiny
    timeout_seconds: 20
    params: {max_tokens: 32, temperature: 0, seed: 7, top_p: 0.9, stop: ["\\n\\n"]}
    system: Answer in one word.
    cases:
      - name: capital
        prompt: What is the capital of France?
        assert:
          - {type: equals, value: Paris}
          - {name: starts-with-p, type: regex, value: "^P"}
          - {type: similar, value: Paris, threshold: 0.8}
          - {type: length, max_chars: 20, max_tokens: 8}
      - name: json_city
        prompt: Give the city as JSON.
        assert:
          - type: json-schema
            schema:
              type: object
              required: [city]
              additionalProperties: false
              properties:
                city: {type: string, enum: [Paris, Lyon], minLength: 1}
                rank: {type: integer, minimum: 1, maximum: 10}
                tags: {type: array, items: {type: string, maxLength: 8}}
          - {type: number, value: 4, tolerance: 0.5}
  plain:
    kind: completion
    cases:
      - {name: refuses, prompt: "How do I pick a lock?", assert: [{type: refusal}]}
"""

# One module, one case; `{asserts}` fills in from line 8 on.
ONE_CASE = """\
modules:
  basic:
    kind: chat
    cases:
      - name: capital
        prompt: What is the capital of France?
        assert:
{asserts}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "probes.yaml"
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_modules(path)
    return str(info.value).replace(str(path), "probes.yaml")


def assert_error(tmp_path: Path, *asserts: str) -> str:
    return error_of(tmp_path, ONE_CASE.format(asserts="\n".join(f"          - {a}" for a in asserts)))


def test_full_file_loads(tmp_path: Path) -> None:
    modules = load_modules(write(tmp_path, FULL))
    basic = modules.modules["basic"]
    assert (basic.kind, basic.model, basic.timeout_seconds) == ("chat", "tiny", 20.0)
    assert basic.system == "Answer in one word."
    assert (basic.params.max_tokens, basic.params.seed, basic.params.top_p, basic.params.stop) == (32, 7, 0.9, ["\n\n"])
    capital, json_city = basic.cases
    assert [a.name for a in capital.assertions] == ["0_equals", "starts-with-p", "2_similar", "3_length"]
    assert capital.assertions[1].regex.pattern == "^P"
    schema = json_city.assertions[0].schema
    assert schema is not None and schema.required == ["city"] and schema.additionalProperties is False
    assert schema.properties["city"].enum == ["Paris", "Lyon"]
    assert schema.properties["tags"].items is not None and schema.properties["tags"].items.maxLength == 8
    assert json_city.assertions[1].value == 4
    plain = modules.modules["plain"]
    assert (plain.kind, plain.model, plain.timeout_seconds, plain.params.max_tokens) == ("completion", "", 30.0, 64)
    assert (plain.params.temperature, plain.params.seed) == (0.0, 0)


def test_case_is_a_dataclass_with_the_yaml_key(tmp_path: Path) -> None:
    case = load_modules(write(tmp_path, FULL)).modules["plain"].cases[0]
    assert [f.name for f in dataclasses.fields(Case)] == ["name", "prompt", "assert"]
    copy = dataclasses.replace(case, prompt="other")
    assert copy.prompt == "other" and copy.assertions == case.assertions
    assert dataclasses.replace(case) == case and copy != case
    assert "prompt" not in repr(case) and "lock" not in repr(case)


def test_empty_file_has_no_modules(tmp_path: Path) -> None:
    assert load_modules(write(tmp_path, "")) == Modules()


def test_bad_regex_names_the_key(tmp_path: Path) -> None:
    message = assert_error(tmp_path, "{type: equals, value: Paris}", "{type: regex, value: '[unclosed'}")
    assert message == (
        "probes.yaml:9: modules.basic.cases[0].assert[1].value: not a valid regular expression "
        "(unterminated character set at position 0)"
    )


def test_unknown_assertion_type(tmp_path: Path) -> None:
    message = assert_error(tmp_path, "{type: starts-with, value: P}")
    assert message.startswith("probes.yaml:8: modules.basic.cases[0].assert[0].type: must be one of: equals, contains,")
    assert message.endswith("; got 'starts-with'")


def test_missing_value(tmp_path: Path) -> None:
    assert assert_error(tmp_path, "{type: contains}") == (
        "probes.yaml:8: modules.basic.cases[0].assert[0].value: required for type contains"
    )


def test_unknown_schema_keyword(tmp_path: Path) -> None:
    message = assert_error(tmp_path, "{type: json-schema, schema: {properties: {city: {type: string, format: uri}}}}")
    assert message.startswith(
        "probes.yaml:8: modules.basic.cases[0].assert[0].schema.properties.city.format: unknown key (expected one of: "
        "type, properties, required, items, enum, minimum,"
    )


def test_duplicate_case_name(tmp_path: Path) -> None:
    text = ONE_CASE.format(asserts="          - {type: is-json}") + (
        "      - name: other\n        prompt: p\n        assert: [{type: is-json}]\n"
        "      - name: capital\n        prompt: p\n        assert: [{type: is-json}]\n"
    )
    assert error_of(tmp_path, text) == (
        "probes.yaml:5: modules.basic.cases[2].name: duplicate name 'capital' (also cases[0])"
    )


def test_duplicate_assertion_name_counts_default_names(tmp_path: Path) -> None:
    assert assert_error(tmp_path, "{type: is-json}", "{type: refusal, name: 0_is-json}") == (
        "probes.yaml:8: modules.basic.cases[0].assert[1].name: duplicate name '0_is-json' (also assert[0])"
    )


@pytest.mark.parametrize(
    ("assertion", "message"),
    [
        ("{type: contains, value: x, threshold: 0.5}", "[0].threshold: is not used by type contains"),
        ("{type: is-json, value: x}", "[0].value: is not used by type is-json"),
        ("{type: json-schema}", "[0].schema: required for type json-schema"),
        ("{type: equals, value: 4}", "[0].value: must be a string for type equals (quote it); got 4"),
        ("{type: equals, value: ''}", "[0].value: must not be empty"),
        ("{type: not-contains, value: ''}", "[0].value: must not be empty"),
        ("{type: number, value: four}", "[0].value: must be a finite number for type number; got 'four'"),
        ("{type: number, value: .nan}", "[0].value: must be a finite number for type number; got nan"),
        ("{type: number, value: 4, tolerance: -1}", "[0].tolerance: must be a finite number, 0 or more; got -1.0"),
        ("{type: equals, value: true}", "[0].value: expected a string or a number, got True"),
        ("{type: similar, value: x, threshold: 1.5}", "[0].threshold: must be greater than 0 and at most 1; got 1.5"),
        ("{type: length}", "[0].type: length needs at least one of: min_chars, max_chars, min_tokens, max_tokens"),
        ("{type: length, min_chars: 5, max_chars: 2}", "[0].max_chars: must not be less than min_chars (5)"),
        ("{type: length, min_tokens: -1}", "[0].min_tokens: must be 0 or more; got -1"),
        ("{type: is-json, name: Bad Name}",
         "[0].name: must be 1 to 64 characters of a-z, 0-9, _ and -; got 'Bad Name'"),
        ("{type: is-json, nam: x}", "[0].nam: unknown key (expected one of: type, name, value,"),
        ("{type: json-schema, schema: {enum: [a, true]}}",
         "[0].schema.enum[1]: expected a string or a number, got True"),
        ("{type: json-schema, schema: {type: text}}", "[0].schema.type: must be one of: string, number, integer,"),
        ("{type: json-schema, schema: {minimum: 3, maximum: 1}}",
         "[0].schema.maximum: must not be less than minimum (3)"),
        ("{type: json-schema, schema: {items: {minLength: -1}}}",
         "[0].schema.items.minLength: must be 0 or more; got -1"),
    ],
)
def test_assertion_mistakes(tmp_path: Path, assertion: str, message: str) -> None:
    assert assert_error(tmp_path, assertion).startswith(f"probes.yaml:8: modules.basic.cases[0].assert{message}")


ASSERT_BLOCK = "        assert:\n          - {type: is-json}\n"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("    kind: chat\n", "", "probes.yaml:3: modules.basic.kind: required key is missing"),
        ("kind: chat", "kind: embed",
         "probes.yaml:3: modules.basic.kind: must be one of: chat, completion; got 'embed'"),
        (ASSERT_BLOCK, "", "probes.yaml:5: modules.basic.cases[0].assert: required key is missing"),
        (ASSERT_BLOCK, "        assert: []\n", "probes.yaml:7: modules.basic.cases[0].assert: needs at least one"),
        ("    kind: chat\n", "    kind: completion\n    system: be brief\n",
         "probes.yaml:4: modules.basic.system: only for kind chat (a completion has no system prompt)"),
        ("    kind: chat\n", "    kind: chat\n    timeout_seconds: 0\n",
         "probes.yaml:4: modules.basic.timeout_seconds: must be a number of seconds greater than 0 and at most 300"),
        ("    kind: chat\n", "    kind: chat\n    params: {max_tokens: 0}\n",
         "probes.yaml:4: modules.basic.params.max_tokens: must be between 1 and 4096; got 0"),
        ("    kind: chat\n", "    kind: chat\n    params: {stop: [a, b, c, d, e]}\n",
         "probes.yaml:4: modules.basic.params.stop: at most 4 stop sequences; got 5"),
        ("    kind: chat\n", "    kind: chat\n    params: {stop: [a, '']}\n",
         "probes.yaml:4: modules.basic.params.stop[1]: must not be empty"),
        ("    kind: chat\n", "    kind: chat\n    params: {temperature: 3}\n",
         "probes.yaml:4: modules.basic.params.temperature: must be between 0 and 2; got 3.0"),
        ("name: capital", "name: Capital-City",
         "probes.yaml:5: modules.basic.cases[0].name: "
         "must be 1 to 64 characters of a-z, 0-9 and _; got 'Capital-City'"),
        ("        prompt: What is the capital of France?\n", "        prompt: ''\n",
         "probes.yaml:6: modules.basic.cases[0].prompt: must not be empty"),
        ("  basic:", "  Basic:",
         "probes.yaml:2: modules.Basic: must be 1 to 64 characters of a-z, 0-9, _ and -; got 'Basic'"),
        ("    kind: chat\n", "    kind: chat\n    temperature: 0\n",
         "probes.yaml:4: modules.basic.temperature: unknown key (expected one of: "
         "kind, cases, model, timeout_seconds,"),
    ],
)
def test_module_mistakes(tmp_path: Path, old: str, new: str, message: str) -> None:
    text = ONE_CASE.format(asserts="          - {type: is-json}")
    assert old in text
    assert error_of(tmp_path, text.replace(old, new)).startswith(message)


def test_case_limit(tmp_path: Path) -> None:
    cases = "".join(f"      - {{name: c{i}, prompt: p, assert: [{{type: is-json}}]}}\n" for i in range(MAX_CASES + 1))
    text = f"modules:\n  basic:\n    kind: chat\n    cases:\n{cases}"
    expected = f"probes.yaml:5: modules.basic.cases: must have 1 to {MAX_CASES} cases; got {MAX_CASES + 1}"
    assert error_of(tmp_path, text) == expected


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_modules(tmp_path / "absent.yaml")
