"""Engine log streams: a followed file, a Docker container's log, or stdin, each read on its own thread.

Every source hands complete lines (bytes, cut at `max_line_bytes`) to one callback and reports its
state: `following`, `missing` (no such file or container yet: retried), `unreadable`, `ended` (the
stream closed: stdin at EOF, the container stopped; retried for files and containers). A source
never raises into the exporter: failures are states.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import BinaryIO

from inferwatch.config import LogSourceConfig

log = logging.getLogger(__name__)

STATES = ("following", "missing", "unreadable", "ended")
POLL_SECONDS = 0.25  # how often a followed file is checked for new bytes, rotation or truncation
RETRY_SECONDS = 5.0  # how long a missing or ended source waits before trying again
CHUNK = 1 << 16

OnLine = Callable[[str, bytes, bool], None]  # (source name, line without newline, was cut)
OnState = Callable[[str, str], None]  # (source name, state)


class LineSplitter:
    """Bytes in, complete lines out; a line longer than `limit` keeps its first `limit` bytes (memory is bounded)."""

    def __init__(self, limit: int):
        self.limit, self.buffer, self.cut = limit, bytearray(), False

    def feed(self, data: bytes) -> Iterator[tuple[bytes, bool]]:
        start = 0
        while True:
            end = data.find(b"\n", start)
            piece = data[start:] if end < 0 else data[start:end]
            room = self.limit - len(self.buffer)
            if len(piece) > room:
                self.cut = True
            self.buffer += piece[: max(room, 0)]
            if end < 0:
                return
            yield bytes(self.buffer.rstrip(b"\r")), self.cut
            self.buffer.clear()
            self.cut = False
            start = end + 1


class Source(threading.Thread):
    """One stream on a daemon thread; `stop()` ends it at the next poll."""

    def __init__(self, config: LogSourceConfig, max_line_bytes: int, on_line: OnLine, on_state: OnState,
                 docker_socket: str = ""):
        super().__init__(name=f"log-source-{config.name}", daemon=True)
        self.config, self.max_line_bytes = config, max_line_bytes
        self.on_line, self.on_state, self.docker_socket = on_line, on_state, docker_socket
        self.stopping = threading.Event()

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        try:
            if self.config.file:
                self._follow_file(self.config.file)
            elif self.config.container:
                self._follow_container(self.config.container)
            else:
                self._read_stream(sys.stdin.buffer)
                self.on_state(self.config.name, "ended")
        except Exception as exc:  # a bug here must not kill the exporter: the source reports it
            log.error("log source %s failed: %s", self.config.name, exc, exc_info=True)
            self.on_state(self.config.name, "unreadable")

    def _emit(self, splitter: LineSplitter, data: bytes) -> None:
        for line, cut in splitter.feed(data):
            self.on_line(self.config.name, line, cut)

    def _read_stream(self, stream: BinaryIO) -> None:
        self.on_state(self.config.name, "following")
        splitter = LineSplitter(self.max_line_bytes)
        while not self.stopping.is_set():
            data = stream.read1(CHUNK) if hasattr(stream, "read1") else stream.read(CHUNK)
            if not data:
                return
            self._emit(splitter, data)

    def _follow_file(self, path: str) -> None:
        """`tail -F`: start at the end, reopen on rotation (a new inode), rewind on truncation."""
        handle: BinaryIO | None = None
        inode = None
        splitter = LineSplitter(self.max_line_bytes)
        first = True
        while not self.stopping.is_set():
            if handle is None:
                try:
                    handle = open(path, "rb")  # noqa: SIM115 - held across polls, closed below
                except FileNotFoundError:
                    self.on_state(self.config.name, "missing")
                    self.stopping.wait(RETRY_SECONDS if not first else POLL_SECONDS)
                    continue
                except OSError as exc:
                    log.warning("log source %s: cannot open %s: %s", self.config.name, path, exc.strerror)
                    self.on_state(self.config.name, "unreadable")
                    self.stopping.wait(RETRY_SECONDS)
                    continue
                inode = os.fstat(handle.fileno()).st_ino
                if first:
                    handle.seek(0, os.SEEK_END)  # what was logged before we started is history
                first = False
                self.on_state(self.config.name, "following")
            data = handle.read(CHUNK)
            if data:
                self._emit(splitter, data)
                continue
            try:
                current = os.stat(path)
            except FileNotFoundError:
                current = None
            if current is None or current.st_ino != inode:  # rotated: finish the old file, then the new one
                rest = handle.read()
                if rest:
                    self._emit(splitter, rest)
                handle.close()
                handle, splitter = None, LineSplitter(self.max_line_bytes)
                continue
            if current.st_size < handle.tell():  # truncated in place (copytruncate)
                handle.seek(0)
                splitter = LineSplitter(self.max_line_bytes)
                continue
            self.stopping.wait(POLL_SECONDS)
        if handle is not None:
            handle.close()

    def _follow_container(self, name: str) -> None:
        """The container's log from now on, through the Docker SDK; reconnects after the container restarts."""
        try:
            import docker
        except ImportError:
            log.error("log source %s: containers need the 'docker' extra: pip install 'inferwatch[docker]'",
                      self.config.name)
            self.on_state(self.config.name, "unreadable")
            return
        import time

        since = int(time.time())
        while not self.stopping.is_set():
            try:
                client = docker.DockerClient(base_url=self.docker_socket, timeout=10)
                container = client.containers.get(name)
                self.on_state(self.config.name, "following")
                splitter = LineSplitter(self.max_line_bytes)
                for data in container.logs(stream=True, follow=True, since=since):
                    if self.stopping.is_set():
                        return
                    self._emit(splitter, data)
                since = int(time.time())
                self.on_state(self.config.name, "ended")
            except docker.errors.NotFound:
                self.on_state(self.config.name, "missing")
            except Exception as exc:  # the daemon or its socket: retried
                log.warning("log source %s: docker: %s", self.config.name, exc)
                self.on_state(self.config.name, "unreadable")
            self.stopping.wait(RETRY_SECONDS)
