"""The harness itself: real Prometheus and Alertmanager, query helpers, alerts end to end."""

from __future__ import annotations

import time

import pytest

from inferwatch.lab.stack import Prometheus, StackError

RULES = """
groups:
  - name: harness
    rules:
      - alert: HarnessAlwaysFiring
        expr: vector(1)
        labels: {severity: info, team: sre}
        annotations: {summary: Always firing.}
"""


def test_prometheus_scrapes_itself_and_answers_range_queries(prometheus) -> None:
    prometheus.set_job("self", [f"127.0.0.1:{prometheus.port}"])
    prometheus.wait_for_series('up{job="self"} == 1')
    now = time.time()
    prometheus.wait_for_series('prometheus_build_info{job="self"}')
    time.sleep(2)
    series = prometheus.query_range('up{job="self"}', now - 5, time.time(), 1)
    assert len(series) == 1
    points = series[0]["values"]
    assert len(points) >= 2, points  # scraped every second for 2 s: all() below is over real points
    assert all(float(v) == 1 for _, v in points)
    assert prometheus.query_value('prometheus_build_info{job="self"}') == 1
    version = prometheus.query('prometheus_build_info{job="self"}')[0]["metric"]["version"]
    assert version.startswith("2.42"), version


def test_wait_for_series_times_out_with_a_clear_error(prometheus) -> None:
    with pytest.raises(StackError, match="timed out after 1 s waiting for 1 series of 'no_such_metric'"):
        prometheus.wait_for_series("no_such_metric", timeout=1)


def test_alert_reaches_alertmanager(tmp_path, alertmanager) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(RULES)
    server = Prometheus(tmp_path / "prom", rule_files=[str(rules)], alertmanager_urls=[alertmanager.url]).start()
    try:
        alert = server.wait_for_alert("HarnessAlwaysFiring")
        assert alert["labels"]["team"] == "sre"
        received = alertmanager.wait_for_alert("HarnessAlwaysFiring")
        assert received["status"]["state"] == "active"
    finally:
        server.stop()
    assert not server.process.alive()


def test_alertmanager_api_groups_posted_alerts(alertmanager) -> None:
    alertmanager.post_alerts([
        {"labels": {"alertname": "HarnessPosted", "model": "m1", "severity": "warning"}},
        {"labels": {"alertname": "HarnessPosted", "model": "m2", "severity": "warning"}},
    ])
    alertmanager.wait_for_alert("HarnessPosted")
    posted = alertmanager.alerts(alertname="HarnessPosted")
    assert sorted(a["labels"]["model"] for a in posted) == ["m1", "m2"]
    groups = [g for g in alertmanager.groups() if g["labels"].get("alertname") == "HarnessPosted"]
    assert len(groups) == 1 and len(groups[0]["alerts"]) == 2, "default route groups by alertname"
