"""Run drills on a `DrillStack`: inject, watch Prometheus, the receivers and the remediation audit
log, end the fault, wait for the resolution; time every step and check the quiet list throughout.

The drill watches from the outside, as an operator would: Prometheus' /api/v1/alerts for firing,
the sink for what each Alertmanager receiver got, the audit log for what remediation did.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from inferwatch.lab.drills.catalog import LANE_MODELS, Drill, Expect, Quiet, matches
from inferwatch.lab.drills.faults import Fault, fault_for
from inferwatch.lab.drills.load import Load
from inferwatch.lab.drills.stack import DrillStack

POLL_SECONDS = 0.5
# A drill starts once its alerts have been inactive this long (scrapes and evaluations run every second).
SETTLE_SECONDS = 30.0


@dataclass
class Timing:
    """Seconds from the fault's start to each step (None: did not happen)."""

    expect: Expect
    firing: float | None = None
    notified: float | None = None
    action: float | None = None
    resolved: float | None = None  # seconds from the moment the fault is ended (a restart included)
    undo: float | None = None  # likewise


@dataclass
class Result:
    drill: Drill
    timings: list[Timing] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    held_back: list[str] = field(default_factory=list)  # inhibited alerts seen firing and not delivered
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.problems


class Watch:
    """What has happened since `since`, as seen from Prometheus, the sink and the audit log."""

    def __init__(self, stack: DrillStack, since: float) -> None:
        self.stack, self.since = stack, since

    def firing(self, alert: str, labels: dict[str, str]) -> bool:
        return any(a["labels"].get("alertname") == alert and a["state"] == "firing" and matches(a["labels"], labels)
                   for a in self.stack.prometheus.alerts())

    def delivered(self, alert: str, labels: dict[str, str], status: str, receiver: str | None = None,
                  after: float | None = None) -> float | None:
        for note in list(self.stack.sink.received):
            if (note["at"] >= (after or self.since) and note.get("status") == status
                    and note["labels"].get("alertname") == alert and matches(note["labels"], labels)
                    and (receiver is None or note["receiver"] == receiver)):
                return note["at"]
        return None

    def receivers_of(self, alert: str, labels: dict[str, str]) -> set[str]:
        return {n["receiver"] for n in list(self.stack.sink.received) if n["at"] >= self.since
                and n["labels"].get("alertname") == alert and matches(n["labels"], labels)}

    def action(self, name: str, after: float | None = None) -> float | None:
        path = self.stack.audit_path
        if not path or not path.exists():
            return None
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if (record.get("action") == name and record.get("result") == "succeeded"
                    and record["time"] >= (after or self.since)):
                return float(record["time"])
        return None


def run_drill(stack: DrillStack, drill: Drill, loads: dict[str, Load], say: Callable[[str], None]) -> Result:
    result = Result(drill)
    started = time.time()
    _settle(stack, drill, say)
    fault: Fault = fault_for(drill, stack, loads)
    say(f"[{drill.name}] fault: {drill.fault}")
    t0 = time.time()
    watch = Watch(stack, t0)
    timings = [Timing(e) for e in drill.expect]
    result.timings = timings
    try:
        fault.inject()
        deadline = t0 + (drill.fire_timeout if drill.expect else drill.observe_seconds)
        while time.time() < deadline and not (drill.expect and all(_fired(t) for t in timings)):
            _observe(watch, drill, timings, t0, result)
            time.sleep(POLL_SECONDS)
        _observe(watch, drill, timings, t0, result)
    finally:
        # Resolutions count from the moment the fault is ended, not from when end() returns: a restart can
        # return after the engine is already healthy, scraped, resolved and failed back (a loaded CI machine
        # did: failback 44 s after the page, while end() was still waiting, so the drill missed both).
        ended = time.time()
        try:
            fault.end()
        except Exception as exc:  # recorded; the timings so far still go in the table
            result.problems.append(f"ending the fault failed: {type(exc).__name__}: {exc}")
    t1 = time.time()
    for timing in timings:
        for step in ("firing", "notified") + (("action",) if timing.expect.action else ()):
            if getattr(timing, step) is None:
                result.problems.append(f"{timing.expect.alert}: no {step} within {drill.fire_timeout:.0f} s")
    if any(t.expect.resolves for t in timings):
        say(f"[{drill.name}] fault ended; waiting for the resolution")
    deadline = t1 + drill.resolve_timeout
    while time.time() < deadline and not all(_resolved(t) for t in timings):
        _observe(watch, drill, timings, t0, result, resolution_from=ended)
        time.sleep(POLL_SECONDS)
    for timing in (t for t in timings if t.firing is not None):  # one that never fired has nothing to resolve
        if timing.expect.resolves and timing.resolved is None:
            result.problems.append(f"{timing.expect.alert}: not resolved within {drill.resolve_timeout:.0f} s")
        if timing.expect.undo and timing.undo is None:
            result.problems.append(f"{timing.expect.alert}: undo action {timing.expect.undo} did not run")
    _check_held_back(watch, drill, result)
    result.seconds = time.time() - started
    say(f"[{drill.name}] {'passed' if result.passed else 'FAILED: ' + '; '.join(result.problems)}"
        f" ({result.seconds:.0f} s)")
    return result


