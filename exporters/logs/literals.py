"""The literal words a regex cannot match without: the cheap gate in front of the rules.

`required_literals(regex)` returns strings such that every match of the regex contains at
least one of them (or None when that cannot be said, e.g. a case-insensitive group). Testing
`word in line` for a few dozen words is several times cheaper in CPython than one search with
an alternation of every rule, so INFO lines (nearly all of a log) skip the rules entirely.
"""

from __future__ import annotations

import re
from re import _constants as C
from re import _parser as parser

MIN_LITERAL = 3  # shorter words match too many lines to be worth a gate


def required_literals(regex: str) -> set[str] | None:
    try:
        parsed = parser.parse(regex)
    except re.error:
        return None
    if parsed.state.flags & re.IGNORECASE:
        return None
    return _sequence(list(parsed))


def _sequence(items: list) -> set[str] | None:
    """The best requirement of a sequence: its longest literal run, else a determinable group."""
    best_run, run = "", []
    groups: list[set[str]] = []
    for op, av in [*items, (None, None)]:
        if op is C.LITERAL:
            run.append(chr(av))
            continue
        if len("".join(run)) > len(best_run):
            best_run = "".join(run)
        run = []
        found = _item(op, av)
        if found:
            groups.append(found)
    candidates = ([{best_run}] if len(best_run) >= MIN_LITERAL else []) + groups
    if not candidates:
        return None
    return max(candidates, key=lambda s: min(len(w) for w in s))


def _item(op, av) -> set[str] | None:
    if op is C.BRANCH:
        union: set[str] = set()
        for branch in av[1]:
            found = _sequence(list(branch))
            if not found:
                return None
            union |= found
        return union
    if op is C.SUBPATTERN:
        _group, add_flags, _del_flags, body = av
        return None if add_flags & re.IGNORECASE else _sequence(list(body))
    if op in (C.MAX_REPEAT, C.MIN_REPEAT, C.POSSESSIVE_REPEAT):
        low, _high, body = av
        return _sequence(list(body)) if low >= 1 else None
    if op is C.ATOMIC_GROUP:
        return _sequence(list(av))
    return None
