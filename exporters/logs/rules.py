"""Engine log lines -> error classes, through rule tables kept as data (YAML, one file per engine).

A rule file is validated by the one config loader, so a mistake reads
`file:line: rules[3].regex: ...`. YAML key `class_name` holds the class (`class` is a Python
keyword, and the loader maps YAML keys to dataclass fields one to one).

Speed: each rule's regex is searched only when the line contains one of the literal words every
match of it must contain (derived from the regex by `literals.py`; a rule with none, e.g. a
case-insensitive one, is always searched). A line with none of the words (nearly every INFO
line) costs a few dozen substring tests plus an anchored level match. Rules may not use
backreferences, named groups or global inline flags (checked), so they could also be joined
into one alternation, and the first match wins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources

from inferwatch.config import LOG_ENGINES, Problem, load_section, parse_config
from inferwatch.exporters.logs import privacy
from inferwatch.exporters.logs.literals import required_literals

CLASSES: tuple[str, ...] = (
    "oom_gpu", "oom_kv_cache", "preemption", "engine_dead", "nccl", "cuda_error",
    "request_rejected", "tokenizer", "timeout", "http_5xx", "other_error",
)
SEVERITIES = ("critical", "error", "warning", "info")
# The data folder `rules/` beside this module (not a package: `rules/__init__.py` would shadow rules.py).
RULES_PACKAGE, RULES_FOLDER = "inferwatch.exporters.logs", "rules"
MAX_RULES = 500
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_UNSUPPORTED = re.compile(r"\\[1-9]|\(\?P[<=]")  # backreferences, named groups: break the combined gate

# The level word of the log formats the shipped engines use, anchored at the start:
# `(APIServer pid=1) ERROR 12-02 ...`, `ERROR 12-02 ...`, `ERROR:    Exception in ASGI application`,
# `2023-08-17T10:23:27.032737Z ERROR text_generation_launcher: ...`, `sglang-1  | ...` (compose).
_LEVEL = re.compile(
    r"(?:[\w.-]+\s+\|\s)?\s*(?:\([^()]{0,80}\)\s)?(?:\d{4}-\d\d-\d\d[T ][\d:.,]+Z?\s+)?"
    r"(DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL)\b"
)
_JSON_LEVEL = re.compile(r'"level":\s*"(ERROR|CRITICAL|FATAL)"')
_FALLBACK_SEVERITY = {"ERROR": "error", "CRITICAL": "critical", "FATAL": "critical"}
# What follows the level: vLLM's `12-02 13:05:01 [engine.py:123] `, TGI's `target: `.
_AFTER_LEVEL = re.compile(r"(?::?\s+\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? \[[^\]]*\] | [\w:-]+: )?")


@dataclass(frozen=True)
class Rule:
    name: str
    klass: str
    severity: str
    regex: str
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pattern", re.compile(self.regex))


@dataclass(frozen=True)
class Verdict:
    klass: str
    severity: str
    rule: str  # the rule's name, or "level" for an unmatched ERROR/CRITICAL line


@dataclass
class RuleEntry:
    """One rule as written in YAML."""

    name: str
    class_name: str
    severity: str
    regex: str

    def check(self) -> Problem:
        if not _NAME.fullmatch(self.name):
            return "name", f"must be 1 to 64 characters of a-z, 0-9, _ and -; got {self.name!r:.80}"
        if self.class_name not in CLASSES:
            return "class_name", f"must be one of {', '.join(CLASSES)}; got {self.class_name!r:.80}"
        if self.severity not in SEVERITIES:
            return "severity", f"must be one of {', '.join(SEVERITIES)}; got {self.severity!r:.80}"
        return _check_regex(self.regex)

    def rule(self) -> Rule:
        return Rule(self.name, self.class_name, self.severity, self.regex)


def _check_regex(regex: str) -> Problem:
    if not regex:
        return "regex", "must not be empty"
    try:
        pattern = re.compile(regex)
        re.compile(f"x|(?:{regex})")  # a global flag such as (?i) is only valid at the very start
    except re.error as exc:
        return "regex", f"not a valid regular expression ({exc}): {regex!r:.80}"
    if _UNSUPPORTED.search(regex):
        return "regex", "backreferences and named groups are not supported (rules are combined into one search)"
    if pattern.search(""):
        return "regex", "matches the empty string, so it would match every line"
    return None


@dataclass
class RuleFile:
    """A rule file: `rules:` is a list of {name, class_name, severity, regex}, tried in order."""

    rules: list[RuleEntry] = field(default_factory=list)

    def check(self) -> Problem:
        if len(self.rules) > MAX_RULES:
            return "rules", f"at most {MAX_RULES} rules; got {len(self.rules)}"
        first: dict[str, int] = {}
        for i, entry in enumerate(self.rules):
            if entry.name in first:
                return f"rules[{i}].name", f"duplicate name {entry.name!r} (also rules[{first[entry.name]}])"
            first[entry.name] = i
        return None


def load_rule_file(path: str) -> list[Rule]:
    """A user's rule file, validated (raises inferwatch.config.ConfigError)."""
    return [entry.rule() for entry in load_section(path, RuleFile).rules]