def _settle(stack: DrillStack, drill: Drill, say: Callable[[str], None], timeout: float = 600.0) -> None:
    """Wait until none of the drill's alerts (expected or quiet) is pending or firing for SETTLE_SECONDS
    in a row: a clean start.

    Pending counts, and the quiet spell must last: a restart drops a model's series, which resolves its
    latency alerts while the 5-minute window still holds the slow requests; once the series are back
    the alert goes pending again, and the next drill would be blamed for it.
    """
    names = [(e.alert, e.labels) for e in drill.expect] + [(q.alert, q.labels) for q in drill.quiet]
    deadline = time.time() + timeout
    started = quiet_since = time.time()
    while time.time() - quiet_since < SETTLE_SECONDS:
        active = stack.prometheus.alerts()  # pending and firing
        if any(a["labels"].get("alertname") == alert and matches(a["labels"], labels)
               for a in active for alert, labels in names):
            if time.time() > deadline:
                raise RuntimeError(f"{drill.name}: its alerts were still active after {timeout:.0f} s of waiting "
                                   "for a clean start (an earlier drill's fault did not end?)")
            quiet_since = time.time()
        time.sleep(2)
    if quiet_since > started:
        say(f"[{drill.name}] waited {time.time() - started:.0f} s for an earlier drill's alerts to clear")


def _observe(watch: Watch, drill: Drill, timings: list[Timing], t0: float, result: Result,
             resolution_from: float | None = None) -> None:
    now = time.time()
    for timing in timings:
        e = timing.expect
        if timing.firing is None and watch.firing(e.alert, e.labels):
            timing.firing = now - t0
        if timing.notified is None and (at := watch.delivered(e.alert, e.labels, "firing", e.receiver)):
            timing.notified = at - t0
        if e.action and timing.action is None and (at := watch.action(e.action)):
            timing.action = at - t0
        if resolution_from is not None:
            if e.resolves and timing.resolved is None and (
                    at := watch.delivered(e.alert, e.labels, "resolved", e.receiver, after=resolution_from)):
                timing.resolved = at - resolution_from
            if e.undo and timing.undo is None and (at := watch.action(e.undo, after=resolution_from)):
                timing.undo = at - resolution_from
    for q in drill.quiet:
        _check_quiet(watch, q, result)
    for timing in timings:  # the expected alert must reach its receiver, and only it
        wrong = watch.receivers_of(timing.expect.alert, timing.expect.labels) - {timing.expect.receiver}
        problem = f"{timing.expect.alert} also delivered to {', '.join(sorted(wrong))}"
        if wrong and problem not in result.problems:
            result.problems.append(problem)


