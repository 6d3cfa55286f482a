"""The quality probe's HTTP client against the fake engine and hostile peers: every failure is an
Outcome with a bounded reason, the deadline holds across connect, headers and the whole stream,
and the timings follow the TTFT/TPOT definitions (usage tokens, not chunks)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator

import pytest
from aiohttp import web

from inferwatch.exporters.probe.client import Outcome, RoundTrip, list_models, run_request, tokenize_roundtrip
from inferwatch.lab import fake_openai
from inferwatch.lab.fake_openai import Behaviour, FakeOpenAI
from inferwatch.lab.hostile import HostilePeer
from inferwatch.lab.process import free_port

ANSWER = "Paris is the capital of France."  # six words: six tokens in the fake
QUESTION = "What is the capital of France?"
SYSTEM = "Answer in one sentence."
TOKEN_DELAY = 0.03


@pytest.fixture
def engine(fake_engines: Callable[..., FakeOpenAI]) -> Callable[..., FakeOpenAI]:
    """Starts fake engines serving model "m" with a fixed answer; stops them after the test."""
    return lambda **fields: fake_engines(**{"model": "m", "answer": ANSWER, **fields})


@pytest.fixture
def hostile() -> Iterator[Callable[..., HostilePeer]]:
    started: list[HostilePeer] = []

    def start(mode: str, **options: object) -> HostilePeer:
        peer = HostilePeer(mode, **options).start()  # type: ignore[arg-type]
        started.append(peer)
        return peer

    yield start
    for peer in started:
        peer.stop()


def raw_stream(*events: bytes, delay: float = 0.0, forever: bytes | None = None) -> fake_openai.Responder:
    """A generation route that writes these bytes as they are (then `forever` in a loop, if given)."""

    async def respond(request: web.Request, _: Behaviour) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for event in events:
            await response.write(event)
            await asyncio.sleep(delay)
        while forever is not None:
            await response.write(forever)
            await asyncio.sleep(delay)
        return response

    return respond


def chat(fake_or_url: FakeOpenAI | str, deadline: float = 5.0, **kwargs: object) -> Outcome:
    url = fake_or_url if isinstance(fake_or_url, str) else fake_or_url.url
    options: dict = {"kind": "chat", "model": "m", "prompt": QUESTION, "system": SYSTEM,
                     "params": {"temperature": 0, "seed": 1}, "deadline_seconds": deadline, **kwargs}
    return run_request(url, **options)


# -- good streams ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["chat", "completion"])
def test_a_good_stream_is_measured(engine, kind: str) -> None:
    fake = engine(token_delay=TOKEN_DELAY)
    outcome = run_request(fake.url, kind, "m", QUESTION, SYSTEM, {"temperature": 0}, 5.0)
    assert (outcome.ok, outcome.failure, outcome.status_code, outcome.bug) == (True, None, 200, "")
    assert outcome.text == ANSWER
    assert (outcome.served_model, outcome.finish_reason, outcome.completion_tokens) == ("m", "stop", 6)
    # the fake counts prompt words; a chat prompt includes the system message
    assert outcome.prompt_tokens == (len(QUESTION.split()) + len(SYSTEM.split()) if kind == "chat"
                                     else len(QUESTION.split()))
    assert outcome.ttft_seconds is not None and outcome.tpot_seconds is not None
    assert TOKEN_DELAY * 0.8 < outcome.ttft_seconds < outcome.e2e_seconds
    # five gaps of one token delay between the first and the last content chunk, over 6 - 1 tokens
    assert TOKEN_DELAY * 0.8 < outcome.tpot_seconds < TOKEN_DELAY * 2.5
    assert outcome.e2e_seconds >= 6 * TOKEN_DELAY
    assert fake.requests[f"POST /v1/{'chat/completions' if kind == 'chat' else 'completions'}"] == 1


def test_the_request_streams_with_usage_and_keeps_its_own_fields(engine) -> None:
    seen: list[dict] = []

    async def capture(request: web.Request, behaviour: Behaviour) -> web.StreamResponse:
        seen.append(await request.json())
        return await fake_openai.chat_completions(request, behaviour)

    fake = engine(routes={"POST /v1/chat/completions": capture})
    params = {"temperature": 0, "max_tokens": 3, "stream": False, "model": "other", "messages": []}
    outcome = run_request(fake.url, "chat", "m", QUESTION, SYSTEM, params, 5.0)
    assert outcome.ok and outcome.text == "Paris is the " and outcome.finish_reason == "length"
    body = seen[0]
    assert (body["stream"], body["stream_options"], body["model"]) == (True, {"include_usage": True}, "m")
    assert body["messages"] == [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]
    assert (body["temperature"], body["max_tokens"]) == (0, 3)


def test_tpot_needs_two_tokens_and_a_usage_chunk(engine) -> None:
    one = chat(engine(answer="Paris."))
    assert (one.ok, one.completion_tokens, one.tpot_seconds) == (True, 1, None)
    assert one.ttft_seconds is not None
    no_usage = engine(routes={"POST /v1/chat/completions": raw_stream(
        b'data: {"model":"m","choices":[{"index":0,"delta":{"content":"a"}}]}\n\n',
        b'data: {"model":"m","choices":[{"index":0,"delta":{"content":"b"},"finish_reason":"stop"}]}\n\n',
        b"data: [DONE]\n\n")})
    outcome = chat(no_usage)
    assert (outcome.ok, outcome.text, outcome.completion_tokens, outcome.tpot_seconds) == (True, "ab", None, None)


def test_sse_framing_crlf_comments_multiline_and_split_writes(engine) -> None:
    fake = engine(routes={"POST /v1/chat/completions": raw_stream(
        b": keep-alive\r\n\r\n",
        b'data: {"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\r\n\r\n',
        b'event: message\r\ndata: {"model":"m","choices":[{"index":0,\r\ndata: "delta":{"content":"He"}}]}\r\n\r\n',
        b'data: {"model":"m","choi', b'ces":[{"index":0,"delta":{"content":"llo"},"finish_reason":"stop"}]}\n',
        b'\ndata:{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}\n\n',
        b"data: [DONE]", delay=0.01)})
    outcome = chat(fake)
    assert (outcome.ok, outcome.text, outcome.finish_reason) == (True, "Hello", "stop")
    assert (outcome.prompt_tokens, outcome.completion_tokens) == (3, 2)
    assert outcome.tpot_seconds is not None and outcome.tpot_seconds > 0


def test_a_whole_answer_in_one_large_event(engine) -> None:
    big = "word " * 40_000  # 200 kB in one event, as a buffering proxy may send it
    event = b'data: {"model":"m","choices":[{"index":0,"delta":{"content":"' + big.encode() + b'"}}]}\n\n'
    outcome = chat(engine(routes={"POST /v1/chat/completions": raw_stream(event, b"data: [DONE]\n\n")}))
    assert (outcome.ok, outcome.text) == (True, big)


def test_auth_token(engine) -> None:
    fake = engine(require_auth="Bearer s3cret")
    assert chat(fake, token="s3cret").ok
    assert chat(fake, token="Bearer s3cret").ok
    refused = chat(fake)
    assert (refused.failure, refused.status_code) == ("http_error", 401)


# -- failures -------------------------------------------------------------------------------------

def test_a_down_endpoint_is_a_connection_error() -> None:
    started = time.perf_counter()
    outcome = chat(f"http://127.0.0.1:{free_port()}")
    assert (outcome.ok, outcome.failure, outcome.status_code) == (False, "connection_error", None)
    assert time.perf_counter() - started < 1.0


def test_http_500_is_an_http_error(engine) -> None:
    outcome = chat(engine(completions_status=500))
    assert (outcome.ok, outcome.failure, outcome.status_code) == (False, "http_error", 500)


def test_a_redirect_is_not_followed(hostile) -> None:
    outcome = chat(hostile("redirect", location="http://example.invalid").url)
    assert (outcome.failure, outcome.status_code) == ("http_error", 302)


@pytest.mark.parametrize("behaviour", [{"cut_stream_after": 2}, {"cut_stream_after": 99}, {"invalid_json_chunk": True}])
def test_broken_streams_are_bad_streams(engine, behaviour: dict) -> None:
    outcome = chat(engine(**behaviour))
    assert (outcome.ok, outcome.failure, outcome.status_code) == (False, "bad_stream", 200)
    if behaviour.get("cut_stream_after") == 2:
        assert outcome.text == "Paris is "  # what arrived is kept; the stream still failed


@pytest.mark.parametrize("events", [
    (b'data: {"model":"m","choices":[{"index":0,"delta":{"content":"a"}}]}\n\n',
     b'data: {"error":{"message":"engine died","type":"InternalServerError","code":500}}\n\n', b"data: [DONE]\n\n"),
    (b'data: {"object":"error","message":"boom","type":"BadRequestError","code":400}\n\n', b"data: [DONE]\n\n"),
    (b'data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":0}}\n\n', b"data: [DONE]\n\n"),
    (b"data: [1, 2]\n\n", b"data: [DONE]\n\n"),
    (b'data: {"choices":{"index":0}}\n\n', b"data: [DONE]\n\n"),
    (b'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\n',),  # ends without [DONE]
], ids=["error-object", "vllm-error", "no-choices", "not-an-object", "choices-not-list", "no-done"])
def test_malformed_streams_are_bad_streams(engine, events: tuple[bytes, ...]) -> None:
    outcome = chat(engine(routes={"POST /v1/chat/completions": raw_stream(*events)}))
    assert (outcome.ok, outcome.failure) == (False, "bad_stream")


def test_an_answer_over_the_size_cap_is_a_bad_stream(engine) -> None:
    flood = raw_stream(b'data: {"model":"m","choices":[{"index":0,"delta":{"content":"a"}}]}\n\n',
                       forever=b": " + b"p" * 8000 + b"\n")
    started = time.perf_counter()
    outcome = chat(engine(routes={"POST /v1/chat/completions": flood}))
    assert (outcome.failure, outcome.status_code) == ("bad_stream", 200)
    assert time.perf_counter() - started < 3.0


@pytest.mark.parametrize("mode", ["garbage", "huge"])
def test_hostile_answers_are_bad_streams(hostile, mode: str) -> None:
    assert chat(hostile(mode).url).failure == "bad_stream"


def test_a_reset_is_a_connection_error(hostile) -> None:
    assert chat(hostile("reset").url).failure == "connection_error"


DEADLINE = 0.5


def within_deadline(outcome: Outcome, started: float) -> None:
    elapsed = time.perf_counter() - started
    assert (outcome.ok, outcome.failure) == (False, "timeout")
    assert elapsed < DEADLINE + 0.5, f"returned after {elapsed:.2f} s"
    assert DEADLINE * 0.9 < outcome.e2e_seconds < DEADLINE + 0.5


def test_a_slow_stream_times_out_at_the_deadline(engine) -> None:
    started = time.perf_counter()
    outcome = chat(engine(token_delay=0.2), deadline=DEADLINE)
    within_deadline(outcome, started)
    assert outcome.status_code == 200 and outcome.ttft_seconds is not None  # it did start answering


def test_a_trickled_stream_cannot_outlive_the_deadline(engine) -> None:
    keepalive = raw_stream(b'data: {"model":"m","choices":[{"index":0,"delta":{"content":"a"}}]}\n\n',
                           forever=b": \n", delay=0.02)
    started = time.perf_counter()
    within_deadline(chat(engine(routes={"POST /v1/chat/completions": keepalive}), deadline=DEADLINE), started)


@pytest.mark.parametrize("mode", ["hang", "slow_headers", "trickle"])
def test_stalled_or_trickled_headers_time_out(hostile, mode: str) -> None:
    peer = hostile(mode, interval=0.05)
    started = time.perf_counter()
    within_deadline(chat(peer.url, deadline=DEADLINE), started)


def test_a_late_engine_times_out(engine) -> None:
    started = time.perf_counter()
    within_deadline(chat(engine(delay=3), deadline=DEADLINE), started)


@pytest.mark.parametrize("url", ["not a url", "http://[::1", "ftp://example.com", "http://127.0.0.1:99999", "",
                                 "http://", "http://exa mple.com", "http://\udcff.example"])
def test_malformed_urls_never_raise(url: str) -> None:
    outcome = chat(url, deadline=2.0)
    assert (outcome.ok, outcome.failure) == (False, "connection_error")
    assert list_models(url, 2.0) == (False, [], "connection_error")
    assert tokenize_roundtrip(url, "m", "hello", 2.0) == RoundTrip(None, "connection_error")


def test_unusable_arguments_never_raise(engine) -> None:
    fake = engine()
    unknown_kind = run_request(fake.url, "embeddings", "m", QUESTION, None, None, 2.0)  # type: ignore[arg-type]
    assert (unknown_kind.failure, unknown_kind.bug) == ("connection_error", "ValueError")
    not_json = run_request(fake.url, "chat", "m", QUESTION, None, {"seed": object()}, 2.0)
    assert (not_json.failure, not_json.bug) == ("connection_error", "TypeError")
    injected = chat(fake, token="x\r\nX-Evil: 1")
    assert (injected.failure, injected.bug) == ("connection_error", "")
    assert fake.requests["POST /v1/chat/completions"] == 0


def test_texts_are_never_logged_nor_in_the_repr(engine, hostile, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="inferwatch.exporters.probe.client")
    outcomes = [chat(engine()), chat(engine(cut_stream_after=3)), chat(engine(invalid_json_chunk=True)),
                chat(engine(token_delay=0.2), deadline=0.3), chat(hostile("garbage").url)]
    assert outcomes[0].text == ANSWER and any(o.failure for o in outcomes)
    logged = caplog.text + "".join(repr(o) for o in outcomes)
    for secret in (ANSWER, QUESTION, SYSTEM, "Paris", "capital"):
        assert secret not in logged


# -- model health checks --------------------------------------------------------------------------

def test_list_models(engine, hostile) -> None:
    fake = engine(max_model_len=2048)
    assert list_models(fake.url, 2.0) == (True, [{"id": "m", "max_model_len": 2048}], None)
    assert list_models(engine(models_body=b"<html>not json").url, 2.0) == (False, [], "bad_stream")
    assert list_models(engine(models_body=b'{"data": [{"name": 1}]}').url, 2.0) == (False, [], "bad_stream")
    assert list_models(engine(models_body=b'{"data": [{"id": "a", "max_model_len": "big"}]}').url, 2.0) == (
        True, [{"id": "a", "max_model_len": None}], None)
    assert list_models(engine(require_auth="Bearer t").url, 2.0) == (False, [], "http_error")
    assert list_models(engine(require_auth="Bearer t").url, 2.0, token="t")[0] is True
    assert list_models(f"http://127.0.0.1:{free_port()}", 2.0) == (False, [], "connection_error")
    started = time.perf_counter()
    assert list_models(hostile("trickle", interval=0.05).url, DEADLINE) == (False, [], "timeout")
    assert time.perf_counter() - started < DEADLINE + 0.5


def test_tokenize_round_trip(engine) -> None:
    text = "Grüße, 世界! The capital of France."
    assert tokenize_roundtrip(engine().url, "m", text, 2.0) == RoundTrip(True, None, len(text.encode()))
    assert tokenize_roundtrip(engine(detokenize_lossy=True).url, "m", text, 2.0).passed is False
    assert tokenize_roundtrip(engine(tokenizer=False).url, "m", text, 2.0) == RoundTrip(None)
    assert tokenize_roundtrip(engine().url, "other", text, 2.0) == RoundTrip(None, "http_error")
    assert tokenize_roundtrip(engine(delay=3).url, "m", text, DEADLINE) == RoundTrip(None, "timeout")
