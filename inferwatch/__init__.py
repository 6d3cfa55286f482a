"""inferwatch: monitoring and maintenance plugins for LLMs served in production."""

__version__ = "0.1.0"
