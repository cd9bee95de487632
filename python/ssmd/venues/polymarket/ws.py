"""One Polymarket market-channel session: connect, subscribe by token id, text keep-alive.

Every message read goes to `on_frames(messages, receive_ns)` first, exactly as received. The
venue's keep-alive is the text `PING`, answered by the text `PONG` (not WebSocket ping
frames): the session sends it every `ping_interval` (at most every 10 s, as the venue
asks), but only after the first subscription, since a `PING` before it gets the
connection closed (1008). A watchdog closes the socket when neither a frame nor a
`PONG` came for `stale_after`; quiet markets stay connected as long as `PONG`s come.
Server pings, if any, are answered as they are read.

The venue acknowledges nothing: a subscription is answered by the tokens' `book` dump
(or `[]` for tokens it does not know). Its errors are plain text (`INVALID OPERATION`);
they are reported to `on_stream_error(1, 0, text)` after the frame is handed on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson

from ssmd.venues.base import DEFAULT_LIVENESS, MAX_FRAME_BYTES, Liveness
from ssmd.venues.websocket import WebSocketSession

__all__ = ["MAX_PING_INTERVAL", "STREAM", "PolymarketSession"]

MAX_PING_INTERVAL = 10.0
STREAM = 1  # the market channel: the one stream of a connection
ERROR_TEXTS = (b"INVALID OPERATION",)


class PolymarketSession(WebSocketSession):
    """One connection. `await open()`, then `await run()` until it returns why it ended."""

    WATCH = (b"PONG", *ERROR_TEXTS)

    def __init__(
        self,
        url: str,
        credentials: Any,
        on_frames: Callable[[list[bytes], int], None],
        *,
        liveness: Liveness = DEFAULT_LIVENESS,
        on_stream_error: Callable[[int, int, str], None] | None = None,
        max_frame_bytes: int = MAX_FRAME_BYTES,
    ) -> None:
        del credentials  # public data: no sign-in
        super().__init__(url, on_frames, liveness=liveness, max_frame_bytes=max_frame_bytes)
        self.on_stream_error = on_stream_error
        self.subscribed = asyncio.Event()
        self.pongs = 0

    async def send(self, body: dict[str, Any]) -> None:
        """Sends one JSON message (a subscription); starts the keep-alive after the first."""
        await self.send_text(orjson.dumps(body).decode(), "subscription")
        self.subscribed.set()

    def _inspect(self, data: bytes, now: float) -> None:
        if len(data) < 32:
            text = data.strip()
            if text == b"PONG":
                self.last_pong = now
                self.pongs += 1
            elif text in ERROR_TEXTS and self.on_stream_error is not None:
                self.on_stream_error(STREAM, 0, text.decode())

    async def _keep_alive(self) -> None:
        lv = self.liveness
        await self.subscribed.wait()  # a PING before the first subscription closes (1008)
        interval = min(lv.ping_interval, MAX_PING_INTERVAL)
        while True:
            await asyncio.sleep(interval)
            if not await self._keep_alive_send("PING", b"PING"):
                return
