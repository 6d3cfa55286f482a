"""Score alert episodes against known incidents: detection delay, missed incidents, false episodes.

An incidents file is a YAML list; each entry names the model, the kind of fault, when it started
and ended, and optionally which alerts should (`expect`) and must not (`forbid`) fire for it,
as regular expressions over alert names (full match):

    - model: llama-3-8b
      kind: latency_regression
      start: 2024-05-06T14:00:00Z      # RFC 3339, or unix seconds
      end: 2024-05-06T15:00:00Z
      expect: LLMTimeToFirstToken.*
      forbid: LLMEngineTargetDown

Rules of the score (an episode's model is its `model_name` label; an episode without one, such
as a target-down alert that knows only job and instance, may belong to any model):

- an incident is detected by the first episode of an `expect`-matching alert (any alert when
  `expect` is not given) for its model that overlaps `[start, end]`; the delay is from the
  incident's start to that episode's start (0 when the alert was already firing);
- a forbid violation is a `forbid`-matching alert with an episode for the model overlapping
  `[start, end]`;
- a false episode overlaps no incident window `[start, end + grace]` of its model.
"""

from __future__ import annotations

import datetime
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from inferwatch.backtest.history import iso
from inferwatch.backtest.replay import Episode
from inferwatch.config import ConfigError, read_config_text

_FIELDS = ("model", "kind", "start", "end", "expect", "forbid")
_REQUIRED = ("model", "kind", "start", "end")


@dataclass
class Incident:
    model: str
    kind: str
    start: float
    end: float
    expect: str | None = None  # regular expression over alert names (fullmatch)
    forbid: str | None = None


def parse_time(text: str) -> float:
    """RFC 3339 (`2024-05-06T14:00:00Z`, an offset, or a date) or unix seconds -> unix seconds (ValueError)."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(value):
            raise ValueError(f"not a time: {text!r}")
        return value
    try:
        moment = datetime.datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise ValueError(f"not an RFC 3339 time or unix seconds: {text[:80]!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)  # a bare date or time means UTC
    return moment.timestamp()


def load_incidents(path: str | Path) -> list[Incident]:
    """The incidents of a YAML file; any problem is a ConfigError `file:line: [i].key: message`."""
    name = str(path)
    text = read_config_text(path)
    try:
        root = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise ConfigError(name, mark.line + 1 if mark else None, "",
                          f"invalid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(name, None, "", f"invalid YAML: {str(exc)[:120]}") from None
    if root is None:
        return []
    if not isinstance(root, yaml.SequenceNode):
        raise ConfigError(name, root.start_mark.line + 1, "", "expected a list of incidents")
    incidents = []
    for i, node in enumerate(root.value):
        incidents.append(_incident(name, node, f"[{i}]"))
    return incidents


def _incident(file: str, node: yaml.Node, key: str) -> Incident:
    def error(at: yaml.Node, sub: str, message: str) -> ConfigError:
        return ConfigError(file, at.start_mark.line + 1, f"{key}.{sub}" if sub else key, message)

    if not isinstance(node, yaml.MappingNode):
        raise error(node, "", "expected a mapping with model, kind, start and end")
    values: dict[str, Any] = {}
    nodes: dict[str, yaml.Node] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise error(key_node, "", "keys must be plain strings")
        field_name = key_node.value
        if field_name not in _FIELDS:
            raise error(key_node, field_name, f"unknown key (expected one of: {', '.join(_FIELDS)})")
        if field_name in values:
            first = nodes[field_name].start_mark.line + 1
            raise error(key_node, field_name, f"duplicate key (first given on line {first})")
        if not isinstance(value_node, yaml.ScalarNode) or not value_node.value.strip():
            raise error(value_node, field_name, "expected a non-empty value")
        text = value_node.value
        if field_name in ("start", "end"):
            try:
                values[field_name] = parse_time(text)
            except ValueError as exc:
                raise error(value_node, field_name, str(exc)) from None
        elif field_name in ("expect", "forbid"):
            try:
                re.compile(text)
            except re.error as exc:
                raise error(value_node, field_name, f"not a regular expression: {exc}") from None
            values[field_name] = text
        else:
            values[field_name] = text
        nodes[field_name] = value_node
    for required in _REQUIRED:
        if required not in values:
            raise error(node, required, "required key is missing")
    if values["end"] < values["start"]:
        raise error(nodes["end"], "end", f"ends before it starts ({iso(values['end'])} < {iso(values['start'])})")
    return Incident(**values)


# -- the score -------------------------------------------------------------------------------------

@dataclass
class AlertStats:
    episodes: int = 0
    false_episodes: int = 0
    firing_minutes: float = 0.0  # summed over label sets
    first_firing: float | None = None  # start of the first episode
    last_firing: float | None = None  # end of the last episode (when the alert stopped firing)


@dataclass
class IncidentResult:
    incident: Incident
    detected: bool
    alert: str | None = None  # the detecting alert
    delay_seconds: float | None = None
    forbid_violations: list[str] = field(default_factory=list)


@dataclass
class Report:
    span: tuple[float, float]
    alerts: dict[str, AlertStats]
    incidents: list[IncidentResult]
    episodes: list[Episode]
    false: set[Episode] = field(default_factory=set)
    scored: bool = True  # False: no incidents given, so nothing is called false

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (times as unix seconds plus RFC 3339)."""
        return {
            "span": {"start": self.span[0], "end": self.span[1], "start_time": iso(self.span[0]),
                     "end_time": iso(self.span[1])},
            "scored": self.scored,
            "alerts": {name: {"episodes": s.episodes, "false_episodes": s.false_episodes if self.scored else None,
                              "firing_minutes": round(s.firing_minutes, 3), "first_firing": s.first_firing,
                              "last_firing": s.last_firing,
                              "first_firing_time": None if s.first_firing is None else iso(s.first_firing),
                              "last_firing_time": None if s.last_firing is None else iso(s.last_firing)}
                       for name, s in sorted(self.alerts.items())},
            "incidents": [{"model": r.incident.model, "kind": r.incident.kind, "start": r.incident.start,
                           "end": r.incident.end, "expect": r.incident.expect, "forbid": r.incident.forbid,
                           "detected": r.detected, "alert": r.alert, "delay_seconds": r.delay_seconds,
                           "forbid_violations": r.forbid_violations} for r in self.incidents],
            "episodes": [{"alertname": e.alertname, "labels": dict(e.labels), "start": e.start, "end": e.end,
                          "start_time": iso(e.start), "end_time": iso(e.end),
                          "false": (e in self.false) if self.scored else None}
                         for e in self.episodes],
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, sort_keys=False)

    def to_text(self) -> str:
        """Aligned tables: per alert, per incident (when given), then every episode."""
        lines = [f"backtest {iso(self.span[0])} .. {iso(self.span[1])}", ""]
        rows = [("ALERT", "EPISODES", "FALSE", "FIRING_MIN", "FIRST", "LAST")]
        for name, s in sorted(self.alerts.items()):
            rows.append((name, str(s.episodes), str(s.false_episodes) if self.scored else "-",
                         f"{s.firing_minutes:.0f}", _when(s.first_firing), _when(s.last_firing)))
        lines += _table(rows) if len(rows) > 1 else ["no alert fired"]
        if self.incidents:
            rows = [("MODEL", "KIND", "START", "DETECTED", "ALERT", "DELAY", "FORBIDDEN_FIRED")]
            for r in self.incidents:
                rows.append((r.incident.model, r.incident.kind, iso(r.incident.start), "yes" if r.detected else "NO",
                             r.alert or "-", _minutes(r.delay_seconds), ",".join(r.forbid_violations) or "-"))
            detected = sum(r.detected for r in self.incidents)
            lines += ["", *_table(rows), f"{detected}/{len(self.incidents)} incidents detected, "
                      f"{len(self.false)} false episodes"]
        if self.episodes:
            rows = [("START", "END", "ALERT", "LABELS")]
            for e in self.episodes:
                labels = ",".join(f"{k}={v}" for k, v in e.labels if k not in ("team", "service"))
                rows.append((iso(e.start), iso(e.end), e.alertname + (" (false)" if e in self.false else ""), labels))
            lines += ["", *_table(rows)]
        return "\n".join(lines) + "\n"


