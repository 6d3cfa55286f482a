"""Autoscaling benchmark: a week of Azure-trace demand through the fleet simulator, four controllers side by side.

Controllers: this scaler (`inferwatch.scaler.policy.decide`, the function the gRPC server calls, actuated as
KEDA -> HPA AverageValue with target 1), production-stack's KEDA rule (waiting > 5), ENOVA's rules, and static
provisioning for the peak (sized for the peak minute; also, for reference, the smallest static fleet that meets
the objective, found by bisection). Pod start-up 60 s and 180 s. Scored on TTFT-SLO attainment (share of requests
with TTFT <= the SLO) and replica-hours (starting, serving and draining replicas).

Targets: >= 99.9 % attainment with <= 60 % of static-peak replica-hours, and >= 30 % fewer replica-hours than
each reactive rule at equal or better attainment.

Scenarios: the policy was tuned on `conv` seed 1 and on `code` seed 1 with independent users (the bursty trace:
long prompts, short outputs); seed 2 of each (other arrivals and day amplitudes) is held out. The last scenario
is a stress case: `code` with every burst compressed in time as the load grows (see `demand.py`, "warp").
Tuning history: the default headroom was 0.1, tuned on `conv` seed 1 alone; `code` seed 1 was then held out and
missed 99.9 % (99.84 % with independent users), so it joined the tuning set, the headroom became the smallest of
0.1 / 0.15 / 0.2 / 0.25 that meets 99.9 % on every tuning scenario at both start-ups (0.25), and `code` seed 2
was added as its held-out check.

Run: .venv/bin/python benchmarks/autoscaling.py [--quick] [--curve benchmarks/data/vllm-cpu-curve.json]
Writes docs/autoscaling.md and docs/autoscaling/*.png (not with --quick, which only prints the table); with
--out docs/autoscaling-cpu.md the plots go to docs/autoscaling-cpu/ (a folder named after the page).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inferwatch.lab.fleet import calibration, controllers
from inferwatch.lab.fleet.capacity import capacity_at_slo
from inferwatch.lab.fleet.demand import DAY, Demand, Envelope, build, load_trace
from inferwatch.lab.fleet.simulator import Result, simulate
from inferwatch.scaler import baselines
from inferwatch.scaler.policy import parse_policy

ROOT = Path(__file__).resolve().parent.parent
TRACES = Path("/work/shared/data/azure-llm-inference-2023")
TICK = 15.0
TTFT_SLO = 1.0
OBJECTIVE = 0.999
STARTUPS = (60.0, 180.0)


@dataclass(frozen=True)
class Scenario:
    trace: str
    seed: int
    role: str
    arrivals: str = "warp"  # how the one-hour trace is scaled to the week's rate (inferwatch/lab/fleet/demand.py)

    @property
    def title(self) -> str:
        users = ", independent users" if self.arrivals == "superpose" else ""
        return f"{self.trace} trace{users}, seed {self.seed}"

    @property
    def slug(self) -> str:
        return f"{self.trace}{'-superposed' if self.arrivals == 'superpose' else ''}-seed{self.seed}"


SCENARIOS = (Scenario("conv", 1, "tuning"), Scenario("conv", 2, "held-out seed"),
             Scenario("code", 1, "tuning", "superpose"), Scenario("code", 2, "held-out seed", "superpose"),
             Scenario("code", 1, "stress: every burst compressed with the load"))


@dataclass(frozen=True)
class Window:
    warmup_days: float
    start: float
    end: float
    peak_replicas: float


FULL = Window(7, 7 * DAY, 14 * DAY, 9)
QUICK = Window(1, DAY + 6 * 3600, DAY + 12 * 3600, 4)


def offered_history(demand: Demand, end: float, tick: float) -> list[float]:
    """Offered requests/s over the trailing minute at every tick of [0, end): the pre-window history."""
    counts = demand.counts(0.0, end, tick)
    w = round(60.0 / tick)
    trailing = np.convolve(counts, np.ones(w), mode="full")[:len(counts)]
    shifted = np.concatenate([[0.0], trailing[:-1]])  # the value at tick g covers [g-w, g)
    return (shifted / 60.0).tolist()


def default_runs(predictive: controllers.Predictive, static: int, initial: int, max_replicas: int) -> list:
    """(controller, initial replicas) for the four controllers compared."""
    return [(predictive, initial), (controllers.ProductionStack(max_replicas), initial),
            (controllers.Enova(max_replicas, TICK), initial), (controllers.Static(static), static)]


def run_scenario(sc: Scenario, window: Window, curve: calibration.Curve, trace_dir: Path,
                 overrides: dict[str, str] | None = None, scaler_only: bool = False,
                 runs_for: Callable[..., list] = default_runs) -> tuple[list[Result], dict]:
    """All controllers (or only this scaler, for tuning) at both start-ups; `overrides` are policy metadata;
    `runs_for(predictive, static, initial, max_replicas)` picks the controllers (default: the four)."""
    trace = load_trace(trace_dir / f"{sc.trace}.csv")
    capacity = capacity_at_slo(trace, curve, TTFT_SLO, quantile=0.99, seed=sc.seed)
    envelope = Envelope(seed=sc.seed)
    days = window.end / DAY
    demand = build(trace, days, window.peak_replicas * capacity, envelope, seed=sc.seed,
                   max_model_len=curve.max_model_len, arrivals=sc.arrivals)
    minute = demand.counts(window.start, window.end, 60.0) / 60.0
    static = baselines.static_peak(float(minute.max()), capacity)
    opening = float(demand.counts(window.start, window.start + 600.0, 600.0)[0]) / 600.0
    initial = max(1, math.ceil(opening * 1.25 / capacity))
    history = offered_history(demand, window.start, TICK)
    max_replicas = 2 * static
    results = []
    for startup in STARTUPS:
        policy = parse_policy({"model": "bench", "capacityPerReplica": f"{capacity:.6g}",
                               "startupSeconds": f"{startup:g}s", "minReplicas": "1",
                               "maxReplicas": str(max_replicas), **(overrides or {})})
        predictive = controllers.Predictive(policy, history, 0.0, TICK, OBJECTIVE, max_replicas)
        runs = runs_for(predictive, static, initial, max_replicas)
        for controller, first in runs[:1] if scaler_only else runs:
            result = simulate(demand, controller, curve, startup, window.start, window.end, TTFT_SLO, first,
                              TICK, controller.name)
            if isinstance(controller, controllers.Predictive):
                result.extra["reasons"] = dict(controller.reasons)
            results.append(result)
    if not scaler_only and runs_for is default_runs:  # the four controllers' run adds the reference row
        reference = static_at_objective(demand, curve, window, static)
        results += [dataclasses.replace(reference, startup_seconds=startup) for startup in STARTUPS]
    info = {"capacity": capacity, "static": static, "requests": len(demand.slice(window.start, window.end)[0]),
            "peak_minute_rate": float(minute.max()), "mean_rate": float(minute.mean()), "demand": demand}
    return results, info


STATIC_AT_OBJECTIVE = f"static, smallest meeting {100 * OBJECTIVE:g} %"


def static_at_objective(demand: Demand, curve: calibration.Curve, window: Window, start: int) -> Result:
    """The smallest static fleet whose attainment meets OBJECTIVE (a static fleet never scales, so the
    start-up delay does not matter): what provisioning for the peak costs when the peak must meet the SLO.
    Bisection, then a walk down past sizes the bisection skipped."""
    tried: dict[int, Result] = {}

    def attain(n: int) -> bool:
        if n not in tried:
            tried[n] = simulate(demand, controllers.Static(n), curve, STARTUPS[0], window.start, window.end,
                                TTFT_SLO, n, TICK, STATIC_AT_OBJECTIVE)
        return tried[n].attainment >= OBJECTIVE

    lo, hi = 0, start  # lo fails (or is 0), hi meets
    while not attain(hi):
        lo, hi = hi, math.ceil(hi * 1.5)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if attain(mid) else (mid, hi)
    # Attainment is not monotone in the fleet size by one replica (round-robin splits a burst differently;
    # on the code trace 45 meets, 46 misses): walk down until two sizes in a row miss.
    best, n, misses = hi, hi - 1, 0
    while n >= 1 and misses < 2:
        best, misses = (n, 0) if attain(n) else (best, misses + 1)
        n -= 1
    return tried[best]


def table(results: list[Result]) -> list[str]:
    rows = ["| start-up | controller | TTFT attainment | replica-hours | vs static-peak | p99 TTFT | scale events |",
            "|---|---|---|---|---|---|---|"]
    for startup in STARTUPS:
        group = [r for r in results if r.startup_seconds == startup]
        static = next(r for r in group if r.controller == "static-peak")
        for r in group:
            rows.append(f"| {startup:.0f} s | {r.controller} | {100 * r.attainment:.3f} % | {r.replica_hours:,.0f} "
                        f"| {100 * r.replica_hours / static.replica_hours:.0f} % | {r.ttft_quantile(0.99):.2f} s "
                        f"| {r.scale_events} |")
    return rows


def verdicts(results: list[Result]) -> list[str]:
    out = []
    for startup in STARTUPS:
        group = {r.controller: r for r in results if r.startup_seconds == startup}
        ours, static = group[controllers.Predictive.name], group["static-peak"]
        share = ours.replica_hours / static.replica_hours
        line = (f"- {startup:.0f} s start-up: attainment {100 * ours.attainment:.3f} % "
                f"({'meets' if ours.attainment >= OBJECTIVE else 'misses'} 99.9 %), "
                f"{100 * share:.0f} % of static-peak replica-hours ({'meets' if share <= 0.6 else 'misses'} <= 60 %)")
        if STATIC_AT_OBJECTIVE in group:
            reference = group[STATIC_AT_OBJECTIVE]
            line += (f"; {100 * ours.replica_hours / reference.replica_hours:.0f} % of the replica-hours of the "
                     f"smallest static fleet meeting {100 * OBJECTIVE:g} % ({reference.peak_replicas} replicas)")
        for name in (controllers.ProductionStack.name, controllers.Enova.name):
            other = group[name]
            saving = 1 - ours.replica_hours / other.replica_hours
            better = ours.attainment >= other.attainment
            met = saving >= 0.3 and better
            line += (f"; vs {name} ({100 * other.attainment:.2f} %): {100 * abs(saving):.0f} % "
                     f"{'fewer' if saving >= 0 else 'more'} replica-hours at {'equal or better' if better else 'worse'}"
                     f" attainment ({'meets' if met else 'misses'} >= 30 % fewer)")
        out.append(line)
    return out


def plot(demand: Demand, results: list[Result], window: Window, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(12, 7), sharex=False)
    for ax, (lo, hi) in zip(axes, ((window.start, window.end), (window.start + 6 * 3600, window.start + 12 * 3600)),
                            strict=True):
        first = results[0].obs
        ks = np.arange(int((lo - window.start) / TICK), int((hi - window.start) / TICK))
        hours = (window.start + ks * TICK - window.start) / 3600.0
        for r in results:
            faint = r.controller.startswith("production-stack")  # it flaps between 1 and max; keep it readable
            ax.step(hours, np.array(r.obs.total)[ks], where="post", label=r.controller,
                    linewidth=0.6 if faint else 1.2, alpha=0.35 if faint else 1.0)
        cap = results[0].extra.get("capacity")
        rate = np.array(first.arrivals)[ks] / TICK
        if cap:
            smooth = np.convolve(rate, np.ones(4) / 4, mode="same")
            ax.plot(hours, smooth / cap, color="grey", alpha=0.5, linewidth=0.8, label="offered demand / capacity")
        ax.set_ylabel("replicas")
        ax.set_xlabel("hours since Monday 00:00")
        ax.grid(alpha=0.3)
    axes[0].set_title(title)
    axes[0].legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="6 hours of one scenario at a small scale; no files")
    parser.add_argument("--curve", default="gpu-illustrative",
                        help="'gpu-illustrative' or a curve file from benchmarks/calibrate_fleet.py")
    parser.add_argument("--traces", type=Path, default=TRACES)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "autoscaling.md")
    parser.add_argument("--only", metavar="SLUG", action="append",
                        help="run only this scenario (e.g. code-superposed-seed1); prints, writes no files")
    args = parser.parse_args()
    curve = calibration.GPU_ILLUSTRATIVE if args.curve == "gpu-illustrative" else calibration.load_curve(args.curve)
    window = QUICK if args.quick else FULL
    scenarios = SCENARIOS[:1] if args.quick else SCENARIOS
    if args.only:
        unknown = set(args.only) - {sc.slug for sc in SCENARIOS}
        if unknown:
            parser.error(f"unknown scenario {sorted(unknown)}; known: {[sc.slug for sc in SCENARIOS]}")
        scenarios = [sc for sc in SCENARIOS if sc.slug in args.only]
    writes = not (args.quick or args.only)
    began = time.process_time()
    lines = []
    for sc in scenarios:
        results, info = run_scenario(sc, window, curve, args.traces)
        for r in results:
            r.extra["capacity"] = info["capacity"]
        head = (f"### {sc.title} ({sc.role})\n\n{info['requests']:,} requests, mean "
                f"{info['mean_rate']:.1f} req/s, peak minute {info['peak_minute_rate']:.1f} req/s; capacity "
                f"{info['capacity']:.2f} req/s per replica (p99 TTFT <= {TTFT_SLO:g} s, one replica, Poisson); "
                f"static-peak = {info['static']} replicas.\n")
        block = [head, *table(results), "", *verdicts(results), ""]
        print("\n".join(block), flush=True)
        lines += block
        if writes:
            for startup in STARTUPS:
                group = [r for r in results if r.startup_seconds == startup]
                name = f"{sc.slug}-startup{startup:.0f}.png"
                plot(info["demand"], group, window, args.out.parent / args.out.stem / name,
                     f"{sc.title}, start-up {startup:.0f} s")
                lines.append(f"![{name}]({args.out.stem}/{name})\n")
    cpu = time.process_time() - began
    print(f"CPU time: {cpu:.0f} s", flush=True)
    if writes:
        write_doc(args.out, curve, lines, cpu)


def write_doc(path: Path, curve: calibration.Curve, lines: list[str], cpu: float) -> None:
    doc = [
        "# Autoscaling benchmark",
        "",
        "Generated by `benchmarks/autoscaling.py`; do not edit by hand.",
        "",
        f"Curve: `{curve.name}` ({curve.source}). TTFT SLO {TTFT_SLO:g} s, objective {100 * OBJECTIVE:g} %. "
        f"Scaler poll / HPA sync {TICK:g} s. One week evaluated (Monday-Sunday) after a week of history. "
        f"CPU time of the run: {cpu:.0f} s.",
        "",
        "Method: see the docstrings of `inferwatch/lab/fleet/demand.py` (multi-day demand from the one-hour "
        "Azure traces), `inferwatch/lab/fleet/simulator.py` (the replica model) and `inferwatch/scaler/baselines.py`"
        " (the reactive rules).",
        "",
        "Reading the numbers:",
        "",
        "- Capacity per replica is what one replica sustains with p99 TTFT within the SLO under Poisson arrivals "
        "of the trace's lengths (`inferwatch/lab/fleet/capacity.py`), given to the scaler as "
        "`capacityPerReplica`. In production it would be learned (`handled_max1w`) or set from a load test.",
        "- Before the evaluated week the scaler's demand history is the offered demand (a fleet that kept up); "
        "in the week it is what vLLM reports: completions per second over one minute, scraped every 15 s.",
        "- production-stack's rule sizes on the queue alone: an empty queue asks for 0 replicas (clamped to 1), "
        "so it sheds the fleet, overloads, and after the 300 s HPA stabilisation jumps back to the maximum.",
        "- ENOVA waits for >= 50 pending requests over three minutes before it scales up and halves the fleet "
        "only when it is nearly idle, so it runs close to saturation: cheap, but with seconds of p99 TTFT.",
        "- The one-hour traces are scaled to the week's rate in two ways (`demand.py`): `conv` and the stress "
        "scenario by time warp (the trace's clients get faster with the load, so a burst is compressed; on "
        "`code` on the GPU curve the busiest second holds 468 requests at a mean of 12 req/s), `code` with "
        "independent users by superposing copies of the trace and thinning them (more clients: a burst keeps its "
        "recorded size and length; busiest second 154 on the same scenario). The policy was tuned on `conv` "
        "seed 1 and `code` seed 1 with independent users; seed 2 of each is held out (the module docstring of "
        "`benchmarks/autoscaling.py` says how the tuning set grew).",
        "- static-peak is sized for the highest one-minute demand; on the stress scenario even that misses "
        "99.9 % (sub-minute bursts above it). The row after it is the smallest static fleet that meets the "
        "objective (bisection; the same fleet at both start-ups): what provisioning for the peak costs when the "
        "peak must meet the SLO. docs/autoscaling-targets.md measures the targets that are missed.",
        "- The replica model is approximate (decode speed frozen at admission, one prefill lane per replica, "
        "round-robin routing); see the simulator's docstring.",
        "",
        *lines,
    ]
    path.write_text("\n".join(doc) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
