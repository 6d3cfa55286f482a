"""A model version from the model directory's content, recomputed only when its files change.

Hashing hundreds of GB every scrape is not an option, so the fingerprint covers every file's
name and size, the whole content of small files (configs, tokenizer) and the first and last MiB
of large ones (weights). A retrained checkpoint changes bytes in both; the cheap stat pass decides
whether to hash again at all.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

CHUNK = 1024 * 1024
MAX_FILES = 10_000


class DirectoryVersion:
    def __init__(self) -> None:
        self._cache: dict[str, tuple[tuple, str]] = {}

    def of(self, directory: str) -> str | None:
        """Short content fingerprint of `directory`, or None when it is not a readable local directory."""
        root = Path(directory)
        if not root.is_dir():
            return None
        try:
            files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))[:MAX_FILES]
            stats = tuple((str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
        except OSError:
            return None
        cached = self._cache.get(directory)
        if cached and cached[0] == stats:
            return cached[1]
        digest = hashlib.sha256()
        try:
            for path, (rel, size, _) in zip(files, stats, strict=True):
                digest.update(f"{rel}\0{size}\0".encode())
                with path.open("rb") as handle:
                    if size <= 2 * CHUNK:
                        digest.update(handle.read())
                    else:
                        digest.update(handle.read(CHUNK))
                        handle.seek(-CHUNK, os.SEEK_END)
                        digest.update(handle.read(CHUNK))
        except OSError:
            return None
        version = digest.hexdigest()[:12]
        self._cache[directory] = (stats, version)
        if len(self._cache) > 64:  # bounded: one entry per configured model directory in practice
            self._cache.pop(next(iter(self._cache)))
        return version
