"""`inferwatch log-exporter`'s HTTP side: /metrics through the kit, and the recurring problems.

    GET /errors?source=&n=    the top error templates per source, JSON: counts, first/last seen,
                              class, severity, and the version a template first appeared in after a deploy
"""

from __future__ import annotations

import json
import logging
import urllib.parse
from collections.abc import Callable
from typing import Any

from inferwatch.config import LogExporterConfig
from inferwatch.exporters.logs.collector import LogCollector
from inferwatch.kit.exporter import Exporter, serve
from inferwatch.kit.web import json_error, load_web_config

log = logging.getLogger(__name__)

MAX_TOP = 1000


def start(config: LogExporterConfig) -> Exporter:
    web = load_web_config(config.web_config_file)
    collector = LogCollector(config)
    try:
        exporter = serve(collector, config.listen_address, config.port, web,
                         routes={"/errors": errors_route(collector)})
    except BaseException:
        collector.close()
        raise
    log.info("log exporter on %s: %d source(s)", exporter.url, len(config.sources))
    return exporter


def errors_route(collector: LogCollector) -> Callable[[Any], tuple[int, str, bytes]]:
    def route(handler: Any) -> tuple[int, str, bytes]:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(handler.path).query)
        source = (query.get("source") or [None])[0]
        try:
            n = int((query.get("n") or ["20"])[0])
        except ValueError:
            return json_error(400, "n: must be an integer")
        if not 1 <= n <= MAX_TOP:
            return json_error(400, f"n: must be between 1 and {MAX_TOP}")
        names = [s.name for s in collector.config.sources]
        if source is not None and source not in names:
            return json_error(404, f"source: no source named {source[:64]!r}")
        body = {"sources": {name: [_entry(s) for s in collector.templates.top(name, n)]
                            for name in names if source in (None, name)}}
        return 200, "application/json", json.dumps(body, indent=1).encode() + b"\n"

    return route


def _entry(stats: Any) -> dict:
    return {"template": stats.template, "class": stats.klass, "severity": stats.severity, "count": stats.count,
            "first_seen": stats.first_seen, "last_seen": stats.last_seen, "new_in_version": stats.new_in_version}
