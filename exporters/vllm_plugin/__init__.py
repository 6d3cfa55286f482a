"""vLLM stat-logger plugin: SLO goodput and per-LoRA load inside vLLM's own /metrics."""
