"""CLI conventions every `inferwatch` command follows.

- A command is a module with `HELP`, `add_arguments(parser)` and `run(args, config) -> int`, and
  imports its heavy dependencies inside `run`, so `--help` works on a bare install.
- Exit codes: 0 done, 1 the action failed, 2 usage, config error or missing extra.
- Errors go to stderr as one line, `inferwatch: ...` (raise `CommandError`).
- `-c/--config` and `--log-level` are accepted before or after the (sub)command.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

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
    flags.add_argument("--log-format", choices=("text", "json"), default=argparse.SUPPRESS,
                       help="json: one Elastic Common Schema object per line (default: logging.format, else text)")
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


def add_listen_arguments(parser: argparse.ArgumentParser, section: str, default_port: int) -> None:
    """--port, --listen-address, --web.listen-address and --web.config.file, the same in every server."""
    parser.add_argument("--port", type=int, help=f"listen port (overrides {section}.port, default {default_port})")
    parser.add_argument("--listen-address", help=f"listen address (overrides {section}.listen_address)")
    parser.add_argument("--web.listen-address", dest="web_listen_address", metavar="[HOST]:PORT",
                        help=f"address and port in one, as Prometheus exporters spell it (e.g. :{default_port})")
    parser.add_argument("--web.config.file", dest="web_config_file", metavar="FILE",
                        help="TLS and basic auth, in Prometheus' web-config format")


def listen_overrides(args: argparse.Namespace, *keys: str) -> dict[str, Any]:
    """The flags that were given (`keys` plus the listen flags), as section fields: flags win over the file."""
    values = {key: getattr(args, key) for key in ("port", "listen_address", "web_config_file", *keys)
              if getattr(args, key, None) is not None}
    if getattr(args, "web_listen_address", None):
        host, sep, port = args.web_listen_address.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise CommandError(f"--web.listen-address must be [HOST]:PORT; got {args.web_listen_address!r}",
                               EXIT_USAGE)
        values.update(port=int(port), listen_address=host.strip("[]") or "0.0.0.0")
    return values


def checked_section(section: Any, name: str, values: dict[str, Any]) -> Any:
    """`section` with `values` replaced, checked by the file's rules (CommandError naming `name.key`)."""
    section = dataclasses.replace(section, **values)
    problem = section.check()
    if problem is not None:
        raise CommandError(f"{name}.{problem[0]}: {problem[1]}", EXIT_USAGE)
    return section


SIGNAL_POLL_SECONDS = 0.2  # how soon a signal delivered to another thread is acted on


class Signals:
    """SIGINT/SIGTERM (stop) and optionally SIGHUP (reload) as events, installed before anything starts
    so that a signal sent the moment a port opens is never handled by the default action."""

    def __init__(self, hangup: bool = False):
        self.stop, self.hangup = threading.Event(), threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.stop.set())
        if hangup:
            signal.signal(signal.SIGHUP, lambda *_: (self.hangup.set(), self.stop.set()))

    def wait(self, cleanup: Callable[[], None], timeout: float | None = None,
             on_hangup: Callable[[], None] | None = None) -> None:
        """Block until stopped (or `timeout`), running `on_hangup` in this thread on each SIGHUP; then `cleanup`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                # Short waits, never an unbounded one: the kernel may deliver the signal to a worker
                # thread, and Python runs its handler only when the main thread is back in the
                # interpreter, which an endless lock wait never is.
                while not self.stop.is_set():
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return  # timed out
                    self.stop.wait(SIGNAL_POLL_SECONDS if left is None else min(SIGNAL_POLL_SECONDS, left))
                if not self.hangup.is_set():
                    return  # SIGINT/SIGTERM
                self.hangup.clear()
                self.stop.clear()
                if on_hangup is not None:
                    on_hangup()
        finally:
            cleanup()


def wait_for_signal(cleanup: Callable[[], None], timeout: float | None = None) -> None:
    """Block until SIGINT/SIGTERM (or `timeout`), then run `cleanup` once."""
    Signals().wait(cleanup, timeout)


def serve_until_signal(start: Callable[[], object], address: str, port: int,
                       reload: Callable[[object], None] | None = None) -> int:
    """Start an exporter, serve until SIGINT/SIGTERM (SIGHUP: `reload(exporter)`); a busy port is one line."""
    signals = Signals(hangup=reload is not None)
    try:
        running = start()
    except OSError as exc:
        raise CommandError(f"cannot listen on {address}:{port}: {exc.strerror or exc}") from None
    signals.wait(running.stop, on_hangup=(lambda: reload(running)) if reload else None)  # type: ignore[attr-defined]
    return EXIT_OK


def checking_reload(args: argparse.Namespace, section: str,
                    pick: Callable[[Any], Any]) -> Callable[[Any], None]:
    """SIGHUP for a component that cannot swap its collector yet: the file is checked (a bad one sets
    `..._config_last_reload_success 0`), the running config is kept, and the log says a restart applies it."""

    def reload(running: Any) -> None:
        log.warning("%s: reload keeps the running config; restart to apply changes", section)
        reload_section(args, running, pick)

    return reload


def reload_section(args: argparse.Namespace, running: Any, pick: Callable[[Any], Any]) -> Any | None:
    """SIGHUP: the component's section of the re-read config file, or None (kept running as is).

    A bad file is logged and exported as `..._config_last_reload_success 0`; the component keeps
    its current config. Listen address, port and web config need a restart, so they are kept.
    """
    from inferwatch.config import ConfigError, load_config

    metrics = running.collector.self_metrics
    try:
        section = pick(load_config(getattr(args, "config", None)))
    except ConfigError as exc:
        log.error("config reload failed, keeping the running config: %s", exc)
        metrics.config_ok = False
        return None
    current = running.collector.config
    kept = {k: getattr(current, k) for k in ("listen_address", "port", "web_config_file")}
    changed = [k for k, v in kept.items() if getattr(section, k) != v]
    if changed:
        log.warning("config reload: %s need a restart; keeping the running values", ", ".join(changed))
    log.info("config reloaded")
    return dataclasses.replace(section, **kept)
