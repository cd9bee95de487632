"""What every venue's WebSocket session shares: connect, read, liveness, close.

A venue's session subclasses `WebSocketSession` and says only what differs: how it
connects (`_connect_options`, `_refused` for an HTTP status on the upgrade), its
keep-alive (`_keep_alive`), what it reads in a frame after handing it on (`_inspect`) and
what it settles when the connection ends (`_ended`).

Every frame read goes to `on_frame(data, receive_ns)` first, exactly as received (bytes,
never decoded and re-encoded). Liveness never keys on market data alone: the keep-alive
records each answer in `last_pong`, and a watchdog closes the socket when neither a
frame nor an answer came for `stale_after`; a half-open socket is found within it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import CloseCode

from ssmd.exceptions import SessionError
from ssmd.venues.base import DEFAULT_LIVENESS, MAX_FRAME_BYTES, Liveness

__all__ = ["WebSocketSession"]

log = logging.getLogger(__name__)


class WebSocketSession:
    """One connection. `await open()`, then `await run()` until it returns why it ended."""

    def __init__(
        self,
        url: str,
        on_frame: Callable[[bytes, int], None],
        *,
        liveness: Liveness = DEFAULT_LIVENESS,
        max_frame_bytes: int = MAX_FRAME_BYTES,
    ) -> None:
        self.url = url
        self.on_frame = on_frame
        self.liveness = liveness
        self.max_frame_bytes = max_frame_bytes
        self.ws: ClientConnection | None = None
        self.opened_at = 0.0
        self.last_frame = 0.0
        self.last_pong = 0.0
        self.frames = 0
        self.close_reason = ""

    # ---- what a venue says ----------------------------------------------------------

    def _connect_options(self) -> dict[str, Any]:
        """Extra keyword arguments of websockets' connect (headers, compression)."""
        return {}

    def _refused(self, status: int) -> Exception:
        """The error for an HTTP status answering the upgrade."""
        return SessionError(f"HTTP {status} on the WebSocket upgrade")

    async def _keep_alive(self, ws: ClientConnection) -> None:
        """Runs for the connection's life: the venue's pings, each answer in last_pong."""
        raise NotImplementedError

    def _inspect(self, data: bytes, now: float) -> None:
        """A frame, after on_frame had it: the venue's replies and errors."""

    def _ended(self) -> None:
        """The connection ended (close_reason is set): settle whatever waits on it."""

    # ---- the connection -------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.ws is not None

    def abort(self, reason: str) -> None:
        if self.ws is not None:
            self.close_reason = self.close_reason or reason
            self.ws.transport.abort()

    async def open(self) -> None:
        try:
            self.ws = await connect(
                self.url,
                open_timeout=self.liveness.open_timeout,
                ping_interval=None,  # each venue's keep-alive tracks its answers itself
                close_timeout=2,
                max_size=self.max_frame_bytes,
                max_queue=1024,
                **self._connect_options(),
            )
        except InvalidStatus as exc:
            raise self._refused(exc.response.status_code) from None
        except Exception as exc:  # OSError, TimeoutError, handshake errors
            raise SessionError(f"connect failed: {exc!r}") from None
        now = time.monotonic()
        self.opened_at = self.last_frame = self.last_pong = now

    async def run(self) -> str:
        """Read until the connection ends; returns why. Frames go to on_frame first."""
        ws = self.ws
        if ws is None:
            raise SessionError("not connected")
        tasks = [
            asyncio.create_task(self._keep_alive(ws), name="ws-keep-alive"),
            asyncio.create_task(self._watchdog(ws), name="ws-watchdog"),
        ]
        on_frame, inspect = self.on_frame, self._inspect
        try:
            while True:
                try:
                    data = await ws.recv(decode=False)
                except ConnectionClosed as exc:
                    if not self.close_reason:
                        self.close_reason = self._why_closed(exc)
                    return self.close_reason
                now = time.monotonic()  # only after a successful read
                self.last_frame = now
                self.frames += 1
                on_frame(data, time.time_ns())
                inspect(data, now)
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await t
            self._ended()

    async def send_text(self, text: str, what: str) -> None:
        """Sends one text message within ping_timeout; SessionError naming `what` if not."""
        ws = self.ws
        if ws is None:
            raise SessionError("not connected")
        try:
            async with asyncio.timeout(self.liveness.ping_timeout):
                await ws.send(text)
        except (TimeoutError, ConnectionClosed) as exc:
            raise SessionError(f"{what} send failed: {exc!r}") from None

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
