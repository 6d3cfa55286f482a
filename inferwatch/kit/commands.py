"""CLI conventions every `inferwatch` command follows.

- A command is a module with `HELP`, `add_arguments(parser)` and `run(args, config) -> int`, and
  imports its heavy dependencies inside `run`, so `--help` works on a bare install.
- Exit codes: 0 done, 1 the action failed, 2 usage, config error or missing extra.
- Errors go to stderr as one line, `inferwatch: ...` (raise `CommandError`).
- `-c/--config` and `--log-level` are accepted before or after the (sub)command.
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Callable

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
LOG_LEVELS = ("debug", "info", "warning", "error")


class CommandError(Exception):
    """A failure the user can act on: printed as `inferwatch: <message>`, exit `code`."""

    def __init__(self, message: str, code: int = EXIT_FAILED):
        super().__init__(message)
        self.code = code


def global_flags() -> argparse.ArgumentParser:
    """The flags every parser level accepts. SUPPRESS keeps a later level from resetting an earlier one."""
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument("-c", "--config", default=argparse.SUPPRESS,
                       help="path to inferwatch.yaml (default: $INFERWATCH_CONFIG, else built-in defaults)")
    flags.add_argument("--log-level", choices=LOG_LEVELS, default=argparse.SUPPRESS, help="default: info")
    return flags


def add_actions(parser: argparse.ArgumentParser) -> Callable[..., argparse.ArgumentParser]:
    """Sub-actions of a command (`engine up`, `rules render`): each gets the global flags too.

    The chosen action is `args.action`; the command's `run` calls it.
    """
    actions = parser.add_subparsers(title="actions", metavar="ACTION", required=True)

    def add(name: str, help: str, run: Callable, description: str | None = None) -> argparse.ArgumentParser:
        action = actions.add_parser(name, help=help, description=description or help, parents=[global_flags()])
        action.set_defaults(action=run)
        return action

    return add


def wait_for_signal(cleanup: Callable[[], None], timeout: float | None = None) -> None:
    """Block until SIGINT/SIGTERM (or `timeout`), then run `cleanup` once."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        stop.wait(timeout)
    finally:
        cleanup()


def serve_until_signal(start: Callable[[], object], address: str, port: int) -> int:
    """Start an exporter, serve until SIGINT/SIGTERM; a busy port is a one-line error."""
    try:
        running = start()
    except OSError as exc:
        raise CommandError(f"cannot listen on {address}:{port}: {exc.strerror or exc}") from None
    wait_for_signal(running.stop)  # type: ignore[attr-defined]
    return EXIT_OK
