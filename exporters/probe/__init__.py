"""Quality-probe exporter: golden prompts against an OpenAI-compatible endpoint, blackbox_exporter style."""
