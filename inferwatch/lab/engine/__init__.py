"""The managed vLLM for the demo and tests: its venv, a tiny local model, process control."""