def _check_quiet(watch: Watch, q: Quiet, result: Result) -> None:
    if not q.inhibited and watch.firing(q.alert, q.labels):
        problem = f"{q.alert} fired (it must stay quiet)"
    elif watch.delivered(q.alert, q.labels, "firing"):
        problem = f"{q.alert} was delivered (it must be {'inhibited' if q.inhibited else 'quiet'})"
    else:
        return
    if problem not in result.problems:
        result.problems.append(problem)


def _check_held_back(watch: Watch, drill: Drill, result: Result) -> None:
    """Record inhibited alerts that really fired: proof that the inhibition, not luck, kept them back."""
    for q in drill.quiet:
        if q.inhibited and _fired_since(watch, q):
            result.held_back.append(q.alert)


def _fired_since(watch: Watch, q: Quiet) -> bool:
    query = f'ALERTS{{alertname="{q.alert}", alertstate="firing"}}'
    end = time.time()
    for series in watch.stack.prometheus.query_range(query, watch.since, end, 2):
        if matches(series["metric"], q.labels):
            return True
    return False


def _fired(timing: Timing) -> bool:
    return (timing.firing is not None and timing.notified is not None
            and (timing.expect.action is None or timing.action is not None))


def _resolved(timing: Timing) -> bool:
    if timing.firing is None:  # already a failure (no firing): do not wait out resolve_timeout for it
        return True
    return ((not timing.expect.resolves or timing.resolved is not None)
            and (timing.expect.undo is None or timing.undo is not None))


def run_lanes(stack: DrillStack, drills: list[Drill], loads: dict[str, Load], say: Callable[[str], None],
              before_lane: Callable[[str], None] = lambda lane: None) -> list[Result]:
    """Each lane's drills one after another; the engine lanes (`LANE_MODELS`) one after another,
    each after `before_lane(lane)`; the other lanes beside them. Results in catalogue order."""
    lanes: dict[str, list[Drill]] = {}
    for drill in drills:
        lanes.setdefault(drill.lane, []).append(drill)
    results: dict[str, Result] = {}

    def lane(members: list[Drill]) -> None:
        for drill in members:
            try:
                results[drill.name] = run_drill(stack, drill, loads, say)
            except Exception as exc:  # one broken drill must not hide the others' results
                failed = Result(drill, problems=[f"{type(exc).__name__}: {exc}"])
                results[drill.name] = failed
                say(f"[{drill.name}] FAILED: {exc}")

    def engine_lanes() -> None:
        for name in (n for n in LANE_MODELS if n in lanes):
            before_lane(name)
            lane(lanes[name])

    threads = [threading.Thread(target=engine_lanes, name="engine-lanes")]
    threads += [threading.Thread(target=lane, args=(members,), name=f"lane-{name}")
                for name, members in lanes.items() if name not in LANE_MODELS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [results[d.name] for d in drills]


def table(results: list[Result]) -> str:
    """The timing table (markdown): seconds from fault to firing, notification and action, and from
    the fault's end to the resolution (and the undo action)."""
    def s(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    rows = ["| drill | alert -> receiver | fault -> firing | -> notified | -> action | end -> resolved | "
            "-> undo | held back (inhibited) | result |",
            "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        for t in r.timings or [None]:
            what = f"{t.expect.alert} -> {t.expect.receiver}" if t else "(nothing may fire)"
            action = f"{s(t.action)} ({t.expect.action})" if t and t.expect.action else "-"
            undo = f"{s(t.undo)} ({t.expect.undo})" if t and t.expect.undo else "-"
            resolved = (s(t.resolved) if t.expect.resolves else "not awaited") if t else "-"
            verdict = "pass" if r.passed else "FAIL: " + "; ".join(r.problems)
            rows.append(f"| {r.drill.name} | {what} | {s(t.firing) if t else '-'} | {s(t.notified) if t else '-'} | "
                        f"{action} | {resolved} | {undo} | {', '.join(r.held_back) or '-'} | {verdict} |")
    return "\n".join(rows)
