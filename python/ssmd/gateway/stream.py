"""The `/v1/stream` session: the key, the connection limit, subscriptions, the client's
messages, and the close.

A session runs on a `Connection`: the gateway's own WebSocket connections
(`listener.py`, which write the hub's frames as they are, many in one socket write) or,
under another ASGI server, Starlette's WebSocket (`AsgiConnection`: one `websocket.send`
per message).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, Protocol
from urllib.parse import parse_qsl

import orjson
from starlette.websockets import WebSocket

from ssmd.aio import cancel_and_wait
from ssmd.exceptions import AtLimit
from ssmd.gateway import wire
from ssmd.gateway.auth import ApiKey, KeyRing, presented_key

if TYPE_CHECKING:
    from ssmd.gateway.hub import Client
    from ssmd.gateway.service import Gateway

__all__ = [
    "CLOSE_TOO_MANY",
    "CLOSE_UNAUTHORIZED",
    "REFUSED",
    "AsgiConnection",
    "Connection",
    "check_key",
    "session",
]

log = logging.getLogger(__name__)

CLOSE_UNAUTHORIZED: Final = 4401
CLOSE_TOO_MANY: Final = 4429
CLOSE_WAIT: Final = 5.0  # a client that stopped reading cannot take the close frame either
_ACTIONS: Final = ("subscribe", "unsubscribe")

REFUSED: Final = {
    "missing": "an API key is required: send X-API-Key, Authorization: Bearer, or ?api_key=",
    "invalid": "the API key is not valid",
}


def check_key(
    keys: KeyRing | None, headers: Mapping[str, str], query: Mapping[str, str]
) -> tuple[bool, ApiKey | None, str]:
    """(allowed, key, reason): reason is `missing` or `invalid` when refused. `headers`
    by lower-case name."""
    if keys is None:
        return True, None, ""
    presented = presented_key(headers, query)
    if not presented:
        return False, None, "missing"
    key = keys.match(presented)
    return (key is not None), key, ("" if key is not None else "invalid")


class Connection(Protocol):
    """An accepted WebSocket connection, as a session and the hub use it (it is the
    client's `hub.Writer`)."""

    @property
    def headers(self) -> Mapping[str, str]: ...  # the upgrade request's, by lower-case name
    @property
    def query(self) -> Mapping[str, str]: ...  # the upgrade request's query parameters

    def bind(self, resume: Callable[[], None]) -> None:
        """`resume` is called whenever the connection takes writes again."""

    def writable(self) -> bool: ...
    def write(self, frames: list[bytes]) -> None: ...

    async def receive(self) -> str | bytes | None:
        """The client's next message (text or binary); None once it went away."""

    async def close(self, code: int, reason: str) -> None: ...


async def session(gw: Gateway, conn: Connection) -> None:
    """Serve one accepted connection until it closes."""
    ok, key, reason = check_key(gw.settings.keys, conn.headers, conn.query)
    if not ok:
        gw.metrics.auth_failures.labels(reason).inc()
        await _close(conn, CLOSE_UNAUTHORIZED, REFUSED[reason])
        return
    try:
        client = gw.hub.connect(key)
    except AtLimit as exc:
        gw.metrics.auth_failures.labels("connection_limit").inc()
        await _close(conn, CLOSE_TOO_MANY, str(exc))
        return
    try:
        await _serve(gw, conn, client)
    finally:
        gw.hub.disconnect(client)


async def _close(conn: Connection, code: int, reason: str) -> None:
    with contextlib.suppress(Exception):
        async with asyncio.timeout(CLOSE_WAIT):
            await conn.close(code, reason[:120])


async def _serve(gw: Gateway, conn: Connection, client: Client) -> None:
    hub = gw.hub
    symbols = conn.query.get("symbols")
    if symbols:
        await hub.subscribe(client, [s.strip() for s in symbols.split(",") if s.strip()])
    conn.bind(lambda: hub.writable_again(client))
    hub.attach(client, conn)
    reader = asyncio.create_task(_read(gw, conn, client))
    closed = asyncio.create_task(client.closed.wait())
    try:
        await asyncio.wait({reader, closed}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (reader, closed):
            task.cancel()
        for task in (reader, closed):
            with contextlib.suppress(BaseException):
                await task
    if client.close_code is not None and client.close_code != 1000:
        await _close(conn, client.close_code, client.close_reason)


async def _read(gw: Gateway, conn: Connection, client: Client) -> None:
    """Client messages, one at a time, until the client goes away."""
    hub = gw.hub
    while True:
        message = await conn.receive()
        if message is None:
            return
        if not isinstance(message, str):
            hub.error(client, "bad_request", "send JSON text frames, not binary ones")
            continue
        await _handle(gw, client, message)


async def _handle(gw: Gateway, client: Client, text: str) -> None:
    hub = gw.hub
    try:
        msg: Any = orjson.loads(text)
    except orjson.JSONDecodeError:
        hub.error(client, "bad_json", "the message is not valid JSON")
        return
    if not isinstance(msg, dict):
        hub.error(client, "bad_request", 'expected a JSON object like {"action":"subscribe",...}')
        return
    action = msg.get("action")
    if action is None:
        hub.error(client, "bad_request", 'the message has no "action"')
    elif action not in _ACTIONS:
        shown = action if isinstance(action, str) else type(action).__name__
        hub.error(
            client,
            "unknown_action",
            f"unknown action {str(shown)[:40]!r}; expected subscribe or unsubscribe",
        )
    elif action == "subscribe":
        await hub.subscribe(client, msg.get("symbols"))
    else:
        hub.unsubscribe(client, msg.get("symbols"))


class AsgiConnection:
    """A Starlette WebSocket (another ASGI server than the gateway's own listener): the
    hub's frames go out one `websocket.send` per message, from a task of its own."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        scope = websocket.scope
        self.headers = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])
        }
        self.query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        self._out: list[bytes] | None = None
        self._has = asyncio.Event()
        self._resume: Callable[[], None] = lambda: None
        self._task: asyncio.Task[None] | None = None

    def bind(self, resume: Callable[[], None]) -> None:
        self._resume = resume
        self._task = asyncio.create_task(self._send())

    def writable(self) -> bool:
        return self._out is None

    def write(self, frames: list[bytes]) -> None:
        self._out = frames
        self._has.set()

    async def _send(self) -> None:
        while True:
            await self._has.wait()
            self._has.clear()
            for frame in self._out or ():
                await self.websocket.send({"type": "websocket.send", "text": wire.payload(frame)})
            self._out = None
            self._resume()

    async def receive(self) -> str | bytes | None:
        message = await self.websocket.receive()
        if message["type"] == "websocket.disconnect":
            return None
        text = message.get("text")
        return text if text is not None else bytes(message.get("bytes") or b"")

    async def close(self, code: int, reason: str) -> None:
        await self.websocket.close(code, reason)

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
