"""The replay's control endpoint, plain HTTP on loopback by default:

    GET  /replay/state             the clock (archive time, speed, paused, frames) and target
    POST /replay/pause             stop sending; the clock stands
    POST /replay/resume            go on from where it stood
    POST /replay/seek?to=TIME      go on from TIME (ISO 8601, or UTC nanoseconds)

Every answer is the state as JSON (GET works for the commands too, for a browser or
curl without -X). A bad `to` is 400 with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from ssmd.replay.clock import ReplayClock

__all__ = ["ControlServer", "parse_time"]


def parse_time(text: str) -> int:
    """UTC nanoseconds from digits, or from an ISO 8601 time (a time without a zone is
    UTC); ValueError saying what is expected."""
    from ssmd.data.query import window

    value = text.strip()
    if value.isdigit():
        return int(value)
    if len(value) <= 10:
        raise ValueError(f"{text!r} is not a time: expected YYYY-MM-DDTHH:MM:SSZ or nanoseconds")
    return window(value).start_ns


class ControlServer:
    def __init__(
        self,
        clock: ReplayClock,
        state: Callable[[], dict[str, Any]],
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.clock, self.state = clock, state
        self.host, self._port = host, port
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self._port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    def answer(self, path: str, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        clock = self.clock
        if path == "/replay/pause":
            clock.pause()
        elif path == "/replay/resume":
            clock.resume()
        elif path == "/replay/seek":
            to = (query.get("to") or [""])[0]
            try:
                clock.seek(parse_time(to))
            except ValueError as exc:
                return 400, {"error": f"seek: {exc}. Fix: /replay/seek?to=2026-12-03T12:00:00Z"}
        elif path != "/replay/state":
            return 404, {
                "error": f"no such endpoint {path}",
                "endpoints": [
                    "/replay/state",
                    "/replay/pause",
                    "/replay/resume",
                    "/replay/seek?to=",
                ],
            }
        return 200, self.state()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(5):
                line = await reader.readline()
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
            parts = line.decode("latin-1").split()
            url = urlsplit(parts[1] if len(parts) > 1 else "/")
            status, body = self.answer(url.path, parse_qs(url.query))
            data = orjson.dumps(body)
            reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}[status]
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
                + data
            )
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
