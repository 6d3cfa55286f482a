"""The drills: which fault, which alert must reach which receiver (and which action must run),
and which alerts must stay quiet meanwhile. Pure data, so the catalogue reads as a test plan.

Every drill runs in a lane: drills of one lane share an engine and run one after another. The
engine lanes (`LANE_MODELS`) run one after another too, each with its model's steady traffic and a
trickle on the other (two busy vLLMs oversubscribe a 2-core machine); the GPU lane, which needs no
engine, runs beside them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The two models of the drill stack. A has a real vLLM primary and a (fake) backup the failover
# switches to; B has one real vLLM whose settings the latency drill changes.
MODEL_A = "drill-a"
MODEL_B = "drill-b"
GPU_HOST = "drill-gpu-node"
LANE_MODELS = {"a": MODEL_A, "b": MODEL_B}  # the engine lanes, in the order they run


@dataclass(frozen=True)
class Expect:
    """An alert the fault must fire, deliver to `receiver`, and (if `resolves`) resolve once it ends."""

    alert: str
    receiver: str
    labels: dict[str, str]
    action: str | None = None  # the remediation action that must succeed on it
    undo: str | None = None  # the remediation action that must succeed on its resolution
    resolves: bool = True


@dataclass(frozen=True)
class Quiet:
    """An alert that must not reach any receiver during the drill.

    `inhibited`: Prometheus may fire it (it is true), but Alertmanager must hold it back; otherwise
    it must not even fire.
    """

    alert: str
    labels: dict[str, str]
    inhibited: bool = False


@dataclass(frozen=True)
class Drill:
    name: str
    lane: str
    fault: str  # one line: what the drill does
    expect: tuple[Expect, ...]
    quiet: tuple[Quiet, ...] = ()
    fire_timeout: float = 240.0
    resolve_timeout: float = 420.0
    observe_seconds: float = 0.0  # a drill that expects nothing watches for this long
    note: str = ""
    params: dict[str, float] = field(default_factory=dict)


A = {"model_name": MODEL_A}
B = {"model_name": MODEL_B}

DRILLS: tuple[Drill, ...] = (
    Drill(
        "engine-killed", "a",
        "SIGKILL the vLLM primary of drill-a (its backup keeps serving); restart it",
        expect=(Expect("LLMEngineDown", "ml-platform-pager", {**A, "role": "primary"},
                       action="failover", undo="failback"),),
        quiet=(Quiet("LLMModelUnavailable", A), Quiet("LLMEngineTargetDown", A, inhibited=True),
               Quiet("LLMModelSeriesAbsent", A, inhibited=True)),
        note="LLMEngineDown has `for: 2m`; the scrape-based LLMEngineTargetDown fires too and is inhibited.",
    ),
    Drill(
        "error-burst", "a",
        "2 req/s of prompts over max_model_len, which vLLM rejects with HTTP 400, amid normal traffic on drill-a",
        expect=(Expect("LLMHTTPErrorRatioAnomalous", "ml-platform-tickets", {**A, "status": "4xx"}),),
        quiet=(Quiet("LLMEngineDown", A), Quiet("LLMTimeToFirstTokenSLABreach", A), Quiet("LLMErrorRatioAnomalous", A)),
        note="resolves once the errors leave the rule's 5-minute window",
    ),
    Drill(
        "traffic-surge", "b",
        "triple drill-b's request rate for 3 minutes: a legitimate peak within capacity",
        expect=(),
        quiet=(Quiet("LLMTimeToFirstTokenSLABreach", B), Quiet("LLMInterTokenLatencySLABreach", B),
               Quiet("LLMTTFTBudgetBurn", B), Quiet("LLMErrorRatioAnomalous", B), Quiet("LLMEngineDown", B)),
        observe_seconds=180.0,
        note="nothing may page: the peak is served within the SLA. Before the latency drill, whose budget "
             "burn (LLMTTFTBudgetBurn, a quiet one here) rightly stays pending for a while after its rollback",
        params={"factor": 3.0},
    ),
    Drill(
        "latency-regression", "b",
        "restart drill-b's vLLM with a slower model and max_num_seqs=1 under steady load; a rollback action "
        "restores it",
        expect=(Expect("LLMTimeToFirstTokenSLABreach", "ml-platform-pager", B, action="rollback"),),
        quiet=(Quiet("LLMEngineDown", B), Quiet("LLMErrorRatioAnomalous", B), Quiet("LLMCapacityExceeded", B)),
        fire_timeout=480.0,  # restart (~30-60 s), queue build-up, the p95 over 5m crossing the SLA, `for: 2m`;
        # measured 174-269 s
        note="the restart itself (about 30 s down) must not page; the p95 clears once the slow requests "
             "leave the 5-minute window",
    ),
    Drill(
        "gpu-xid", "gpu",
        "the simulated NVML delivers XID 79 (GPU fallen off the bus) on GPU 1",
        expect=(Expect("GPUXidCriticalError", "infra-pager", {"hostname": GPU_HOST, "gpu": "1", "xid": "79"},
                       resolves=False),),
        quiet=(Quiet("GPUXidCriticalError", {"hostname": GPU_HOST, "gpu": "0"}),),
        note="the alert holds for 10 minutes after the event by design, so the drill does not wait for it "
             "to resolve",
    ),
    Drill(
        "gpu-lost", "gpu",
        "GPU 0 stops answering NVML (GPU lost); it comes back after the page",
        expect=(Expect("GPULost", "infra-pager", {"hostname": GPU_HOST, "gpu": "0"}),),
        quiet=(Quiet("GPUNvmlUnavailable", {}), Quiet("GPULost", {"hostname": GPU_HOST, "gpu": "1"})),
        note="GPULost has `for: 1m`",
    ),
)


def by_name(names: list[str]) -> list[Drill]:
    """The named drills in catalogue order; `all` selects every one. Unknown names: ValueError."""
    known = {d.name: d for d in DRILLS}
    if "all" in names:
        return list(DRILLS)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown drill(s) {', '.join(unknown)} (known: {', '.join(known)}, all)")
    return [d for d in DRILLS if d.name in names]


def matches(labels: dict[str, str], wanted: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in wanted.items())
