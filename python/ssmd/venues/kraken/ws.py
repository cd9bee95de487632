"""One Kraken spot WebSocket v2 session: connect, request/reply by `req_id`, keep-alive.

Every message read goes to `on_frames(messages, receive_ns)` first, exactly as received. Market
data starts with `{"channel":` and is left to the codec; anything else is a reply to a
request (`method`: `pong`, `subscribe`, `unsubscribe`) and is read here. The keep-alive
is the venue's application-level `{"method": "ping", "req_id": n}`, answered by
`{"method": "pong", ...}` (not WebSocket ping frames), sent every `ping_interval` (at most
every 15 s: Cloudflare, in front of the venue, drops connections idle longer). The venue
also sends `{"channel": "heartbeat"}` about once a second once something is subscribed.
A watchdog closes the socket when neither a frame nor a `pong` came for `stale_after`.

A request refused (`success: false`, with `error` and the `symbol` at the top level) is
reported to `on_reply` like any reply; the subscriptions say what it means.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

import orjson

from ssmd.venues.base import DEFAULT_LIVENESS, MAX_FRAME_BYTES, Liveness
from ssmd.venues.websocket import WebSocketSession

__all__ = ["MAX_PING_INTERVAL", "KrakenSession"]

MAX_PING_INTERVAL = 15.0
DATA_PREFIX = b'{"channel":'


class KrakenSession(WebSocketSession):
    """One connection. `await open()`, then `await run()` until it returns why it ended."""

    WATCH = (b'"method"',)  # every reply names its method; market data never does

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
        self.on_reply: Callable[[dict[str, Any]], None] | None = None
        self.pongs = 0
        self._req_ids = itertools.count(1)

    async def request(self, method: str, params: dict[str, Any] | None = None) -> int:
        """Sends one request; returns its `req_id` (the venue echoes it in the reply)."""
        req_id = next(self._req_ids)
        body: dict[str, Any] = {"method": method, "req_id": req_id}
        if params is not None:
            body["params"] = params
        await self.send_text(orjson.dumps(body).decode(), method)
        return req_id

    def _inspect(self, data: bytes, now: float) -> None:
        if data.startswith(DATA_PREFIX):
            return
        try:
            msg = orjson.loads(data)
        except orjson.JSONDecodeError:
            return  # the codec counts it as malformed
        if not isinstance(msg, dict):
            return
        if msg.get("method") == "pong":
            self.last_pong = now
            self.pongs += 1
        elif self.on_reply is not None and isinstance(msg.get("method"), str):
            self.on_reply(msg)

    async def _keep_alive(self) -> None:
        lv = self.liveness
        interval = min(lv.ping_interval, MAX_PING_INTERVAL)
        while True:
            await asyncio.sleep(interval)
            body = orjson.dumps({"method": "ping", "req_id": next(self._req_ids)})
            if not await self._keep_alive_send("ping", body):
                return
