"""Property-based: every parser of outside input either returns or raises its own clean error."""

from __future__ import annotations

import asyncio
import contextlib
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inferwatch.config import ConfigError, EndpointConfig, parse_config
from inferwatch.exporters.engine import http as engine_http
from inferwatch.exporters.engine.probe import ProbeResult, read_model_list
from inferwatch.inject.client import parse_event
from inferwatch.kit.labels import MAX_LABEL_CHARS, clean
from inferwatch.kit.web import WebConfig

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SECTIONS = ["gpu_exporter", "engine_exporter", "vllm_plugin", "slo", "cost", "other"]
KEYS = ["port", "listen_address", "naming", "nvml_timeout_seconds", "endpoints", "name", "base_url", "model",
        "defaults", "models", "ttft_seconds", "ttft_target", "gpu_hour_price_usd", "max_lora_adapters", "<<"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=40), st.sampled_from([".nan", ".inf", "-.inf", "!!int x", "&a 1", "*a"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)),
                      max_leaves=12)


def check_config(text: str) -> None:
    try:
        parse_config(text, "c.yaml")
    except ConfigError as exc:
        assert str(exc).startswith("c.yaml")
        assert len(str(exc)) < 2000, "errors quote values briefly"


@SETTINGS
@given(st.text(max_size=300))
def test_any_text_is_a_config_or_a_config_error(text: str) -> None:
    check_config(text)


@SETTINGS
@given(st.dictionaries(st.sampled_from(SECTIONS), values, max_size=4))
def test_any_structure_is_a_config_or_a_config_error(document: dict) -> None:
    import yaml

    check_config(yaml.safe_dump(document))
    check_config(json.dumps(document, default=str))  # JSON is YAML too


@SETTINGS
@given(st.dictionaries(st.sampled_from(["tls_server_config", "basic_auth_users", "http_server_config", "x"]),
                       values, max_size=3))
def test_any_web_config_is_valid_or_a_config_error(document: dict) -> None:
    import yaml

    with contextlib.suppress(ConfigError):
        parse_config(yaml.safe_dump(document), "web.yml", WebConfig)


json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20)),
                           lambda inner: st.one_of(st.lists(inner, max_size=5),
                                                   st.dictionaries(st.sampled_from(["data", "id", "root",
                                                                                    "max_model_len", "m"]), inner,
                                                                   max_size=5)), max_leaves=20)


@SETTINGS
@given(st.one_of(json_values.map(lambda v: json.dumps(v).encode()), st.binary(max_size=200)))
def test_any_model_list_is_read_or_malformed(body: bytes) -> None:
    result = ProbeResult(EndpointConfig(name="e", base_url="http://h", model="m"))
    try:
        read_model_list(body, result.endpoint, result)
    except engine_http.HttpFailure as failure:
        assert failure.reason == "malformed"
        return
    for served, max_len in result.served_models.items():
        assert served == clean(served) and (max_len is None or type(max_len) is int)


def read_answer(data: bytes) -> None:
    """The engine client's parse of one HTTP answer, from raw bytes."""

    async def run() -> None:
        reader = asyncio.StreamReader(limit=engine_http.MAX_LINE_BYTES)
        reader.feed_data(data)
        reader.feed_eof()
        engine_http._status(await engine_http._line(reader))
        fields = await engine_http._headers(reader)
        await engine_http._body(reader, fields, 4096)

    # _get_once maps the last two to `malformed`
    with contextlib.suppress(engine_http.HttpFailure, asyncio.IncompleteReadError, ConnectionError):
        asyncio.run(run())


http_like = st.builds(lambda status, headers, body: status + headers + b"\r\n" + body,
                      st.sampled_from([b"HTTP/1.1 200 OK\r\n", b"HTTP/1.0 404 x\r\n", b"HTTP/1.1 2000\r\n",
                                       b"garbage\r\n", b""]),
                      st.lists(st.sampled_from([b"Content-Length: 5\r\n", b"Content-Length: -1\r\n",
                                                b"Content-Length: 99999999\r\n", b"Transfer-Encoding: chunked\r\n",
                                                b"X: y\r\n", b"no colon\r\n"]), max_size=4).map(b"".join),
                      st.one_of(st.binary(max_size=100), st.sampled_from([b"5\r\nhello\r\n0\r\n\r\n", b"zz\r\n",
                                                                          b"ffffff\r\nab"])))


@SETTINGS
@given(st.one_of(http_like, st.binary(max_size=300)))
def test_any_http_answer_parses_or_fails_cleanly(data: bytes) -> None:
    read_answer(data)


@SETTINGS
@given(st.binary(max_size=200))
def test_any_stream_event_parses_or_is_a_valueerror(data: bytes) -> None:
    with contextlib.suppress(ValueError):
        parse_event(data)


@SETTINGS
@given(st.text(max_size=400))
def test_label_values_are_clean(value: str) -> None:
    cleaned = clean(value)
    cleaned.encode("utf-8")
    assert len(cleaned) <= MAX_LABEL_CHARS
    assert not any(ord(c) < 32 or 127 <= ord(c) <= 159 for c in cleaned)
