"""Prompt and output text out of engine log lines, before anything else looks at them.

Engines can log what users send and get: vLLM's request logging (`Received request cmpl-...:
prompt: '...', params: ..., prompt_token_ids: [...]`, `Generated response ...: output: '...'`,
`Request ... JSON body: {...}`), TGI's request spans (`inputs: "..."`). Whatever such a line
holds in those places becomes `<redacted>`; classification and templates only ever see the
redacted line, so a prompt can neither be kept nor make a line look like an error.
"""

from __future__ import annotations

import re

REDACTED = "<redacted>"
# A quoted string as Python's repr or Rust's Debug writes it; a line cut short (max_line_bytes)
# may lose the closing quote, and then the rest of the line is the string.
_SQ = r"'(?:[^'\\]|\\.)*(?:'|$)"
_DQ = r'"(?:[^"\\]|\\.)*(?:"|$)'
_TEXT_KEYS = r"prompt|output|outputs|inputs|input|text|content|completion|response|query|instructions|system_prompt"
_PATTERNS = (
    # `prompt: '...'`, `output: "..."`, `inputs: "..."`, `prompt='...'` (repr, Debug, kwargs)
    re.compile(rf"(\b(?:{_TEXT_KEYS})(?::\s|=))(?:{_SQ}|{_DQ})"),
    # JSON: `"prompt": "..."`, `'content': '...'` (a dict's repr)
    re.compile(rf"""(["'](?:{_TEXT_KEYS})["']\s*:\s*)(?:{_SQ}|{_DQ})"""),
    # token ids of prompts and outputs: `prompt_token_ids: [1, 2]`, `"prompt": [1, 2]`
    re.compile(r"""(\b\w*token_ids["']?(?::\s*|=))\[[^\]]*(?:\]|$)"""),
    re.compile(rf"""(["']?\b(?:{_TEXT_KEYS})["']?\s*(?::\s*|=))\[[\d,\s]*(?:\]|$)"""),
    # chat messages nest arbitrarily: everything from `messages` to the end of the line goes
    re.compile(r"""(["']?\bmessages["']?\s*(?::\s*|=)).*"""),
)
_KEYS = (*tuple(_TEXT_KEYS.split("|")), "messages", "token_ids")
_SUFFIXES = (": ", "=", '":', "':", '" :')  # repr/Debug, kwargs, JSON, a dict's repr


def may_carry_text(line: str) -> bool:
    """A cheap first look (substring tests only): False means the line certainly carries no such text.

    A key must be followed by what introduces a value: vLLM's `Avg prompt throughput: ...` names
    `prompt` but carries none, and is most of a vLLM log.
    """
    for key in _KEYS:
        if key in line:
            for suffix in _SUFFIXES:
                if key + suffix in line:
                    return True
    return False


def redact(line: str) -> tuple[str, bool]:
    """(the line with any prompt/output text replaced by `<redacted>`, whether it carried such text)."""
    if not may_carry_text(line):
        return line, False
    carried = False
    for pattern in _PATTERNS:
        line, count = pattern.subn(rf"\g<1>{REDACTED}", line)
        carried = carried or count > 0
    return line, carried