def shipped_rules(engine: str) -> list[Rule]:
    """The engine's rule table as installed (never read from a checkout path)."""
    if engine not in LOG_ENGINES:
        raise ValueError(f"unknown engine {engine!r}; shipped rule sets: {', '.join(LOG_ENGINES)}")
    name = f"{engine}.yaml"
    text = resources.files(RULES_PACKAGE).joinpath(RULES_FOLDER, name).read_text(encoding="utf-8")
    return [entry.rule() for entry in parse_config(text, name, RuleFile).rules]


def level_of(line: str) -> str | None:
    """The line's log level word (`ERROR`, `INFO`, ...) when its format has one at the start."""
    match = _LEVEL.match(line)
    if match:
        return match.group(1)
    match = _JSON_LEVEL.search(line, 0, 200)
    return match.group(1) if match else None


def is_traceback_body(line: str) -> bool:
    """A frame, source or caret line of a traceback: the exception line below it is what counts.

    vLLM prefixes every traceback line with the level (`ERROR ... [core.py:398]     raise x`), so
    without this one exception would count thirty times, and a source line such as
    `raise EngineDeadError()` would look like the error itself.
    """
    match = _LEVEL.match(line)
    start = _AFTER_LEVEL.match(line, match.end()).end() if match else 0
    message = line[start:]
    if message.startswith(("  ", "\t", "Traceback (most recent call last)")):
        return True
    stripped = message.strip()
    return bool(stripped) and not stripped.strip("^~ ")


class Classifier:
    """Rules tried in order, first match wins; unmatched ERROR/CRITICAL lines are `other_error`."""

    def __init__(self, rules: list[Rule]):
        self.rules = list(rules)
        # (rule, words any match must contain, or None when the regex itself has to be searched)
        self._checks = [(rule, _gate_words(rule.regex)) for rule in self.rules]

    @classmethod
    def for_engine(cls, engine: str, extra_files: list[str] | tuple[str, ...] = ()) -> Classifier:
        """The user's rule files first (in the order given), then the engine's shipped rules."""
        rules: list[Rule] = []
        for path in extra_files:
            rules.extend(load_rule_file(path))
        return cls(rules + shipped_rules(engine))

    def classify(self, line: str) -> Verdict | None:
        """The line's class, or None for a line not worth counting (INFO, DEBUG, traceback frames).

        Prompt and output text is redacted first, so what a user wrote can never make a line an error.
        """
        if privacy.may_carry_text(line):
            line = privacy.redact(line)[0]
        for rule, words in self._checks:
            if words is not None:
                for word in words:
                    if word in line:
                        break
                else:
                    continue
            if rule.pattern.search(line):
                return None if is_traceback_body(line) else Verdict(rule.klass, rule.severity, rule.name)
        level = level_of(line)
        if level in _FALLBACK_SEVERITY and not is_traceback_body(line):
            return Verdict("other_error", _FALLBACK_SEVERITY[level], "level")
        return None


def _gate_words(regex: str) -> tuple[str, ...] | None:
    words = required_literals(regex)
    return tuple(sorted(words, key=len, reverse=True)) if words else None
