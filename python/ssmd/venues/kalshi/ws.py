"""One Kalshi WebSocket session: signed connect, commands with ids, interleaved acks, liveness.

Every frame read is handed to `on_frame(data, receive_ns)` first, exactly as received
(bytes, never decoded and re-encoded), whatever it is; only then is it looked at as a
possible command reply. So a subscribe handshake never throws away the data frames that
arrive before its acknowledgement.

Liveness never keys on market data alone: the session pings every `ping_interval` (the
send itself times out after `ping_timeout`), records every pong, and a watchdog closes
the socket when neither a frame nor a pong came for `stale_after`. Server pings are
answered by websockets. TCP keepalive is on as well. A quiet market stays connected as
long as pongs come back; a half-open socket is detected within `stale_after`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric import rsa
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import CloseCode

from ssmd.exceptions import AuthenticationError
from ssmd.venues.kalshi import auth

__all__ = ["Credentials", "Liveness", "Reply", "Session", "SessionError"]

log = logging.getLogger(__name__)

WS_SIGN_PATH = "/trade-api/ws/v2"
CONTROL_TYPES = frozenset({"subscribed", "ok", "unsubscribed", "error"})


class SessionError(Exception):
    """The connection failed or died (retryable)."""


@dataclass(frozen=True)
class Credentials:
    key_id: str
    private_key: rsa.RSAPrivateKey = field(repr=False)

    def headers(self) -> dict[str, str]:
        return self.sign("GET", WS_SIGN_PATH)

    def sign(self, method: str, path: str) -> dict[str, str]:
        return auth.auth_headers(self.key_id, self.private_key, method, path)


@dataclass(frozen=True)
class Liveness:
    ping_interval: float = 30.0
    ping_timeout: float = 10.0  # also the timeout of every command send
    stale_after: float = 90.0
    open_timeout: float = 10.0
    reply_timeout: float = 30.0


@dataclass
class Reply:
    type: str
    sid: int | None
    channel: str | None
    code: int | None
    body: dict[str, Any]


def _tcp_keepalive(ws: ClientConnection) -> None:
    sock = ws.transport.get_extra_info("socket")
    if sock is None:
        return
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)


# The largest frame a session reads: it must fit in one NATS message with its headers
# (nats-server's default max_payload is 1 MiB), and it bounds a session's memory. A larger
# frame closes the connection (WebSocket 1009), which the connector records as a gap.
MAX_FRAME_BYTES = 1024 * 1024 - 8 * 1024


class Session:
    """One connection. `await open()`, then `await run()` until it returns the close reason."""

    def __init__(
        self,
        url: str,
        credentials: Credentials | None,
        on_frame: Callable[[bytes, int], None],
        *,
        liveness: Liveness = Liveness(),
        on_sid_error: Callable[[int, int, str], None] | None = None,
        max_frame_bytes: int = MAX_FRAME_BYTES,
    ) -> None:
        self.url = url
        self.max_frame_bytes = max_frame_bytes
        self.credentials = credentials
        self.on_frame = on_frame
        self.on_sid_error = on_sid_error
        self.liveness = liveness
        self.ws: ClientConnection | None = None
        self._ids = itertools.count(1)
        self._waiting: dict[int, tuple[int, list[Reply], asyncio.Future[list[Reply]]]] = {}
        self.opened_at = 0.0
        self.last_frame = 0.0
        self.last_pong = 0.0
        self.frames = 0
        self.close_reason = ""

    async def open(self) -> None:
        headers = self.credentials.headers() if self.credentials else None
        try:
            self.ws = await connect(
                self.url,
                additional_headers=headers,
                open_timeout=self.liveness.open_timeout,
                ping_interval=None,  # our own pinger tracks pongs separately from data
                close_timeout=2,
                max_size=self.max_frame_bytes,
                max_queue=1024,
                compression=None,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status == 401:
                raise AuthenticationError(
                    f"Kalshi refused the WebSocket upgrade at {self.url} with HTTP 401: check "
                    "KALSHI_API_KEY and KALSHI_PRIVATE_KEY_PATH (and the clock)"
                ) from None
            raise SessionError(f"HTTP {status} on the WebSocket upgrade") from None
        except (OSError, TimeoutError) as exc:
            raise SessionError(f"connect failed: {exc!r}") from None
        except Exception as exc:  # websockets handshake errors
            raise SessionError(f"connect failed: {exc!r}") from None
        _tcp_keepalive(self.ws)
        now = time.monotonic()
        self.opened_at = self.last_frame = self.last_pong = now

    # ---- commands -------------------------------------------------------------------

    async def command(
        self, cmd: str, params: dict[str, Any] | None = None, replies: int = 1
    ) -> list[Reply]:
        """Send a command; wait for `replies` replies with its id (subscribed/ok/error)."""
        ws = self.ws
        if ws is None:
            raise SessionError("not connected")
        cid = next(self._ids)
        body: dict[str, Any] = {"id": cid, "cmd": cmd}
        if params is not None:
            body["params"] = params
        fut: asyncio.Future[list[Reply]] = asyncio.get_running_loop().create_future()
        self._waiting[cid] = (replies, [], fut)
        try:
            try:
                async with asyncio.timeout(self.liveness.ping_timeout):
                    await ws.send(orjson.dumps(body).decode())
            except (TimeoutError, ConnectionClosed) as exc:
                raise SessionError(f"{cmd} send failed: {exc!r}") from None
            try:
                async with asyncio.timeout(self.liveness.reply_timeout):
                    return await fut
            except TimeoutError:
                raise SessionError(f"no reply to {cmd} (id {cid})") from None
        finally:
            self._waiting.pop(cid, None)

    def _route(self, data: bytes) -> None:
        try:
            msg = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if not isinstance(msg, dict):
            return
        typ = msg.get("type")
        if typ not in CONTROL_TYPES:
            return
        body = msg.get("msg")
        body = body if isinstance(body, dict) else {}
        sid = msg.get("sid", body.get("sid"))
        code = body.get("code") if typ == "error" else None
        reply = Reply(
            str(typ),
            sid if isinstance(sid, int) else None,
            body.get("channel") if isinstance(body.get("channel"), str) else None,
            code if isinstance(code, int) else None,
            msg,
        )
        cid = msg.get("id")
        entry = self._waiting.get(cid) if isinstance(cid, int) else None
        if entry is not None:
            want, got, fut = entry
            got.append(reply)
            if len(got) >= want and not fut.done():
                fut.set_result(got)
        elif typ == "error" and reply.sid is not None and self.on_sid_error is not None:
            self.on_sid_error(reply.sid, reply.code or 0, str(body.get("msg", "")))

    # ---- reading and liveness -------------------------------------------------------

    async def run(self) -> str:
        """Read until the connection ends; returns why. Frames go to on_frame first."""
        ws = self.ws
        if ws is None:
            raise SessionError("not connected")
        tasks = [
            asyncio.create_task(self._pinger(ws), name="ws-pinger"),
            asyncio.create_task(self._watchdog(ws), name="ws-watchdog"),
        ]
        on_frame = self.on_frame
        try:
            while True:
                try:
                    data = await ws.recv(decode=False)
                except ConnectionClosed as exc:
                    if not self.close_reason:
                        self.close_reason = self._why_closed(exc)
                    return self.close_reason
                self.last_frame = time.monotonic()  # only after a successful read
                self.frames += 1
                on_frame(data, time.time_ns())
                if b'"id"' in data or b'"error"' in data:
                    self._route(data)
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await t
            for _, _, fut in self._waiting.values():
                if not fut.done():
                    fut.set_exception(SessionError(f"connection ended: {self.close_reason}"))

    def _why_closed(self, exc: ConnectionClosed) -> str:
        sent, rcvd = exc.sent, exc.rcvd
        if sent is not None and sent.code == CloseCode.MESSAGE_TOO_BIG:
            return (
                f"a frame over {self.max_frame_bytes:,} bytes (the most one NATS message "
                "carries) closed the connection (WebSocket 1009)"
            )
        if rcvd is not None:
            return f"closed by server: {rcvd.code} {rcvd.reason}".strip()
        return "connection lost (no close frame)"

    def _kill(self, ws: ClientConnection, reason: str) -> None:
        if not self.close_reason:
            self.close_reason = reason
            log.warning("websocket %s: %s", self.url, reason)
        ws.transport.abort()

    async def _pinger(self, ws: ClientConnection) -> None:
        lv = self.liveness
        while True:
            await asyncio.sleep(lv.ping_interval)
            try:
                async with asyncio.timeout(lv.ping_timeout):
                    waiter = await ws.ping()
            except TimeoutError:
                self._kill(ws, f"ping send blocked for {lv.ping_timeout}s")
                return
            except ConnectionClosed:
                return

            def pong(f: asyncio.Future[float]) -> None:
                if not f.cancelled() and f.exception() is None:
                    self.last_pong = time.monotonic()

            asyncio.ensure_future(waiter).add_done_callback(pong)

    async def _watchdog(self, ws: ClientConnection) -> None:
        lv = self.liveness
        while True:
            await asyncio.sleep(min(1.0, lv.stale_after / 4))
            age = time.monotonic() - max(self.last_frame, self.last_pong)
            if age > lv.stale_after:
                self._kill(ws, f"no frame and no pong for {age:.1f}s")
                return

    async def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await self.ws.close()
