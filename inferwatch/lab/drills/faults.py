"""The faults, each an `inject()` and an `end()` on the drill stack. Real where the drill stack is
real (vLLM processes, their settings, the traffic); the GPU faults go through the simulated NVML,
the one stand-in the stack has.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass

from inferwatch.lab.drills.catalog import MODEL_A, MODEL_B, Drill
from inferwatch.lab.drills.load import Load
from inferwatch.lab.drills.stack import DrillStack

# Steady traffic on each model while the drills run: (requests/s, output tokens), 32-token prompts.
# drill-b's ~400 generated tokens/s are easy for a batching engine and about all one sequence at a
# time can do on these CPUs: max_num_seqs=1 turns them into a queue.
STEADY = {MODEL_A: (2.0, 64), MODEL_B: (3.0, 128)}
STEADY_PROMPT_TOKENS = 32
# max_model_len is 512: these prompts are rejected with HTTP 400, as an application sending
# whole documents after a bad deploy would be.
OVERLONG_PROMPT_TOKENS = 600
ERROR_BURST_RATE = 2.0
# The bad deploy: the "large" random model (about 5x the tiny one's TTFT and ITL) with max_num_seqs=1.
# max_num_seqs=1 alone was not enough once drill-b had a core to itself: one sequence at a time kept up
# with 3 req/s x 128 tokens (p95 TTFT 0.5 s, SLA 2 s), so the fault did not fault.
REGRESSED_MAX_NUM_SEQS = 1
REGRESSED_SIZE = "large"
# A model whose lane is not running gets a trickle: its series stay alive and its engine idles. A
# busy vLLM CPU server takes ~1.6 cores (the engine core busy-polls its worker), so two busy ones
# starve the watchers of a 2-core machine: scrapes time out, alerts fire minutes late.
TRICKLE = (0.2, 8)


@dataclass
class Fault:
    inject: Callable[[], None]
    end: Callable[[], None]


def steady_loads(stack: DrillStack) -> dict[str, Load]:
    """A trickle on every model; `focus` turns one of them up to its steady traffic."""
    rate, tokens = TRICKLE
    return {model: Load(stack.engines[model].base_url, model, rate, STEADY_PROMPT_TOKENS, tokens, seed=i).start()
            for i, model in enumerate(STEADY)}


def focus(loads: dict[str, Load], model: str) -> None:
    """Steady traffic for `model`, a trickle for the others: one busy vLLM at a time."""
    for name, load in loads.items():
        load.rate, load.output_tokens = STEADY[name] if name == model else TRICKLE


def fault_for(drill: Drill, stack: DrillStack, loads: dict[str, Load]) -> Fault:
    return FAULTS[drill.name](drill, stack, loads)


def _engine_killed(drill: Drill, stack: DrillStack, loads: dict[str, Load]) -> Fault:
    def kill() -> None:
        process = stack.engines[MODEL_A].process
        os.killpg(process.pid, signal.SIGKILL)  # the whole group: API server, engine core, worker

    return Fault(kill, lambda: stack.start_engine(MODEL_A))


def _error_burst(drill: Drill, stack: DrillStack, loads: dict[str, Load]) -> Fault:
    burst: list[Load] = []

    def start() -> None:
        burst.append(Load(stack.engines[MODEL_A].base_url, MODEL_A, ERROR_BURST_RATE, OVERLONG_PROMPT_TOKENS,
                          8, seed=7).start())

    return Fault(start, lambda: [load.stop() for load in burst])


def _latency_regression(drill: Drill, stack: DrillStack, loads: dict[str, Load]) -> Fault:
    """A deploy that brings a slower model and max_num_seqs=1: requests queue behind each other. The
    rollback action (or the drill's end) restarts the previous model with the default batch size."""
    restored = threading.Event()
    lock = threading.Lock()

    def rollback() -> None:
        with lock:
            if not restored.is_set():
                stack.start_engine(MODEL_B)
                restored.set()

    def regress() -> None:
        stack.control.rollbacks[MODEL_B] = rollback
        stack.start_engine(MODEL_B, size=REGRESSED_SIZE, max_num_seqs=REGRESSED_MAX_NUM_SEQS)

    return Fault(regress, rollback)


def _traffic_surge(drill: Drill, stack: DrillStack, loads: dict[str, Load]) -> Fault:
    load = loads[MODEL_B]
    normal = load.rate

    def surge() -> None:
        load.rate = normal * drill.params["factor"]

    def calm() -> None:
        load.rate = normal

    return Fault(surge, calm)


def _gpu_xid(drill: Drill, stack: DrillStack, loads: dict[str, Load]) -> Fault:
    return Fault(lambda: stack.nvml.inject_xid(1, 79), lambda: None)


def _gpu_lost(drill: Drill, stack: DrillStack, loads: dict[str, Load]) -> Fault:
    gpu = stack.nvml.gpus[0]

    def lose() -> None:
        gpu.lost = True

    def back() -> None:
        gpu.lost = False

    return Fault(lose, back)


FAULTS: dict[str, Callable[[Drill, DrillStack, dict[str, Load]], Fault]] = {
    "engine-killed": _engine_killed,
    "error-burst": _error_burst,
    "latency-regression": _latency_regression,
    "traffic-surge": _traffic_surge,
    "gpu-xid": _gpu_xid,
    "gpu-lost": _gpu_lost,
}
