"""Engine log exporter: log lines classified into error classes, recurring problems ranked."""
