"""Drift detection core: features, mergeable window sketches and Evidently-style distances, no I/O."""
