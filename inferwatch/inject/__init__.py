"""`inferwatch inject`: open-loop load and named faults against any OpenAI-compatible endpoint."""
