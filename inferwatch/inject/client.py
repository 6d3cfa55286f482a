"""One streamed completion request, timed from the client's side. No prompt or output text is kept."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import aiohttp

from inferwatch.inject.schedule import Arrival

WORDS = ("model", "token", "cache", "queue", "latency", "batch", "prompt", "stream", "engine", "graph")


@dataclass
class Target:
    base_url: str
    model: str
    token_low: int = 10  # prompts are token ids in [token_low, token_high): exact lengths, no tokenizer
    token_high: int = 400
    text_prompts: bool = False  # for endpoints that do not accept token-id prompts
    vllm_extensions: bool = True  # ignore_eos: makes output lengths exactly max_tokens on vLLM
    auth_header: str | None = None
    timeout: float = 120.0


@dataclass
class Result:
    ok: bool
    error: str = ""  # http_4xx | http_5xx | redirect | timeout | connection | protocol | other
    ttft: float | None = None
    e2e: float | None = None
    tpot: float | None = None
    output_tokens: int = 0


def payload(target: Target, arrival: Arrival) -> dict:
    n = arrival.prompt_tokens
    span = max(1, target.token_high - target.token_low)
    body: dict = {"model": target.model, "max_tokens": arrival.output_tokens, "stream": True,
                  "stream_options": {"include_usage": True}}
    if target.text_prompts:
        body["prompt"] = " ".join(WORDS[(i + arrival.token_offset) % len(WORDS)] for i in range(n))
    else:
        offset = arrival.token_offset
        body["prompt"] = [target.token_low + (i * 7 + offset) % span for i in range(n)]
    if target.vllm_extensions:
        body["ignore_eos"] = True
    if arrival.invalid:  # a request no server accepts: far beyond any context window
        body["max_tokens"] = 10**9
    return body


def parse_event(data: bytes) -> tuple[bool, int | None]:
    """(carries a generated token, completion tokens from a usage chunk) of one SSE event; ValueError if
    malformed. A choice whose text is empty still carries a token: a token that decodes to no characters
    (part of a multi-byte character, a special token) is a normal answer, not a protocol error."""
    event = json.loads(data)
    if not isinstance(event, dict):
        raise ValueError("event is not a JSON object")
    choices = event.get("choices") or []
    first = choices[0] if isinstance(choices, list) and choices else None
    has_text = isinstance(first, dict) and isinstance(first.get("text"), str)
    usage = event.get("usage")
    tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
    return has_text, int(tokens) if isinstance(tokens, int) and tokens >= 0 else None


async def send(session: aiohttp.ClientSession, target: Target, arrival: Arrival) -> Result:
    url = target.base_url.rstrip("/") + "/v1/completions"
    headers = {"Authorization": target.auth_header} if target.auth_header else None
    started = time.perf_counter()
    first = None
    tokens = chunks = 0
    try:
        # No redirects: a 30x must not carry the Authorization header to another host.
        async with session.post(url, json=payload(target, arrival), headers=headers, allow_redirects=False,
                                timeout=aiohttp.ClientTimeout(total=target.timeout)) as response:
            if 300 <= response.status < 400:
                await response.read()
                return Result(False, "redirect")
            if response.status >= 400:
                await response.read()
                return Result(False, "http_5xx" if response.status >= 500 else "http_4xx")
            async for raw in response.content:
                line = raw.strip()
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    break
                text, usage_tokens = parse_event(data)
                if text:
                    chunks += 1
                    if first is None:
                        first = time.perf_counter()
                if usage_tokens is not None:
                    tokens = usage_tokens
    except TimeoutError:
        return Result(False, "timeout")
    except aiohttp.ClientConnectionError:
        return Result(False, "connection")
    except (ValueError, aiohttp.ClientPayloadError):
        return Result(False, "protocol")
    except aiohttp.ClientError:
        return Result(False, "other")
    end = time.perf_counter()
    tokens = tokens or chunks
    if first is None:
        return Result(False, "protocol")
    ttft, e2e = first - started, end - started
    tpot = (e2e - ttft) / (tokens - 1) if tokens > 1 else None
    return Result(True, ttft=ttft, e2e=e2e, tpot=tpot, output_tokens=tokens)
