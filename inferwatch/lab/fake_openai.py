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
and `max_model_len`), `GET /version`, and `POST /v1/completions`, streamed as one server-sent
event per output token, then a usage chunk (`stream_options.include_usage`), then `[DONE]`; with
`"stream": false`, one JSON answer. A request no real server would accept (not JSON, wrong model,
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
import socket
import threading
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

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
    token_delay: float = 0.0  # seconds between streamed tokens
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


TOKEN_CHUNK = b'data: {"choices":[{"index":0,"text":"x"}]}\n\n'


async def completions(request: web.Request, behaviour: Behaviour) -> web.StreamResponse:
    try:
        body = await request.json()
        max_tokens = int(body.get("max_tokens", 16))
    except (ValueError, TypeError, AttributeError):
        return _bad_request("the body must be a JSON object with an integer max_tokens")
    prompt = body.get("prompt", [])
    prompt_len = len(prompt) if isinstance(prompt, list) else len(str(prompt).split())
    if body.get("model") != behaviour.model:
        return _bad_request(f"The model `{body.get('model')}` does not exist.")
    if max_tokens < 1 or prompt_len + max_tokens > behaviour.max_model_len:
        return _bad_request(f"prompt ({prompt_len}) + max_tokens ({max_tokens}) exceeds the context "
                            f"({behaviour.max_model_len})")
    usage = {"prompt_tokens": prompt_len, "completion_tokens": max_tokens, "total_tokens": prompt_len + max_tokens}
    if not body.get("stream"):
        if behaviour.token_delay:
            await asyncio.sleep(behaviour.token_delay * max_tokens)
        return web.json_response({"object": "text_completion", "model": behaviour.model, "usage": usage,
                                  "choices": [{"index": 0, "text": "x" * max_tokens, "finish_reason": "length"}]})
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    delay = behaviour.token_delay
    for _ in range(max_tokens):
        if delay:
            await asyncio.sleep(delay)
        await response.write(TOKEN_CHUNK)
    await response.write(f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n".encode())
    await response.write(b"data: [DONE]\n\n")
    return response


ROUTES: dict[str, Responder] = {
    "GET /health": health,
    "GET /v1/models": models,
    "GET /version": version,
    "POST /v1/completions": completions,
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
    args = parser.parse_args(argv)
    fake = FakeOpenAI(host=args.host, port=args.port, model=args.model, token_delay=args.token_delay,
                      health_delay=args.health_delay)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends a manual run quietly
        asyncio.run(serve_forever(fake, args.ports))


if __name__ == "__main__":
    main()
