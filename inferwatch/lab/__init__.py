"""The lab: demo, Prometheus/Alertmanager harness, managed vLLM, fakes. Production code never imports it."""
