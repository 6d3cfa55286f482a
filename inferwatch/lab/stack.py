"""Real Prometheus and Alertmanager processes on loopback, and their HTTP APIs.

Used by the demo, the test fixtures and the benchmarks, so all three exercise the same code.
Each server gets a free port and its own directory; processes are `ManagedProcess`es.
"""

from __future__ import annotations

import json
import os
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from inferwatch.lab.process import ManagedProcess, StackError, free_port, wait_until

__all__ = ["Alertmanager", "Prometheus", "StackError", "free_port", "http_json", "wait_until"]

PROMETHEUS_BIN = os.environ.get("INFERWATCH_PROMETHEUS", "prometheus")
ALERTMANAGER_BIN = os.environ.get("INFERWATCH_ALERTMANAGER", "prometheus-alertmanager")


def http_json(url: str, data: Any = None, timeout: float = 10.0) -> Any:
    """GET (or POST JSON when `data` is given) and decode the JSON answer."""
    body = json.dumps(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


@dataclass
class Prometheus:
    """A real Prometheus with a rewritable scrape config."""

    workdir: Path
    port: int = 0
    scrape_interval: str = "1s"
    evaluation_interval: str = "1s"
    scrape_configs: list[dict[str, Any]] = field(default_factory=list)
    rule_files: list[str] = field(default_factory=list)
    alertmanager_urls: list[str] = field(default_factory=list)
    # Prometheus drops a firing alert it could not send (Alertmanager discovery lags ~5 s) until
    # the next resend; the default 1m makes tests slow, so resend quickly on loopback.
    alert_resend_delay: str = "1s"
    # Counted back from the newest block's end, not from now: a backfilled history longer than
    # this loses its oldest blocks.
    retention: str = "1d"
    extra_args: list[str] = field(default_factory=list)  # more prometheus flags (benchmarks)
    process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "prometheus.yml"

    def render_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "global": {"scrape_interval": self.scrape_interval, "evaluation_interval": self.evaluation_interval},
            "scrape_configs": self.scrape_configs,
        }
        if self.rule_files:
            config["rule_files"] = self.rule_files
        if self.alertmanager_urls:
            targets = [urllib.parse.urlparse(u).netloc for u in self.alertmanager_urls]
            config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": targets}]}]}
        return config

    def start(self, timeout: float = 60.0) -> Prometheus:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self.config_path.write_text(yaml.safe_dump(self.render_config(), sort_keys=False))
        self.process = ManagedProcess("prometheus", [
            PROMETHEUS_BIN,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--web.enable-lifecycle",
            "--enable-feature=exemplar-storage",  # the feedback service's request ids
            f"--storage.tsdb.retention.time={self.retention}",
            f"--rules.alert.resend-delay={self.alert_resend_delay}",
            *self.extra_args,
        ], self.workdir)
        self.process.start().wait_ready(lambda: _ready(self.url), timeout, what="prometheus /-/ready")
        return self

    def stop(self) -> None:
        if self.process:
            self.process.stop()

    def reload(self) -> None:
        """Rewrite the config from our fields and ask Prometheus to reload it."""
        self.config_path.write_text(yaml.safe_dump(self.render_config(), sort_keys=False))
        request = urllib.request.Request(f"{self.url}/-/reload", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def set_job(self, job: str, targets: list[str], **extra: Any) -> None:
        """Add or replace one scrape job and reload."""
        self.scrape_configs = [c for c in self.scrape_configs if c["job_name"] != job]
        self.scrape_configs.append({"job_name": job, "static_configs": [{"targets": targets}], **extra})
        self.reload()

    # -- queries ------------------------------------------------------------------------
    def _api(self, path: str, **params: Any) -> Any:
        query = urllib.parse.urlencode(params)
        answer = http_json(f"{self.url}/api/v1/{path}?{query}")
        if answer.get("status") != "success":
            raise StackError(f"prometheus query failed: {answer}")
        return answer["data"]

    def query(self, expr: str, time_: float | None = None) -> list[dict[str, Any]]:
        """Instant query: a list of {"metric": {...}, "value": [ts, "v"]}."""
        params: dict[str, Any] = {"query": expr}
        if time_ is not None:
            params["time"] = time_
        return self._api("query", **params)["result"]

    def query_value(self, expr: str) -> float | None:
        """The single value of an instant query, or None when it returns nothing."""
        result = self.query(expr)
        if not result:
            return None
        if not isinstance(result[0], dict):  # a scalar: [timestamp, "value"]
            return float(result[1])
        if len(result) > 1:
            raise StackError(f"{expr!r} returned {len(result)} series, expected one")
        return float(result[0]["value"][1])

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        return self._api("query_range", query=expr, start=start, end=end, step=step)["result"]

    def wait_for_series(self, expr: str, timeout: float = 30.0, count: int = 1) -> list[dict[str, Any]]:
        """Wait until `expr` returns at least `count` series; return them."""
        return wait_until(lambda: (r := self.query(expr)) and len(r) >= count and r, timeout,
                          what=f"{count} series of {expr!r}")

    def wait_for_value(self, expr: str, predicate: Any, timeout: float = 30.0) -> float:
        """Wait until the single value of `expr` satisfies `predicate`; return it."""
        seen: list[float] = []

        def check() -> bool:
            value = self.query_value(expr)
            if value is not None and predicate(value):
                seen.append(value)  # return the value that satisfied it, not a later re-query
                return True
            return False

        wait_until(check, timeout, what=f"value of {expr!r}")
        return seen[-1]

    def targets(self) -> list[dict[str, Any]]:
        return self._api("targets")["activeTargets"]

    def alerts(self) -> list[dict[str, Any]]:
        return self._api("alerts")["alerts"]

    def wait_for_alert(self, name: str, state: str = "firing", timeout: float = 60.0) -> dict[str, Any]:
        return wait_until(
            lambda: next((a for a in self.alerts() if a["labels"].get("alertname") == name
                          and a["state"] == state), None),
            timeout, what=f"alert {name} {state}")


@dataclass
class Alertmanager:
    """A real Alertmanager (single node, clustering off)."""

    workdir: Path
    config: dict[str, Any] | None = None
    config_file: Path | None = None
    port: int = 0
    process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> Alertmanager:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        config_path = self.config_file
        if config_path is None:
            config_path = self.workdir / "alertmanager.yml"
            config_path.write_text(yaml.safe_dump(self.config or default_alertmanager_config(), sort_keys=False))
        self.process = ManagedProcess("alertmanager", [
            ALERTMANAGER_BIN,
            f"--config.file={config_path}",
            f"--storage.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",
        ], self.workdir)
        self.process.start().wait_ready(lambda: _ready(self.url), timeout, what="alertmanager /-/ready")
        return self

    def stop(self) -> None:
        if self.process:
            self.process.stop()

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        http_json(f"{self.url}/api/v2/alerts", data=alerts)

    def alerts(self, **filters: str) -> list[dict[str, Any]]:
        query = urllib.parse.urlencode([("filter", f'{k}="{v}"') for k, v in filters.items()])
        return http_json(f"{self.url}/api/v2/alerts" + (f"?{query}" if query else ""))

    def groups(self) -> list[dict[str, Any]]:
        return http_json(f"{self.url}/api/v2/alerts/groups")

    def wait_for_alert(self, name: str, timeout: float = 30.0) -> dict[str, Any]:
        return wait_until(lambda: next((a for a in self.alerts() if a["labels"].get("alertname") == name), None),
                          timeout, what=f"alertmanager alert {name}")


def _ready(url: str) -> bool:
    with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
        return response.status == 200


def redirect_receivers(config: dict[str, Any], webhook_url: str) -> dict[str, Any]:
    """The same routing tree, every receiver pointed at one (loopback) webhook.

    Lets tests and the demo run the shipped config without sending anything off the machine.
    """
    receivers = []
    for receiver in config.get("receivers", []):
        if set(receiver) == {"name"}:
            receivers.append(receiver)
        else:
            receivers.append({"name": receiver["name"], "webhook_configs": [
                {"url": f"{webhook_url.rstrip('/')}/{receiver['name']}", "send_resolved": True}]})
    return {**config, "receivers": receivers}


def default_alertmanager_config() -> dict[str, Any]:
    return {
        "route": {"receiver": "null", "group_by": ["alertname"], "group_wait": "1s",
                  "group_interval": "1s", "repeat_interval": "1h"},
        "receivers": [{"name": "null"}],
    }
