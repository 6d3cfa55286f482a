"""`inferwatch remediate`'s HTTP side: /metrics through the kit, and Alertmanager's webhook.

    POST /v1/alerts   Alertmanager's webhook payload (version "4")

Answers 200 `{"results": [{"fingerprint", "alertname", "action", "result"[, "reason"]}]}` (result:
queued, dry_run, skipped, failed, rejected), or `{"error": ...}` with 401 (bearer token), 411/413
(body), 400 (not JSON, not the webhook shape). Every refusal is counted in
`inferwatch_remediation_rejected_requests_total{reason}`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from inferwatch.config import RemediationConfig
from inferwatch.kit.bearer import Refused, authorized_body, read_token
from inferwatch.kit.exporter import Exporter, serve
from inferwatch.kit.web import json_error, load_web_config
from inferwatch.remediate.collector import RemediationCollector
from inferwatch.remediate.webhook import BadPayload, parse

log = logging.getLogger(__name__)

JSON = "application/json"


def start(config: RemediationConfig) -> Exporter:
    """Start serving in background threads; the caller owns the returned handle."""
    web = load_web_config(config.web_config_file)
    token = read_token(config.bearer_token_file)
    collector = RemediationCollector(config)
    try:
        exporter = serve(collector, config.listen_address, config.port, web,
                         post_routes={"/v1/alerts": alerts_route(collector, token)})
    except BaseException:
        collector.close()
        raise
    if token is None:
        log.warning("remediation receiver without a bearer token: anyone who reaches the port can trigger actions "
                    "(set remediation.bearer_token_file)")
    log.info("remediation receiver on %s: %d action(s), %s, audit %s", exporter.url, len(config.actions),
             "EXECUTING actions" if config.execute else "dry run (actions are logged, not run)",
             config.audit_log or "to the log")
    return exporter


def alerts_route(collector: RemediationCollector, token: str | None) -> Callable[[Any], tuple[int, str, bytes]]:
    def route(handler: Any) -> tuple[int, str, bytes]:
        try:
            body = authorized_body(handler, token, collector.config.max_body_bytes, collector.reject)
        except Refused as exc:
            return exc.reply
        try:
            notification = parse(body)
        except BadPayload as exc:
            collector.reject(exc.reason)
            return json_error(400, str(exc))
        results = collector.handle(notification)
        return 200, JSON, json.dumps({"results": results}).encode() + b"\n"

    return route
