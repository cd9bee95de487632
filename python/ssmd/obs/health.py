"""A component's HTTP endpoints: GET /health (JSON; 503 when degraded), GET /live and
GET /metrics, and the component's control actions as POST routes (`actions`: the
connector's `/control/resync`, the archiver's `/control/seal`).

/live answers 200 whenever the process's event loop does: it is what a liveness probe
asks. /health is not, since it is 503 through conditions the component rides out
itself (NATS away, a store failing, a shard reconnecting): restarting it then would
throw away what it holds in memory and gain nothing.

Shared by the connector and the archiver; `ssmd up` reads both to show its status.
Actions change what a component does, so they are answered only to clients on the
same machine (a loopback peer; anyone else gets 403): the port also serves probes,
which in a cluster come from other hosts.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import Awaitable, Callable, Mapping
from typing import Final
from urllib.parse import parse_qsl

import orjson

from ssmd.obs.metrics import CONTENT_TYPE, CollectorRegistry, expose

__all__ = ["Action", "HealthServer"]

# An action: the query's parameters -> (HTTP status, JSON body).
Action = Callable[[dict[str, str]], Awaitable[tuple[int, dict[str, object]]]]
ACTION_TIMEOUT: Final = 60.0  # seconds an action may take before it is answered 504
_REASONS: Final = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
                   405: "Method Not Allowed", 409: "Conflict", 503: "Service Unavailable",
                   504: "Gateway Timeout"}  # fmt: skip


def _loopback(peer: object) -> bool:
    host = peer[0] if isinstance(peer, tuple) and peer else None
    try:
        return host is not None and ipaddress.ip_address(str(host)).is_loopback
    except ValueError:
        return False


class HealthServer:
    def __init__(
        self,
        health: Callable[[], tuple[bool, dict[str, object]]],
        registry: CollectorRegistry,
        host: str = "127.0.0.1",
        port: int = 0,
        actions: Mapping[str, Action] | None = None,
    ) -> None:
        self.health, self.registry = health, registry
        self.actions = dict(actions or {})
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

    async def _act(
        self, method: str, path: str, query: str, writer: asyncio.StreamWriter
    ) -> tuple[int, dict[str, object]]:
        if method != "POST":
            return 405, {"error": f"{path} is an action: POST it"}
        if not _loopback(writer.get_extra_info("peername")):
            return 403, {"error": f"{path} is answered only to clients on this machine"}
        try:
            async with asyncio.timeout(ACTION_TIMEOUT):
                return await self.actions[path](dict(parse_qsl(query)))
        except TimeoutError:
            return 504, {"error": f"{path} did not finish within {ACTION_TIMEOUT:g} s"}

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(5):
                line = await reader.readline()
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
            parts = line.decode("latin-1").split()
            target = parts[1] if len(parts) > 1 else "/"
            path, _, query = target.partition("?")
            if path in self.actions:
                code, doc = await self._act(parts[0], path, query, writer)
                status, ctype = f"{code} {_REASONS.get(code, 'Error')}", "application/json"
                data = orjson.dumps(doc)
            elif path == "/health":
                ok, body = self.health()
                status, ctype, data = (
                    ("200 OK" if ok else "503 Service Unavailable"),
                    "application/json",
                    orjson.dumps(body),
                )
            elif path == "/live":
                status, ctype, data = "200 OK", "application/json", b'{"live":true}'
            elif path == "/metrics":
                status, ctype = "200 OK", CONTENT_TYPE
                data = expose(self.registry).encode()
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
