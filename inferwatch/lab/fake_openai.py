"""A fake OpenAI-compatible server (vLLM's HTTP surface) for tests, benchmarks and fault drills.

It stands in for an engine in states a real vLLM cannot be put into on demand (failing health,
slow, malformed, refusing without a token), and measures clients, not a model. One aiohttp app,
two ways to run it:

- in a test, on its own event loop in a background thread, on a free loopback port::

      with FakeOpenAI(health_status=503) as fake:   # or fake = FakeOpenAI(...).start(); fake.stop()
          probe(EndpointConfig("e", fake.url, fake.behaviour.model), 1.0)

- as a process (benchmarks, the injector's tests), so the client under test has the CPU to itself::

      python -m inferwatch.lab.fake_openai --port 8100 [--ports 10] [--token-delay 0.002] [--health-delay 5]

Routes, as vLLM answers them: `GET /health` (empty body), `GET /v1/models` (one model with `root`
and `max_model_len`), `GET /version`, `POST /v1/completions` and `POST /v1/chat/completions`,
streamed as one server-sent event per output token (`text`, or `delta.content` after a first
`delta.role` chunk for chat; the last one carries `finish_reason`), then a usage chunk
(`stream_options.include_usage`), then `[DONE]`; with `"stream": false`, one JSON answer.
The answer is `"x"` per token (`max_tokens` of them, default 16), or `Behaviour.answer` split
into words, one token each (cut at `max_tokens`, `finish_reason` "length", else "stop"), so
assertions on it are deterministic. `POST /tokenize` and `POST /detokenize` use a byte tokenizer
(a token id per UTF-8 byte). A request no real server would accept (not JSON, wrong model,
prompt plus `max_tokens` beyond the context) is HTTP 400, so clients' error accounting can be
exercised.

Everything it does is its `Behaviour`, read on every request, so a test may change
`fake.behaviour.health_status` while it runs. Adding a hostile behaviour (trickling a body,
redirect loops, resetting connections): a new `Behaviour` field honoured in `_dispatch` (every
route) or in one handler; or, for a one-off, `Behaviour(routes={"GET /health": respond})` with
`async def respond(request, behaviour) -> web.StreamResponse`, which replaces or adds that route.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import socket
import threading
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

DEFAULT_MODEL = "fake"
SHUTDOWN_SECONDS = 0.1  # stop() waits this long for in-flight requests, then cancels them

Responder = Callable[[web.Request, "Behaviour"], Awaitable[web.StreamResponse]]


@dataclass
class Behaviour:
    """What the fake engine does. Fields are read per request: change them at any time."""

    health_status: int = 200
    health_delay: float = 0.0  # seconds before /health answers
    delay: float = 0.0  # seconds before any request is answered
    model: str = DEFAULT_MODEL
    root: str | None = None  # where "the engine loaded the model from"; default /models/<model>
    max_model_len: int = 4096
    models_body: bytes | None = None  # the raw /v1/models body instead of the model list (malformed peers)
    version: str | None = "0.0.0+fake"  # /version's `version`; None: /version is 404, as on old engines
    require_auth: str | None = None  # the exact Authorization header required, else 401
    token_delay: float = 0.0  # seconds before each streamed token
    answer: str | None = None  # the fixed answer text (one token per word); None: "x" per token
    completions_status: int = 200  # non-200: both generation routes answer this status, with vLLM's error body
    cut_stream_after: int | None = None  # close the connection after this many tokens, without usage or [DONE]
    invalid_json_chunk: bool = False  # one `data:` line that is not JSON, after the first token
    tokenizer: bool = True  # False: /tokenize and /detokenize are 404, as on engines without them
    detokenize_lossy: bool = False  # /detokenize drops the last token: a round trip that does not match
    routes: dict[str, Responder] = field(default_factory=dict)  # "METHOD /path" -> replacement handler


class FakeOpenAI:
    """The fake engine. `FakeOpenAI(Behaviour(...))` or `FakeOpenAI(health_status=503, ...)`."""

    def __init__(self, behaviour: Behaviour | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 **fields: object):
        if behaviour is not None and fields:
            raise TypeError("pass a Behaviour or its fields, not both")
        self.behaviour = behaviour if behaviour is not None else Behaviour(**fields)  # type: ignore[arg-type]
        self.host = host
        self.port = port
        self.requests: Counter[str] = Counter()  # "GET /health" -> requests received
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- running in a background thread (tests) ------------------------------------------
    def start(self) -> FakeOpenAI:
        """Listen (the port is bound before this returns) and serve from a background thread."""
        sock = bind(self.host, self.port)
        self.port = sock.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"fake-openai-{self.port}", daemon=True)
        self._thread.start()
        self._runner = asyncio.run_coroutine_threadsafe(serve_sockets(self.app(), [sock]), self._loop).result(10)
        return self

    def stop(self) -> None:
        """Close the listener and connections (in-flight requests get SHUTDOWN_SECONDS), end the thread."""
        loop, self._loop = self._loop, None
        if loop is None:
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(shutdown(self._runner), loop).result(SHUTDOWN_SECONDS + 10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        loop.close()

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- the app ---------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        return app

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        behaviour = self.behaviour
        key = f"{request.method} {request.path}"
        self.requests[key] += 1
        if behaviour.delay:
            await asyncio.sleep(behaviour.delay)
        if behaviour.require_auth and request.headers.get("Authorization") != behaviour.require_auth:
            return web.json_response({"error": "Unauthorized"}, status=401)
        handler = behaviour.routes.get(key) or ROUTES.get(key)
        if handler is None:
            return web.json_response({"detail": "Not Found"}, status=404)
        return await handler(request, behaviour)


async def health(_: web.Request, behaviour: Behaviour) -> web.Response:
    if behaviour.health_delay:
        await asyncio.sleep(behaviour.health_delay)
    return web.Response(status=behaviour.health_status)


async def models(_: web.Request, behaviour: Behaviour) -> web.Response:
    if behaviour.models_body is not None:
        return web.Response(body=behaviour.models_body, content_type="application/json")
    root = behaviour.root if behaviour.root is not None else f"/models/{behaviour.model}"
    return web.json_response({"object": "list", "data": [{
        "id": behaviour.model, "object": "model", "owned_by": "vllm", "root": root, "parent": None,
        "max_model_len": behaviour.max_model_len}]})


async def version(_: web.Request, behaviour: Behaviour) -> web.Response:
    if behaviour.version is None:
        return web.json_response({"detail": "Not Found"}, status=404)
    return web.json_response({"version": behaviour.version})


def _bad_request(message: str) -> web.Response:
    return web.json_response({"object": "error", "message": message, "type": "BadRequestError", "code": 400},
                             status=400)


WORD = re.compile(r"\S+\s*|\s+")
GARBAGE_CHUNK = b'data: {"choices": [oops\n\n'


def _prompt_tokens(body: dict, kind: str) -> int:
    """Words of the prompt (a token-id list counts its ids): the fake's stand-in for a tokenizer."""
    if kind == "chat":
        messages = body.get("messages")
        if not isinstance(messages, list):
            raise TypeError("messages must be a list")
        return sum(len(str(m.get("content", "")).split()) for m in messages if isinstance(m, dict))
    prompt = body.get("prompt", [])
    return len(prompt) if isinstance(prompt, list) else len(str(prompt).split())


