"""The component kit: metric-family table, self-metrics, exporter handle, CLI conventions."""