def _when(t: float | None) -> str:
    return "-" if t is None else iso(t)


def _minutes(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 60:.0f}m"


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def _for_model(episode: Episode, model: str) -> bool:
    own = episode.label("model_name")
    return own is None or own == model


def _overlaps(episode: Episode, start: float, end: float) -> bool:
    return episode.start <= end and episode.end > start


def score(episodes: Iterable[Episode], incidents: Iterable[Incident] | None, span: tuple[float, float],
          grace_seconds: float = 3600) -> Report:
    """Per alert and per incident numbers (see the module docstring for the rules).

    `incidents=None` (none known, e.g. a user's own Prometheus) counts episodes without calling any false.
    """
    episodes = sorted(episodes, key=lambda e: (e.start, e.alertname, e.labels))
    scored = incidents is not None
    incidents = list(incidents or ())
    alerts: dict[str, AlertStats] = {}
    false: set[Episode] = set()
    for e in episodes:
        stats = alerts.setdefault(e.alertname, AlertStats())
        stats.episodes += 1
        stats.firing_minutes += (e.end - e.start) / 60
        stats.first_firing = e.start if stats.first_firing is None else min(stats.first_firing, e.start)
        stats.last_firing = e.end if stats.last_firing is None else max(stats.last_firing, e.end)
        windows = (_for_model(e, i.model) and _overlaps(e, i.start, i.end + grace_seconds) for i in incidents)
        if scored and not any(windows):
            stats.false_episodes += 1
            false.add(e)
    results = []
    for incident in incidents:
        expect = re.compile(incident.expect or ".*")
        forbid = re.compile(incident.forbid) if incident.forbid else None
        during = [e for e in episodes if _for_model(e, incident.model) and _overlaps(e, incident.start, incident.end)]
        hit = next((e for e in during if expect.fullmatch(e.alertname)), None)
        violations = sorted({e.alertname for e in during if forbid and forbid.fullmatch(e.alertname)})
        results.append(IncidentResult(incident, hit is not None, hit.alertname if hit else None,
                                      max(0.0, hit.start - incident.start) if hit else None, violations))
    return Report(span, alerts, results, episodes, false, scored)
