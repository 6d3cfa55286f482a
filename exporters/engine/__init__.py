"""Engine exporter: what vLLM cannot say about itself (health, served models, versions, redundancy)."""
