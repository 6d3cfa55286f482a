"""Alert backtesting: replay the rules over recorded history with promtool's own rule engine.

`history` holds and fetches raw series (a `History`), `replay` runs `promtool test rules` over it
and turns what fires into `Episode`s, `score` compares episodes with known incidents, and
`command` is `inferwatch rules backtest`. Only the standard library and PyYAML: a backtest runs on
a bare install (promtool on PATH), without jsonnet.
"""

from __future__ import annotations


class BacktestError(Exception):
    """A backtest that cannot run or cannot read its input; one line, for `CommandError`."""
