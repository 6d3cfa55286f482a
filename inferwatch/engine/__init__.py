"""A real vLLM (CPU build) managed by inferwatch: its venv, a tiny local model, the server process."""
