"""A component's HTTP endpoints: GET /health (JSON; 503 when degraded) and GET /metrics.

Shared by the connector and the archiver; `ssmd up` reads both to show its status.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import orjson

__all__ = ["HealthServer"]


class HealthServer:
    def __init__(
        self,
        health: Callable[[], tuple[bool, dict[str, object]]],
        metrics: Callable[[], str],
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.health, self.metrics = health, metrics
        self.host, self._port = host, port
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self._port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(5):
                line = await reader.readline()
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
            parts = line.decode("latin-1").split()
            path = parts[1].split("?", 1)[0] if len(parts) > 1 else "/"
            if path == "/health":
                ok, body = self.health()
                status, ctype, data = (
                    ("200 OK" if ok else "503 Service Unavailable"),
                    "application/json",
                    orjson.dumps(body),
                )
            elif path == "/metrics":
                status, ctype = "200 OK", "text/plain; version=0.0.4"
                data = self.metrics().encode()
            else:
                status, ctype, data = "404 Not Found", "text/plain", b"not found\n"
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(data)}\r\n"
                "Connection: close\r\n\r\n".encode()
                + data
            )
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
