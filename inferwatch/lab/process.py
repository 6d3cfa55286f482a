"""Child processes the lab starts (Prometheus, Alertmanager, vLLM), and the one readiness wait.

Every child gets its own process group and a log file; `stop()` signals the group it started
(never a process found by name), so forked workers go with it, then kills what is left.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class StackError(RuntimeError):
    """A lab process could not be started or did not become ready; the message says why."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.25, what: str = "condition") -> Any:
    """Poll `predicate` until it returns something truthy; raise StackError on timeout.

    Connection errors and bad answers while a server starts are expected: they are retried,
    and the last one is named in the timeout message.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
            if result:
                return result
        except (OSError, urllib.error.URLError, ValueError) as exc:
            last_error = exc
        time.sleep(interval)
    raise StackError(f"timed out after {timeout:.0f} s waiting for {what}" + (f" ({last_error})" if last_error else ""))


def stop_process_group(pgid: int, grace: float = 10.0, leader: subprocess.Popen | None = None) -> None:
    """SIGTERM a process group, then SIGKILL what is left after `grace` seconds.

    Pass our own child as `leader`: it is reaped while we wait, since an unreaped (zombie)
    leader keeps the group "alive" and would cost the whole grace period.
    """
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if leader is not None:
            leader.poll()
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


@dataclass
class ManagedProcess:
    """A child process in its own process group, logging to `<workdir>/<name>.log`."""

    name: str
    args: list[str]
    workdir: Path
    env: dict[str, str] | None = None
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> ManagedProcess:
        if shutil.which(self.args[0]) is None:
            raise StackError(f"{self.args[0]} not found on PATH (install the Debian package)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
                                         env=self.env, start_new_session=True)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        """Wait until `ready()`; fail at once (with the log's tail) if the process exits first."""

        def check() -> bool:
            if not self.alive():
                raise StackError(f"{self.name} exited during start-up; last log lines:\n{self.log_tail()}")
            return ready()

        try:
            wait_until(check, timeout, interval=0.25, what=what)
        except StackError:
            self.stop()
            raise

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, grace: float = 10.0) -> None:
        """Stop the whole process group (forked workers included) and reap the child."""
        if self.proc is None:
            return
        stop_process_group(self.proc.pid, grace, leader=self.proc)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