def _max_tokens(behaviour: Behaviour, requested: Any) -> int:
    """The request's `max_tokens`; by default 16 x's, or the whole fixed answer."""
    if requested is not None:
        return int(requested)
    return 16 if behaviour.answer is None else max(1, len(WORD.findall(behaviour.answer)))


def _answer(behaviour: Behaviour, max_tokens: int) -> tuple[list[str], str]:
    """(tokens, finish_reason) of the answer; only called once `max_tokens` is known to fit the context."""
    if behaviour.answer is None:
        return ["x"] * max_tokens, "length"
    words = WORD.findall(behaviour.answer)
    return (words[:max_tokens], "length") if len(words) > max_tokens else (words, "stop")


def _event(payload: dict) -> bytes:
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


async def completions(request: web.Request, behaviour: Behaviour) -> web.StreamResponse:
    return await _generate(request, behaviour, "completion")


async def chat_completions(request: web.Request, behaviour: Behaviour) -> web.StreamResponse:
    return await _generate(request, behaviour, "chat")


async def _generate(request: web.Request, behaviour: Behaviour, kind: str) -> web.StreamResponse:
    """Both generation routes: validate like vLLM, then answer in one JSON body or as a token stream."""
    if behaviour.completions_status != 200:
        return web.json_response({"error": {"message": "fake engine failure", "type": "InternalServerError",
                                            "code": behaviour.completions_status}},
                                 status=behaviour.completions_status)
    try:
        body = await request.json()
        prompt_len = _prompt_tokens(body, kind)
        max_tokens = _max_tokens(behaviour, body.get("max_tokens"))
    except (ValueError, TypeError, AttributeError):
        return _bad_request("the body must be a JSON object with an integer max_tokens")
    if body.get("model") != behaviour.model:
        return _bad_request(f"The model `{body.get('model')}` does not exist.")
    if max_tokens < 1 or prompt_len + max_tokens > behaviour.max_model_len:
        return _bad_request(f"prompt ({prompt_len}) + max_tokens ({max_tokens}) exceeds the context "
                            f"({behaviour.max_model_len})")
    tokens, finish = _answer(behaviour, max_tokens)
    usage = {"prompt_tokens": prompt_len, "completion_tokens": len(tokens),
             "total_tokens": prompt_len + len(tokens)}
    chat = kind == "chat"
    head = {"id": "chatcmpl-fake" if chat else "cmpl-fake", "object": "chat.completion.chunk" if chat
            else "text_completion", "created": 0, "model": behaviour.model}
    if not body.get("stream"):
        if behaviour.token_delay:
            await asyncio.sleep(behaviour.token_delay * len(tokens))
        text = "".join(tokens)
        choice = ({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish} if chat
                  else {"index": 0, "text": text, "finish_reason": finish})
        return web.json_response({**head, "object": "chat.completion" if chat else "text_completion",
                                  "usage": usage, "choices": [choice]})

    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    try:
        if not await _stream(response, behaviour, head, tokens, finish, usage):
            return _cut(request, response)
    except ConnectionResetError:  # the client hung up (a probe's deadline, a load test's timeout): not an error
        pass
    return response


