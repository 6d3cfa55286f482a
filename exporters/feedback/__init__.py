"""The feedback service: user ratings posted by the application, counted as Prometheus series."""
