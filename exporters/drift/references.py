"""Named drift references on disk: captured distributions and sketches, pinned per model.

    <references_dir>/<name>.json   one reference: {"name", "created", "from", "to",
                                   "histograms": {model: {feature: distribution}},
                                   "samples": {model: sketch}}
    <references_dir>/pins.json     {model: reference name}

Files are written whole (temporary file, fsync, rename), so a crash leaves the old file or the
new one. A file that does not load is an error naming the file and the key; it is never replaced
silently (capture refuses the name unless told to overwrite) and a model pinned to it gets no
score rather than a silent fall-back to last week.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from inferwatch.exporters.drift.histograms import Distribution

NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
PINS = "pins.json"
MAX_REFERENCE_BYTES = 64 << 20
MAX_REFERENCES = 256


class ReferenceError(Exception):
    """A reference that cannot be used: the message names the file and what is wrong."""


@dataclass
class Reference:
    name: str
    created: float
    start: float
    end: float
    histograms: dict[str, dict[str, Distribution]] = field(default_factory=dict)
    samples: dict[str, dict] = field(default_factory=dict)  # model -> WindowSketch.to_json()

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "created": self.created,
            "from": self.start,
            "to": self.end,
            "histograms": {m: {f: d.to_json() for f, d in fs.items()} for m, fs in self.histograms.items()},
            "samples": self.samples,
        }


def check_name(name: str) -> str:
    if not NAME.fullmatch(name) or name in (".", "..") or name == PINS.removesuffix(".json"):
        raise ReferenceError(f"reference name {name[:64]!r}: use 1 to 64 characters of A-Z a-z 0-9 _ . - (not 'pins')")
    return name


class ReferenceStore:
    def __init__(self, directory: str | Path):
        self.directory = Path(directory)

    def path(self, name: str) -> Path:
        return self.directory / f"{check_name(name)}.json"

    def names(self) -> list[str]:
        try:
            return sorted(p.stem for p in self.directory.glob("*.json") if p.name != PINS and NAME.fullmatch(p.stem))
        except OSError:
            return []

    def load(self, name: str) -> Reference:
        path = self.path(name)
        data = _read_json(path)
        try:
            return _reference(data, name)
        except ValueError as exc:
            raise ReferenceError(f"{path}: {exc}") from None

    def save(self, reference: Reference, overwrite: bool = False) -> Path:
        path = self.path(reference.name)
        if path.exists() and not overwrite:
            try:
                self.load(reference.name)
            except ReferenceError as exc:
                raise ReferenceError(f"{exc}; the file is kept: delete it or pass --overwrite") from None
            raise ReferenceError(f"{path}: a reference named {reference.name!r} exists; pass --overwrite")
        if not path.exists() and len(self.names()) >= MAX_REFERENCES:
            raise ReferenceError(f"{self.directory}: {MAX_REFERENCES} references already; delete some first")
        _write_json(path, reference.to_json())
        return path

    def delete(self, name: str) -> None:
        pinned = sorted(m for m, n in self.pins().items() if n == name)
        if pinned:
            raise ReferenceError(f"reference {name!r} is pinned for {', '.join(pinned[:5])}: unpin it first")
        try:
            self.path(name).unlink()
        except FileNotFoundError:
            raise ReferenceError(f"no reference named {name!r} in {self.directory}") from None

    def pins(self) -> dict[str, str]:
        path = self.directory / PINS
        if not path.exists():
            return {}
        data = _read_json(path)
        if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and NAME.fullmatch(v) for k, v in data.items()
        ):
            raise ReferenceError(f"{path}: must map model names to reference names")
        return data

    def pin(self, name: str, models: list[str]) -> None:
        self.load(name)  # only a reference that loads can be pinned
        self._write_pins({**self.pins(), **{model: name for model in models}})

    def unpin(self, models: list[str]) -> list[str]:
        pins = self.pins()
        removed = [m for m in models if pins.pop(m, None) is not None]
        self._write_pins(pins)
        return removed

    def _write_pins(self, pins: dict[str, str]) -> None:
        _write_json(self.directory / PINS, dict(sorted(pins.items())))

    def signature(self) -> tuple:
        """Changes when any file changes: the exporter reloads references only then."""
        try:
            return tuple(
                sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in self.directory.glob("*.json"))
            )
        except OSError:
            return ()


def _read_json(path: Path) -> object:
    try:
        size = path.stat().st_size
        if size > MAX_REFERENCE_BYTES:
            raise ReferenceError(f"{path}: {size} bytes; a reference is at most {MAX_REFERENCE_BYTES}")
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        raise ReferenceError(f"{path}: no such reference") from None
    except OSError as exc:
        raise ReferenceError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise ReferenceError(f"{path}: not valid JSON ({str(exc)[:120]})") from None


def _write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(data, out, separators=(",", ":"))
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _reference(data: object, name: str) -> Reference:
    from inferwatch.exporters.drift.sketch import WindowSketch

    if not isinstance(data, dict):
        raise ValueError("must be a JSON object")
    missing = {"name", "created", "from", "to", "histograms", "samples"} - set(data)
    if missing:
        raise ValueError(f"missing keys: {', '.join(sorted(missing))}")
    if data["name"] != name:
        raise ValueError(f"name: {str(data['name'])[:64]!r} does not match the file name {name!r}")
    for key in ("created", "from", "to"):
        if not isinstance(data[key], (int, float)) or isinstance(data[key], bool):
            raise ValueError(f"{key}: must be unix seconds")
    histograms: dict[str, dict[str, Distribution]] = {}
    if not isinstance(data["histograms"], dict):
        raise ValueError("histograms: must be an object")
    for model, features in data["histograms"].items():
        if not isinstance(features, dict):
            raise ValueError(f"histograms.{model}: must be an object")
        histograms[model] = {f: Distribution.from_json(d, f"histograms.{model}.{f}") for f, d in features.items()}
    if not isinstance(data["samples"], dict):
        raise ValueError("samples: must be an object")
    for model, sketch in data["samples"].items():
        try:
            WindowSketch.from_json(sketch)
        except ValueError as exc:
            raise ValueError(f"samples.{model}.{exc}") from None
    return Reference(
        name, float(data["created"]), float(data["from"]), float(data["to"]), histograms, dict(data["samples"])
    )

