"""The audit trail of remediation: one JSON object per decision, appended and fsynced before moving on.

An operator asking "what did the robot do at 03:12?" must get an answer that survives a crash, so
each record is on disk (fsync) before the next. Records hold alert identity (name, fingerprint,
labels, times), the decision and the exact rendered request or argv (secret headers redacted),
never anything from prompts or responses (alerts carry none). Without a file, records go to the
log at INFO.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any

log = logging.getLogger(__name__)


class AuditLog:
    def __init__(self, path: str | None):
        self.path = path
        self._lock = threading.Lock()
        self._fd: int | None = None
        if path:
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def write(self, record: dict[str, Any]) -> None:
        """Append one record; OSError if the file cannot take it (the caller counts it)."""
        line = json.dumps({"time": round(time.time(), 3), **record}, sort_keys=True, separators=(",", ":"),
                          default=str)
        if self._fd is None:
            log.info("audit %s", line)
            return
        data = (line + "\n").encode()
        with self._lock:
            written = 0
            while written < len(data):
                written += os.write(self._fd, data[written:])
            os.fsync(self._fd)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
