"""The restricted template language of remediation actions: a closed set of `{placeholders}`.

Alert labels come from whatever Prometheus scraped, so an action template must not be a way to run
code or reach arbitrary data. Only `{alertname}`, `{status}`, `{fingerprint}`, `{group_key}`,
`{labels.<name>}` and `{annotations.<name>}` are substituted; any other `{word}` is refused when
the config loads. Braces that do not open a placeholder (a JSON body's `{"a": 1}`) are literal.
How a value is inserted depends on where it goes (`escape`): percent-encoded into URLs, as JSON
string content into bodies, refused with CR/LF in headers, and as one argv element that must not
start with '-' in commands. This module imports nothing from inferwatch (the config uses it).
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Mapping
from typing import Literal

Context = Literal["url", "argv", "header", "body", "plain"]
SIMPLE = ("alertname", "status", "fingerprint", "group_key")
MAPS = ("labels", "annotations")
PLACEHOLDER = re.compile(r"\{([A-Za-z_]\w*(?:\.[^{}\s\"']*)?)\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class RenderError(Exception):
    """A template could not be rendered safely for this alert: the action fails with `reason`."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def unknown_placeholder(template: str) -> str | None:
    """The first placeholder outside the allowed set (as written, with braces), or None."""
    for match in PLACEHOLDER.finditer(template):
        head, dot, name = match.group(1).partition(".")
        if dot and head in MAPS and _NAME.match(name):
            continue
        if not dot and head in SIMPLE:
            continue
        return match.group(0)
    return None


def placeholders(template: str) -> list[str]:
    return [m.group(1) for m in PLACEHOLDER.finditer(template)]


def blank(template: str, filler: str = "x") -> str:
    """The template with every placeholder replaced by `filler`: what config checks look at."""
    return PLACEHOLDER.sub(filler, template)


def lookup(path: str, values: Mapping[str, object]) -> str:
    head, dot, name = path.partition(".")
    value = values.get(head)
    if dot:
        value = value.get(name) if isinstance(value, Mapping) else None
    if not isinstance(value, str) or value == "":
        raise RenderError("missing_value", f"{{{path}}} has no value in this alert")
    return value


def escape(value: str, context: Context, path: str) -> str:
    if "\x00" in value:
        raise RenderError("bad_value", f"{{{path}}} contains a NUL character")
    if context == "url":
        return urllib.parse.quote(value, safe="")
    if context == "body":
        return json.dumps(value)[1:-1]
    if context == "header" and ("\r" in value or "\n" in value):
        raise RenderError("bad_value", f"{{{path}}} contains a line break (header injection)")
    if context == "argv" and value.startswith("-"):
        raise RenderError("injected_flag", f"{{{path}}} starts with '-' and would be read as a flag: refused")
    return value


def render(template: str, values: Mapping[str, object], context: Context) -> str:
    """`template` with its placeholders filled from `values` (keys: SIMPLE names and MAPS), or RenderError."""
    return PLACEHOLDER.sub(lambda m: escape(lookup(m.group(1), values), context, m.group(1)), template)
