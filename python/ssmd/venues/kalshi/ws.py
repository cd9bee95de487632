"""One Kalshi WebSocket session: signed connect, commands with ids, interleaved acks, liveness.

Every message read is handed to `on_frames(messages, receive_ns)` first, exactly as
received (bytes, never decoded and re-encoded), whatever it is; only then is it looked
at as a possible command reply. So a subscribe handshake never throws away the data frames that
arrive before its acknowledgement.

Liveness never keys on market data alone: the session pings every `ping_interval` (the
send itself times out after `ping_timeout`), records every pong, and a watchdog closes
the socket when neither a frame nor a pong came for `stale_after`. Server pings are
answered as they are read. TCP keepalive is on as well. A quiet market stays connected as
long as pongs come back; a half-open socket is detected within `stale_after`.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric import rsa

from ssmd.exceptions import AuthenticationError, NoReply, SessionError
from ssmd.venues.base import DEFAULT_LIVENESS, MAX_FRAME_BYTES, Liveness
from ssmd.venues.kalshi import auth
from ssmd.venues.websocket import WebSocketSession

__all__ = ["MAX_FRAME_BYTES", "Credentials", "Liveness", "Reply", "Session", "SessionError"]

WS_SIGN_PATH = "/trade-api/ws/v2"
CONTROL_TYPES = frozenset({"subscribed", "ok", "unsubscribed", "error"})


@dataclass(frozen=True)
class Credentials:
    key_id: str
    private_key: rsa.RSAPrivateKey = field(repr=False)

    def headers(self) -> dict[str, str]:
        return self.sign("GET", WS_SIGN_PATH)

    def sign(self, method: str, path: str) -> dict[str, str]:
        return auth.auth_headers(self.key_id, self.private_key, method, path)


@dataclass
class Reply:
    type: str
    sid: int | None
    channel: str | None
    code: int | None
    body: dict[str, Any]


class Session(WebSocketSession):
    """One connection. `await open()`, then `await run()` until it returns the close reason."""

    WATCH = (b'"id"', b'"error"')  # command replies carry the id; errors may not

    def __init__(
        self,
        url: str,
        credentials: Credentials | None,
        on_frames: Callable[[list[bytes], int], None],
        *,
        liveness: Liveness = DEFAULT_LIVENESS,
        on_sid_error: Callable[[int, int, str], None] | None = None,
        max_frame_bytes: int = MAX_FRAME_BYTES,
    ) -> None:
        super().__init__(url, on_frames, liveness=liveness, max_frame_bytes=max_frame_bytes)
        self.credentials = credentials
        self.on_sid_error = on_sid_error
        self._ids = itertools.count(1)
        self._waiting: dict[int, tuple[int, list[Reply], asyncio.Future[list[Reply]]]] = {}

    def _headers(self) -> dict[str, str]:
        return self.credentials.headers() if self.credentials else {}

    def _refused(self, status: int) -> Exception:
        if status == 401:
            return AuthenticationError(
                f"Kalshi refused the WebSocket upgrade at {self.url} with HTTP 401: check "
                "KALSHI_API_KEY and KALSHI_PRIVATE_KEY_PATH (and the clock)"
            )
        return super()._refused(status)

    # ---- commands -------------------------------------------------------------------

    async def command(
        self, cmd: str, params: dict[str, Any] | None = None, replies: int = 1
    ) -> list[Reply]:
        """Send a command; wait for `replies` replies with its id (subscribed/ok/error).
        NoReply when they do not come within `reply_timeout` (the connection may be up)."""
        cid = next(self._ids)
        body: dict[str, Any] = {"id": cid, "cmd": cmd}
        if params is not None:
            body["params"] = params
        fut: asyncio.Future[list[Reply]] = asyncio.get_running_loop().create_future()
        self._waiting[cid] = (replies, [], fut)
        try:
            await self.send_text(orjson.dumps(body).decode(), cmd)
            try:
                async with asyncio.timeout(self.liveness.reply_timeout):
                    return await fut
            except TimeoutError:
                raise NoReply(
                    f"no reply to {cmd} (id {cid}) within {self.liveness.reply_timeout}s"
                ) from None
        finally:
            self._waiting.pop(cid, None)

    def _inspect(self, data: bytes, now: float) -> None:
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

    def _ended(self) -> None:
        for _, _, fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(SessionError(f"connection ended: {self.close_reason}"))

    # ---- liveness: WebSocket pings, each pong recorded ----------------------------------

    async def _keep_alive(self) -> None:
        while True:
            await asyncio.sleep(self.liveness.ping_interval)
            if not await self._keep_alive_send("ping"):
                return
