"""A model version from the model directory's content: only where allowed, off the scrape path.

An engine reports where it loaded its model from (`root` in /v1/models). Hashing whatever path a
peer names would let it make the exporter walk `/usr` or read a file that never ends, so only
directories the operator allowed are fingerprinted (an endpoint's configured `model_dir`, or a
reported root under `engine_exporter.model_dirs_allowed`; default: none).

The fingerprint covers every regular file's name and size, the whole content of small files
(configs, tokenizer) and the first and last MiB of large ones (weights), reading no more than a
file's own size (so /proc files read nothing). Work happens on a small worker pool with a time
budget; a scrape waits for it at most `wait_seconds` and otherwise reports the last known value,
or says the first fingerprint is `pending` (the caller then reports no new version yet, rather
than a stand-in that would count as a deploy when the real fingerprint arrives).
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import stat
import threading
import time
from pathlib import Path

from inferwatch.kit.workers import DaemonExecutor

CHUNK = 1024 * 1024
MAX_FILES = 10_000
BUDGET_SECONDS = 30.0


class DirectoryVersion:
    def __init__(self, allowed: list[str] | None = None, wait_seconds: float = 0.2,
                 budget_seconds: float = BUDGET_SECONDS):
        self.allowed = [Path(p).resolve() for p in (allowed or [])]
        self.wait_seconds, self.budget = wait_seconds, budget_seconds
        self._pool = DaemonExecutor(2, "model-hash")  # a read that never returns must not block exit
        self._lock = threading.Lock()
        self._known: dict[str, tuple[tuple, str]] = {}  # directory -> (stat key, version)
        self._running: dict[str, concurrent.futures.Future] = {}
        self.timeouts = 0  # fingerprints abandoned at the time budget
        self._tried: dict[str, None] = {}  # directories with a finished attempt (an ordered set, bounded)

    def allows(self, directory: str, configured: bool = False) -> bool:
        if configured:
            return True
        try:
            real = Path(directory).resolve()
        except (OSError, RuntimeError, ValueError):
            return False
        return any(real == root or real.is_relative_to(root) for root in self.allowed)

    def of(self, directory: str) -> str | None:
        """The directory's fingerprint, as fresh as `wait_seconds` allows; None if never computed."""
        return self.lookup(directory)[0]

    def lookup(self, directory: str) -> tuple[str | None, bool]:
        """(`of`, pending): pending while the directory's first fingerprint is still being computed,
        decided at the same moment as the answer (a later check could see it land in between)."""
        with self._lock:
            future = self._running.get(directory)
            if future is None or future.done():
                future = self._running[directory] = self._pool.submit(self._compute, directory)
        try:
            return future.result(timeout=self.wait_seconds), False
        except concurrent.futures.TimeoutError:
            with self._lock:
                known, tried = self._known.get(directory), directory in self._tried
            return (known[1] if known else None), known is None and not tried

    def close(self) -> None:
        self._pool.shutdown()

    def _compute(self, directory: str) -> str | None:
        try:
            return self._fingerprint(directory)
        finally:
            with self._lock:
                self._tried[directory] = None
                while len(self._tried) > 64:
                    self._tried.pop(next(iter(self._tried)))

    def _fingerprint(self, directory: str) -> str | None:
        deadline = time.monotonic() + self.budget
        files = _regular_files(Path(directory), deadline)
        if files is None:
            if time.monotonic() > deadline:
                self.timeouts += 1
            return None
        key = tuple((rel, size, mtime) for _, rel, size, mtime in files)
        with self._lock:
            known = self._known.get(directory)
        if known and known[0] == key:
            return known[1]
        digest = hashlib.sha256()
        for path, rel, size, _ in files:
            if time.monotonic() > deadline:
                self.timeouts += 1
                return None
            digest.update(f"{rel}\0{size}\0".encode())
            try:
                digest.update(_sample(path, size))
            except OSError:  # unreadable: its name and size still count
                digest.update(b"\0unreadable\0")
        version = digest.hexdigest()[:12]
        with self._lock:
            self._known[directory] = (key, version)
            while len(self._known) > 64:  # bounded: one entry per model directory in practice
                self._known.pop(next(iter(self._known)))
        return version


def _regular_files(root: Path, deadline: float) -> list[tuple[Path, str, int, int]] | None:
    """(path, relative name, size, mtime) of regular files under `root`, capped; None if unreadable."""
    if not root.is_dir():
        return None
    found: list[tuple[Path, str, int, int]] = []
    try:
        for dirpath, dirnames, filenames in os.walk(root):  # does not follow directory symlinks
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if time.monotonic() > deadline or len(found) >= MAX_FILES:
                    return None if time.monotonic() > deadline else found
                if name.startswith("."):
                    continue
                path = Path(dirpath) / name
                try:
                    info = path.stat()  # follows file symlinks (Hugging Face snapshots are links to blobs)
                except OSError:
                    continue
                if stat.S_ISREG(info.st_mode):  # never a FIFO, device or socket
                    found.append((path, str(path.relative_to(root)), info.st_size, info.st_mtime_ns))
    except OSError:
        return None
    return found


def _sample(path: Path, size: int) -> bytes:
    """Whole small files, head and tail of large ones; never more than the file says it holds."""
    with path.open("rb") as handle:
        if size <= 2 * CHUNK:
            return handle.read(size)
        head = handle.read(CHUNK)
        handle.seek(size - CHUNK)
        return head + handle.read(CHUNK)
