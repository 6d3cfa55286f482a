"""Negatively rated requests on disk, for retraining and evaluation: ids and labels, never text.

JSON Lines in segment files `negative-<replica>-<start ms>.jsonl` under `store_dir`. A segment is
closed after an hour or an eighth of `store_max_bytes`; closed segments beyond the size bound or
older than the retention are deleted, oldest first. Each replica writes and prunes only its own
segments (a shared volume is fine); `export` reads every replica's. A batch is written and
flushed before the request is answered.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SEGMENT = re.compile(r"negative-(?P<replica>[A-Za-z0-9_.-]{1,80})-(?P<start>\d{13})\.jsonl")
SEGMENT_SECONDS = 3600.0


@dataclass(frozen=True)
class Record:
    time: float  # when the rated request was served (else when the feedback arrived)
    received: float
    request_id: str
    model_name: str
    version: str
    score: str
    value: bool | float | str

    def line(self) -> bytes:
        return json.dumps(self.__dict__, separators=(",", ":")).encode() + b"\n"


@dataclass
class StoreStats:
    records_written: int = 0
    segments_deleted: int = 0
    write_errors: int = 0


class NegativeStore:
    def __init__(self, directory: str, max_bytes: int, retention_seconds: float, replica: str | None = None):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes, self.retention = max_bytes, retention_seconds
        self.replica = re.sub(r"[^A-Za-z0-9_.-]", "_", replica or f"{socket.gethostname()}_{os.getpid()}")[:80]
        self.stats = StoreStats()
        self._lock = threading.Lock()
        self._handle = None
        self._segment: Path | None = None
        self._opened = 0.0

    def append(self, records: list[Record]) -> None:
        """Write a batch; OSError goes to the caller (the request then fails: nothing silently lost)."""
        if not records:
            return
        data = b"".join(r.line() for r in records)
        with self._lock:
            try:
                handle = self._current(len(data))
                handle.write(data)
                handle.flush()
            except OSError:
                self.stats.write_errors += 1
                self._close()
                raise
            self.stats.records_written += len(records)

    def _current(self, incoming: int):
        now = time.time()
        if self._handle is not None and (now - self._opened > SEGMENT_SECONDS
                                         or self._handle.tell() + incoming > self.max_bytes // 8):
            self._close()
        if self._handle is None:
            self._prune(now)
            self._segment = self.directory / f"negative-{self.replica}-{int(now * 1000):013d}.jsonl"
            self._handle = open(self._segment, "ab")  # noqa: SIM115 - held open across batches
            self._opened = now
        return self._handle

    def _close(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):
                self._handle.close()
        self._handle = None

    def _prune(self, now: float) -> None:
        """Delete this replica's closed segments beyond the bounds, oldest first."""
        mine = sorted((p for p in segments(self.directory) if SEGMENT.fullmatch(p.name)["replica"] == self.replica),
                      key=lambda p: p.name)
        sizes = {}
        for path in mine:
            try:
                sizes[path] = path.stat()
            except OSError:
                continue
        total = sum(s.st_size for s in sizes.values())
        for path, stat in sizes.items():
            if total + self.max_bytes // 8 <= self.max_bytes and now - stat.st_mtime <= self.retention:
                continue
            try:
                path.unlink()
            except OSError as exc:
                log.warning("cannot delete old feedback segment %s: %s", path, exc)
                continue
            total -= stat.st_size
            self.stats.segments_deleted += 1

    def bytes_on_disk(self) -> int:
        total = 0
        for path in segments(self.directory):
            with contextlib.suppress(OSError):
                total += path.stat().st_size
        return total

    def close(self) -> None:
        with self._lock:
            self._close()


def segments(directory: Path) -> list[Path]:
    try:
        return sorted((p for p in directory.iterdir() if SEGMENT.fullmatch(p.name)), key=lambda p: p.name)
    except OSError:
        return []


def export(directory: str | Path, model: str | None = None, score: str | None = None, since: float | None = None,
           until: float | None = None, limit: int | None = None) -> Iterator[dict]:
    """Records matching the filters from every replica's segments, oldest segment first; a damaged
    line (a crash mid-write) is skipped."""
    count = 0
    for path in segments(Path(directory)):
        try:
            if since is not None and path.stat().st_mtime < since:
                continue  # nothing in it is newer than its last write
            lines = path.read_bytes().splitlines()
        except OSError:
            continue
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if not isinstance(record, dict):
                continue
            if model is not None and record.get("model_name") != model:
                continue
            if score is not None and record.get("score") != score:
                continue
            when = record.get("time")
            if not isinstance(when, (int, float)):
                continue
            if (since is not None and when < since) or (until is not None and when > until):
                continue
            yield record
            count += 1
            if limit is not None and count >= limit:
                return
