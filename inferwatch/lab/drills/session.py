"""One drill session: start the stack and steady traffic, run the lanes, print the table, stop all."""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

from inferwatch.lab.drills.catalog import LANE_MODELS, Drill
from inferwatch.lab.drills.faults import focus, steady_loads
from inferwatch.lab.drills.runner import Result, run_lanes, table
from inferwatch.lab.drills.stack import DrillStack
from inferwatch.lab.stack import StackError

WARM_UP_SECONDS = 30  # steady traffic before a lane's first fault, so rates and ratios exist


def run_session(drills: list[Drill], workdir: str | None = None, report: str | None = None) -> int:
    results = drill_session(drills, Path(workdir or tempfile.mkdtemp(prefix="inferwatch-drill-")))
    if results is None:
        return 1
    text = table(results)
    print("\n" + text)
    if report:
        Path(report).write_text(text + "\n")
    return 0 if all(r.passed for r in results) else 1


def drill_session(drills: list[Drill], root: Path, say=lambda text: print(text, flush=True)) -> list[Result] | None:
    logger = logging.getLogger("inferwatch")
    level = logger.level
    logger.setLevel(logging.WARNING)  # the drill prints its own progress
    try:
        return _session(drills, root, say)
    finally:
        logger.setLevel(level)  # a caller's logging (the test suite's caplog) is as it was


def _session(drills: list[Drill], root: Path, say) -> list[Result] | None:
    say(f"inferwatch drill: working in {root}")
    stack = DrillStack(root, say=say)
    loads = {}
    try:
        try:
            stack.start()
        except (StackError, RuntimeError, OSError) as exc:
            say(f"inferwatch drill: the stack did not start: {exc}")
            return None
        loads = steady_loads(stack)

        def before_lane(lane: str) -> None:
            focus(loads, LANE_MODELS[lane])
            say(f"  lane {lane}: steady traffic on {LANE_MODELS[lane]} for {WARM_UP_SECONDS} s before its first fault")
            time.sleep(WARM_UP_SECONDS)

        started = time.time()
        results = run_lanes(stack, drills, loads, say, before_lane)
        say(f"inferwatch drill: {sum(r.passed for r in results)} of {len(results)} passed in "
            f"{time.time() - started:.0f} s")
        return results
    finally:
        for load in loads.values():
            load.stop()
        stack.stop()
