"""The fleet lab: a discrete-event model of N vLLM replicas, multi-day demand from the Azure traces, and the
controllers (this scaler, production-stack, ENOVA, static) that `benchmarks/autoscaling.py` compares."""
