"""`inferwatch feedback-server`'s HTTP side: /metrics through the kit, and the feedback API.

    POST /v1/feedback                      one item, an array, {"feedback": [...]} or Langfuse shapes
    GET  /v1/feedback/export?model=&score=&since=&until=&limit=   negatively rated requests, JSON Lines

Answers are JSON: `{"accepted": n}`, or `{"error": "<field>: <problem>"}` with 400 (schema,
cardinality), 401 (bearer token), 411/413 (body), 503 (the store cannot write; retry). Every
refusal is counted in `inferwatch_feedback_rejected_total{reason}`.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
from collections.abc import Callable
from typing import Any

from inferwatch.config import FeedbackServerConfig
from inferwatch.exporters.feedback.collector import FeedbackCollector, StoreUnavailable
from inferwatch.exporters.feedback.schema import Rejected
from inferwatch.exporters.feedback.store import export
from inferwatch.kit.bearer import REQUIRED, Refused, authorized, authorized_body, read_token
from inferwatch.kit.exporter import Exporter, serve
from inferwatch.kit.timeparse import parse_time
from inferwatch.kit.web import json_error, load_web_config

log = logging.getLogger(__name__)

JSON = "application/json"
JSONL = "application/x-ndjson"
EXPORT_LIMIT = 1_000_000


def start(config: FeedbackServerConfig) -> Exporter:
    """Start serving in background threads; the caller owns the returned handle."""
    web = load_web_config(config.web_config_file)
    token = read_token(config.bearer_token_file)
    collector = FeedbackCollector(config)
    try:
        exporter = serve(collector, config.listen_address, config.port, web,
                         routes={"/v1/feedback/export": export_route(collector, token)},
                         post_routes={"/v1/feedback": feedback_route(collector, token)})
    except BaseException:
        collector.close()
        raise
    log.info("feedback server on %s: %d score(s), store %s", exporter.url, len(config.scores),
             config.store_dir or "off (store_dir not set)")
    return exporter


def feedback_route(collector: FeedbackCollector, token: str | None) -> Callable[[Any], tuple[int, str, bytes]]:
    def route(handler: Any) -> tuple[int, str, bytes]:
        try:
            body = authorized_body(handler, token, collector.config.max_body_bytes, collector.reject)
        except Refused as exc:
            return exc.reply
        try:
            accepted = collector.ingest(body)
        except Rejected as exc:
            return json_error(400, str(exc))
        except StoreUnavailable:
            return json_error(503, "the feedback store cannot be written; nothing was counted, retry later")
        return 200, JSON, json.dumps({"accepted": accepted}).encode() + b"\n"

    return route


def export_route(collector: FeedbackCollector, token: str | None) -> Callable[[Any], tuple[int, str, bytes]]:
    def route(handler: Any) -> tuple[int, str, bytes]:
        if not authorized(handler, token):
            collector.reject("unauthorized")
            return json_error(401, REQUIRED)
        if collector.config.store_dir is None:
            return json_error(404, "the store is off: set feedback_server.store_dir")
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(handler.path).query)
        one = {key: values[-1] for key, values in query.items()}
        try:
            since = parse_time(one["since"], "since") if one.get("since") else None
            until = parse_time(one["until"], "until") if one.get("until") else None
            limit = int(one.get("limit", EXPORT_LIMIT))
            if not 0 < limit <= EXPORT_LIMIT:
                raise ValueError(f"limit: must be between 1 and {EXPORT_LIMIT}")
        except ValueError as exc:
            return json_error(400, str(exc))
        lines = [json.dumps(r, separators=(",", ":")) + "\n" for r in
                 export(collector.config.store_dir, one.get("model"), one.get("score"), since, until, limit)]
        return 200, JSONL, "".join(lines).encode()

    return route
