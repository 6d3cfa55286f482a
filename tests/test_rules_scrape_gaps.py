"""One failed scrape must not restart an alert's `for`.

A failed scrape marks every series of the target stale for that moment. Rates over a range skip the
marker, but an instant lookup of the target's series finds nothing. LLMHTTPErrorRatioAnomalous takes
the model of each instance from vllm:num_requests_running (http_requests_total has no model label).
With a plain instant lookup, every failed scrape emptied the ratio for one evaluation and restarted the
alert's 2-minute `for`. A fire drill on a loaded machine (a failed scrape every 20-40 s) stayed pending
for 8 minutes and never fired. promtool, on the shipped rules: a third of the requests rejected, one
failed scrape every 90 s.
"""

from __future__ import annotations

from pathlib import Path

from promtool_cases import alert_rules, expected_alert, promtool_test, rule_subset, run_promtool

from inferwatch import rules

REPO = Path(__file__).resolve().parent.parent
RULE_FILES = [REPO / path for path in rules.OUTPUTS.values()]
STEP = 15  # seconds: the scrape interval
STEPS = 20 * 60 // STEP
FAILED_EVERY = 6  # steps: a failed scrape every 90 s


def scraped(value_at) -> str:
    """promtool values, one per scrape: stale at every failed one."""
    return " ".join("stale" if i and i % FAILED_EVERY == 0 else f"{value_at(i):g}" for i in range(STEPS + 1))


def test_a_failed_scrape_does_not_restart_the_http_error_alert(tmp_path: Path) -> None:
    files = rule_subset(RULE_FILES, {"errors"}, tmp_path / "rules",
                        keep=lambda group, rule: "http" in group or rule.get("alert") == "LLMHTTPErrorRatioAnomalous")
    target = 'job="vllm",instance="a:8000"'
    http = 'http_requests_total{' + target + ',handler="/v1/completions",method="POST",status="%s"}'
    series = {
        f'vllm:num_requests_running{{{target},model_name="m"}}': scraped(lambda i: 2),
        http % "2xx": scraped(lambda i: 1.0 * STEP * i),  # 1 request/s served
        http % "4xx": scraped(lambda i: 0.5 * STEP * i),  # 0.5 request/s rejected: a third
    }
    alerts = alert_rules((REPO / rules.OUTPUTS["prometheusAlerts"]).read_text())
    labels = {"model_name": "m", "status": "4xx"}
    checks = [
        # pending since about 1 minute in (20 rejected in 5 minutes), so firing by 4 minutes with no restart
        {"eval_time": "5m", "alertname": "LLMHTTPErrorRatioAnomalous",
         "exp_alerts": [expected_alert(alerts, "LLMHTTPErrorRatioAnomalous", labels, 1 / 3)]},
        {"eval_time": "15m", "alertname": "LLMHTTPErrorRatioAnomalous",
         "exp_alerts": [expected_alert(alerts, "LLMHTTPErrorRatioAnomalous", labels, 1 / 3)]},
    ]
    run_promtool(tmp_path / "scrape-gaps.yaml", promtool_test(files, series, f"{STEP}s", checks), timeout=120)
