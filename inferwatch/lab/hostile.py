"""Hostile HTTP peers for the hostile test tier and the soak benchmark (lab only).

Each `HostilePeer` misbehaves in one named way on every connection, the way a broken engine, a
confused proxy or an attacker would, at the byte level (healthy neighbours are the lab's one fake
engine, `inferwatch.lab.fake_openai`). They run on one asyncio loop in a background thread, so a
hundred hanging connections cost no threads.

Modes:
- `hang`: accepts, reads the request, never answers
- `trickle`: a correct answer, one byte every `interval` seconds
- `slow_headers`: the status line, then nothing
- `reset`: closes the connection with a TCP reset
- `garbage`: a status line that is not HTTP
- `huge`: announces and streams a 100 MB body
- `redirect`: 302 to `location` for every path
- `many_models`: /v1/models lists `count` adapters first, the configured model last
- `odd_ids`: /v1/models ids with a lone surrogate, control characters and 200,000 characters
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from typing import Any

from inferwatch.kit.workers import LoopThread

MODES = ("hang", "trickle", "slow_headers", "reset", "garbage", "huge", "redirect", "many_models",
         "odd_ids")


class HostilePeer:
    def __init__(self, mode: str, model: str = "m", interval: float = 0.3, location: str = "", count: int = 10_000):
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r} (known: {', '.join(MODES)})")
        self.mode, self.model, self.interval, self.location, self.count = mode, model, interval, location, count
        self.requests: list[dict[str, str]] = []  # request line and headers seen, for assertions
        self._thread: LoopThread | None = None
        self._server: asyncio.base_events.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> HostilePeer:
        self._thread = LoopThread(f"hostile-{self.mode}")
        self._server = self._thread.submit(
            asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=1024)).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.loop.call_soon_threadsafe(self._server.close)
            self._thread.close()

    # -- one connection -------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            request = {"line": lines[0]}
            request.update({k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:] if h)})
            self.requests.append(request)
            path = lines[0].split(" ")[1] if " " in lines[0] else "/"
            await self._answer(path, reader, writer)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            if not writer.is_closing():
                writer.close()

    async def _answer(self, path: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        mode = self.mode
        if mode == "hang":
            await reader.read()  # never answer; return when the client gives up and closes
        elif mode == "slow_headers":
            writer.write(b"HTTP/1.1 200 OK\r\n")
            await writer.drain()
            await reader.read()
        elif mode == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        elif mode == "garbage":
            writer.write(b"HTTQ/9 what is this\r\n\r\n")
        elif mode == "huge":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n")
            chunk = b"\0" * 65536
            for _ in range(100_000_000 // len(chunk)):
                writer.write(chunk)
                await writer.drain()
        elif mode == "redirect":
            writer.write(f"HTTP/1.1 302 Found\r\nLocation: {self.location}{path}\r\nContent-Length: 0\r\n\r\n"
                         .encode())
        else:
            status, body = self._engine(path)
            response = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n" \
                       f"Connection: close\r\n\r\n".encode() + body
            if mode == "trickle":
                for i in range(len(response)):
                    writer.write(response[i:i + 1])
                    await writer.drain()
                    await asyncio.sleep(self.interval)
            else:
                writer.write(response)
        await writer.drain()

    def _engine(self, path: str) -> tuple[str, bytes]:
        if path == "/health":
            return "200 OK", b""
        if path == "/version":
            return "200 OK", b'{"version": "0.32.0"}'
        if path == "/v1/models":
            entries: list[dict[str, Any]] = [{"id": self.model, "root": f"/models/{self.model}", "max_model_len": 4096}]
            if self.mode == "many_models":
                entries = [{"id": f"lora-{i}", "max_model_len": 4096} for i in range(self.count)] + entries
            if self.mode == "odd_ids":
                return "200 OK", (b'{"data": [{"id": "\\ud800bad"}, {"id": "ctl\\u0007\\u001bid"}, {"id": "'
                                  + b"x" * 200_000 + b'"}, ' + json.dumps(entries[0]).encode() + b"]}")
            return "200 OK", json.dumps({"object": "list", "data": entries}).encode()
        return "404 Not Found", b"{}"
