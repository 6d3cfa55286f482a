"""`inferwatch drift-exporter`'s HTTP side: /metrics through the kit, samples in, sketches out.

    POST /v1/samples      {"model": "m", "samples": [{"prompt": "...", "response": "..."} | {"features": {...}}]}
    GET  /v1/samples/sketch?model=&from=&to=    the merged sketch of a held range (for reference capture)
    GET  /v1/references   the references on disk, the pins, and which do not load

Sample text is reduced to features in the request and dropped; it is never stored or logged.
Errors are JSON `{"error": "<field>: <problem>"}` with 400, 401, 411 or 413, counted by reason.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from inferwatch.config import DriftExporterConfig
from inferwatch.exporters.drift.collector import DriftCollector
from inferwatch.exporters.drift.features import Batch, FeatureExtractor
from inferwatch.exporters.drift.references import ReferenceError, ReferenceStore
from inferwatch.exporters.drift.samples import DIM, TooManyModels
from inferwatch.kit.bearer import REQUIRED, authorized, read_token
from inferwatch.kit.exporter import Exporter, serve
from inferwatch.kit.labels import MODEL_NAME, MODEL_NAME_RULE
from inferwatch.kit.timeparse import parse_time
from inferwatch.kit.web import BodyError, json_error, load_web_config, read_body

log = logging.getLogger(__name__)

JSON = "application/json"
MAX_TEXT_CHARS = 200_000  # per prompt or response: longer texts are cut before featurising


class BadSamples(Exception):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def start(config: DriftExporterConfig) -> Exporter:
    web = load_web_config(config.web_config_file)
    token = read_token(config.bearer_token_file)
    extractor = FeatureExtractor(dim=DIM, language=config.samples.language)
    collector = DriftCollector(config)
    try:
        exporter = serve(collector, config.listen_address, config.port, web,
                         routes={"/v1/samples/sketch": sketch_route(collector, token),
                                 "/v1/references": references_route(collector)},
                         post_routes={"/v1/samples": samples_route(collector, extractor, token)})
    except BaseException:
        collector.close()
        raise
    log.info("drift exporter on %s: histograms from %s, references in %s", exporter.url,
             config.prometheus_url or "nowhere (prometheus_url not set)", config.references_dir or "nowhere")
    return exporter


def parse_samples(body: bytes, extractor: FeatureExtractor, max_batch: int) -> tuple[str, list[Batch], int]:
    """(model, batches, sample count) of a /v1/samples body, or BadSamples."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise BadSamples("bad_json", f"body is not valid JSON: {str(exc)[:120]}") from None
    if not isinstance(document, dict):
        raise BadSamples("schema", "body must be a JSON object with model and samples")
    model, rows = document.get("model"), document.get("samples")
    if not isinstance(model, str) or not MODEL_NAME.fullmatch(model):
        raise BadSamples("schema", f"model: must be {MODEL_NAME_RULE}")
    if not isinstance(rows, list) or not rows:
        raise BadSamples("schema", "samples: must be a non-empty array")
    if len(rows) > max_batch:
        raise BadSamples("too_large", f"samples: {len(rows)} items; at most {max_batch} per request")
    prompts, responses, features = [], [], []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise BadSamples("schema", f"samples[{i}]: must be an object")
        if "features" in row:
            if not isinstance(row["features"], dict):
                raise BadSamples("schema", f"samples[{i}].features: must be an object")
            features.append(row["features"])
            continue
        prompt, response = row.get("prompt"), row.get("response")
        if not isinstance(prompt, str):
            raise BadSamples("schema", f"samples[{i}].prompt: must be a string (or send features)")
        if response is not None and not isinstance(response, str):
            raise BadSamples("schema", f"samples[{i}].response: must be a string")
        prompts.append(prompt[:MAX_TEXT_CHARS])
        responses.append(response[:MAX_TEXT_CHARS] if response is not None else None)
    batches = []
    if prompts:
        batches.append(extractor.extract_batch(prompts, responses))
    if features:
        try:
            batches.append(extractor.from_features(features))
        except ValueError as exc:
            raise BadSamples("schema", f"samples (features): {exc}") from None
    return model, batches, len(rows)


def samples_route(collector: DriftCollector, extractor: FeatureExtractor,
                  token: str | None) -> Callable[[Any], tuple[int, str, bytes]]:
    limits = collector.config.samples

    def route(handler: Any) -> tuple[int, str, bytes]:
        if not authorized(handler, token):
            collector.rejected["unauthorized"] += 1
            handler.close_connection = True
            return json_error(401, REQUIRED)
        try:
            body = read_body(handler, limits.max_body_bytes)
            model, batches, count = parse_samples(body, extractor, limits.max_batch)
            for batch in batches:
                collector.windows.add(model, batch, time.time())
        except BodyError as exc:
            collector.rejected["too_large" if exc.status == 413 else "schema"] += 1
            return json_error(exc.status, str(exc))
        except BadSamples as exc:
            collector.rejected[exc.reason] += 1
            return json_error(400, str(exc))
        except TooManyModels as exc:
            collector.rejected["cardinality"] += 1
            return json_error(400, str(exc))
        collector.received[model] += count
        return 200, JSON, json.dumps({"accepted": count}).encode() + b"\n"

    return route


def sketch_route(collector: DriftCollector, token: str | None) -> Callable[[Any], tuple[int, str, bytes]]:
    def route(handler: Any) -> tuple[int, str, bytes]:
        if not authorized(handler, token):
            return json_error(401, REQUIRED)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(urllib.parse.urlsplit(handler.path).query).items()}
        try:
            start, end = parse_time(query.get("from", ""), "from"), parse_time(query.get("to", ""), "to")
        except ValueError as exc:
            return json_error(400, str(exc))
        models = [query["model"]] if query.get("model") else collector.windows.models()
        sketches = {m: collector.windows.window(m, start, end) for m in models}
        body = {m: s.to_json() for m, s in sketches.items() if s.count}
        return 200, JSON, json.dumps(body, separators=(",", ":")).encode()

    return route


def references_route(collector: DriftCollector) -> Callable[[Any], tuple[int, str, bytes]]:
    def route(handler: Any) -> tuple[int, str, bytes]:
        if not collector.config.references_dir:
            return json_error(404, "no references: set drift_exporter.references_dir")
        return 200, JSON, json.dumps(describe_references(ReferenceStore(collector.config.references_dir))).encode()

    return route


def describe_references(store: ReferenceStore) -> dict:
    out: dict[str, Any] = {"references": [], "pins": {}}
    try:
        out["pins"] = store.pins()
    except ReferenceError as exc:
        out["pins_error"] = str(exc)
    for name in store.names():
        try:
            ref = store.load(name)
        except ReferenceError as exc:
            out["references"].append({"name": name, "error": str(exc)})
            continue
        out["references"].append({"name": name, "created": ref.created, "from": ref.start, "to": ref.end,
                                  "histogram_models": sorted(ref.histograms), "sample_models": sorted(ref.samples)})
    return out
