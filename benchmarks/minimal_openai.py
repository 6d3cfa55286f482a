"""A minimal OpenAI-compatible endpoint for load-generator tests and benchmarks.

Streams `max_tokens` one-token chunks with no delay (or `--token-delay`), answers /health and
/v1/models, and rejects requests no real server would accept (HTTP 400), so the injector's error
accounting can be exercised. It measures the client, not a model.

Run: python benchmarks/minimal_openai.py --port 8100
"""

from __future__ import annotations

import argparse
import asyncio
import json

from aiohttp import web

MODEL = "minimal"
MAX_MODEL_LEN = 4096


async def health(request: web.Request) -> web.Response:
    if request.app["health_delay"]:
        await asyncio.sleep(request.app["health_delay"])
    return web.Response(status=200)


async def models(_: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": [
        {"id": MODEL, "object": "model", "root": MODEL, "max_model_len": MAX_MODEL_LEN}]})


async def completions(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    max_tokens = int(body.get("max_tokens", 16))
    prompt = body.get("prompt", [])
    prompt_len = len(prompt) if isinstance(prompt, list) else len(str(prompt).split())
    if max_tokens + prompt_len > MAX_MODEL_LEN or body.get("model") != MODEL:
        return web.json_response({"error": {"message": "bad request"}}, status=400)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    delay = request.app["token_delay"]
    chunk = b'data: {"choices":[{"index":0,"text":"x"}]}\n\n'
    for _ in range(max_tokens):
        if delay:
            await asyncio.sleep(delay)
        await response.write(chunk)
    usage = {"prompt_tokens": prompt_len, "completion_tokens": max_tokens, "total_tokens": prompt_len + max_tokens}
    await response.write(f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n".encode())
    await response.write(b"data: [DONE]\n\n")
    return response


def make_app(token_delay: float = 0.0, health_delay: float = 0.0) -> web.Application:
    app = web.Application()
    app["token_delay"] = token_delay
    app["health_delay"] = health_delay
    app.add_routes([web.get("/health", health), web.get("/v1/models", models),
                    web.post("/v1/completions", completions)])
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--ports", type=int, default=1, help="serve on this many consecutive ports")
    parser.add_argument("--token-delay", type=float, default=0.0)
    parser.add_argument("--health-delay", type=float, default=0.0, help="make /health this slow (seconds)")
    args = parser.parse_args()
    asyncio.run(serve(make_app(args.token_delay, args.health_delay), args.port, args.ports))


async def serve(app: web.Application, port: int, count: int) -> None:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    for offset in range(count):
        await web.TCPSite(runner, "127.0.0.1", port + offset, backlog=1024).start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    main()