async def _stream(response: web.StreamResponse, behaviour: Behaviour, head: dict, tokens: list[str], finish: str,
                  usage: dict) -> bool:
    """Write the token events, the usage chunk and [DONE]; False where `cut_stream_after` says to stop."""
    chat = head["object"] == "chat.completion.chunk"

    def chunk(token: str, finish_reason: str | None) -> bytes:
        part = {"delta": {"content": token}} if chat else {"text": token}
        return _event({**head, "choices": [{"index": 0, **part, "logprobs": None, "finish_reason": finish_reason}]})

    if chat:
        await response.write(_event({**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                                          "logprobs": None, "finish_reason": None}]}))
    cache: dict[str, bytes] = {}  # most tokens repeat ("x"): encode each once
    for sent, token in enumerate(tokens):
        if behaviour.cut_stream_after is not None and sent >= behaviour.cut_stream_after:
            return False
        if behaviour.token_delay:
            await asyncio.sleep(behaviour.token_delay)
        last = sent == len(tokens) - 1
        data = chunk(token, finish) if last else cache.get(token) or cache.setdefault(token, chunk(token, None))
        await response.write(data)
        if sent == 0 and behaviour.invalid_json_chunk:
            await response.write(GARBAGE_CHUNK)
    if behaviour.cut_stream_after is not None:
        return False
    await response.write(_event({**head, "choices": [], "usage": usage}))
    await response.write(b"data: [DONE]\n\n")
    return True


def _cut(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    """Drop the connection mid-stream (no terminating chunk): a crashed engine or a broken proxy."""
    response.force_close()
    if request.transport is not None:
        request.transport.close()
    return response


async def tokenize(request: web.Request, behaviour: Behaviour) -> web.Response:
    """vLLM's /tokenize for a `prompt`: one id per UTF-8 byte."""
    if not behaviour.tokenizer:
        return web.json_response({"detail": "Not Found"}, status=404)
    try:
        body = await request.json()
        ids = list(body["prompt"].encode("utf-8"))
    except (ValueError, TypeError, AttributeError, KeyError):
        return _bad_request("the body must be a JSON object with a string prompt")
    if body.get("model", behaviour.model) != behaviour.model:
        return _bad_request(f"The model `{body.get('model')}` does not exist.")
    return web.json_response({"count": len(ids), "max_model_len": behaviour.max_model_len, "tokens": ids,
                              "token_strs": None})


async def detokenize(request: web.Request, behaviour: Behaviour) -> web.Response:
    if not behaviour.tokenizer:
        return web.json_response({"detail": "Not Found"}, status=404)
    try:
        body = await request.json()
        ids = body["tokens"]
        data = bytes(ids[:-1] if behaviour.detokenize_lossy else ids)
    except (ValueError, TypeError, AttributeError, KeyError):
        return _bad_request("the body must be a JSON object with a list of byte-sized token ids")
    if body.get("model", behaviour.model) != behaviour.model:
        return _bad_request(f"The model `{body.get('model')}` does not exist.")
    return web.json_response({"prompt": data.decode("utf-8", "replace")})


ROUTES: dict[str, Responder] = {
    "GET /health": health,
    "GET /v1/models": models,
    "GET /version": version,
    "POST /v1/completions": completions,
    "POST /v1/chat/completions": chat_completions,
    "POST /tokenize": tokenize,
    "POST /detokenize": detokenize,
}


# -- serving ----------------------------------------------------------------------------------

def bind(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket (port 0: any free port); OSError when the port is taken."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


async def serve_sockets(app: web.Application, sockets: list[socket.socket]) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_SECONDS)
    await runner.setup()
    for sock in sockets:
        await web.SockSite(runner, sock, backlog=1024).start()
    return runner


async def shutdown(runner: web.AppRunner) -> None:
    """Stop serving, then cancel what is still running (a deliberately slow handler), so nothing leaks."""
    await runner.cleanup()
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def serve_forever(fake: FakeOpenAI, ports: int) -> None:
    sockets = [bind(fake.host, fake.port + offset) for offset in range(ports)]
    await serve_sockets(fake.app(), sockets)
    await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m inferwatch.lab.fake_openai",
                                     description="A fake OpenAI-compatible engine (see the module docstring).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--ports", type=int, default=1, help="serve on this many consecutive ports from --port")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--token-delay", type=float, default=0.0, help="seconds between streamed tokens")
    parser.add_argument("--health-delay", type=float, default=0.0, help="make /health this slow (seconds)")
    parser.add_argument("--answer", default=None, help="answer this text (one token per word) instead of x's")
    args = parser.parse_args(argv)
    fake = FakeOpenAI(host=args.host, port=args.port, model=args.model, token_delay=args.token_delay,
                      health_delay=args.health_delay, answer=args.answer)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends a manual run quietly
        asyncio.run(serve_forever(fake, args.ports))


if __name__ == "__main__":
    main()
