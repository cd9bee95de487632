"""Kraken's subscription protocol on one connection of a shard (WebSocket v2).

A subscription is one request per channel for a list of symbols:
`{"method": "subscribe", "params": {"channel": "book", "symbol": [...], "depth": 10,
"snapshot": true}, "req_id": n}`; the venue acknowledges each symbol separately (a
refusal has `success: false`, `error` and the `symbol`). `instrument` (reference data,
the precisions the book checksum needs) takes no symbol: the shard group's global shard
carries it. Each channel is one stream (Kraken has no subscription ids), numbered as in
`STREAMS`; the codec names the book stream in its gap events.

Recovery: a book's fresh snapshot is asked by unsubscribing and subscribing the symbol
again on `book` (the subscription answers with a snapshot); `resubscribe` does that for
every symbol of a channel. A subscription the venue refuses is reported (a connector
`error` event) and asked again after 1, 2 and 4 s; after that the symbol leaves the
connection's subscribed set until the next connection. Replies are told apart by
`req_id` (a refusal may read `method: "subscribe"` even for an unsubscribe).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from ssmd.exceptions import SessionError
from ssmd.venues.kraken.ws import KrakenSession

if TYPE_CHECKING:
    from ssmd.connector.shards import Shard

__all__ = ["BOOK_DEPTH", "STREAMS", "KrakenSubscriptions"]

log = logging.getLogger(__name__)

# Stream numbers as the codec numbers them (rust/ssmd-core/src/venues/kraken/normalize.rs).
STREAMS = {"book": 1, "trade": 2, "ticker": 3, "instrument": 4}
BOOK_DEPTH = 10  # the checksum covers the top 10 levels whatever the depth
SYMBOLS_PER_REQUEST = 100
RETRY_AFTER = 1.0  # seconds before a refused subscription is asked again, doubling
MAX_RETRIES = 3
REQUESTS_KEPT = 1024  # the latest requests whose replies can still be told apart


def _params(channel: str, symbols: list[str] | None) -> dict[str, Any]:
    params: dict[str, Any] = {"channel": channel}
    if symbols is not None:
        params["symbol"] = symbols
    if channel == "book":
        params |= {"depth": BOOK_DEPTH, "snapshot": True}
    elif channel == "trade":
        params["snapshot"] = False  # past trades would repeat what was captured
    return params


class KrakenSubscriptions:
    def __init__(self, shard: Shard, session: KrakenSession) -> None:
        self.shard = shard
        self.session = session
        self.opened: set[str] = set()  # channels subscribed on this connection
        self.refusals = 0
        self._requests: OrderedDict[int, tuple[str, str]] = OrderedDict()  # id -> method, channel
        self._retries: dict[tuple[str, str], int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        session.on_reply = self.on_reply

    @property
    def streams(self) -> dict[str, int]:
        return {ch: STREAMS[ch] for ch in sorted(self.opened) if ch in STREAMS}

    def _event(self, kind: str, reason: str, tickers: list[str] | None = None) -> None:
        self.shard.hooks.event(kind, self.shard, reason, tickers=tickers or ())

    def stream_error(self, stream: int, code: int, text: str) -> None:
        self._event("error", f"venue error on stream {stream}: {text}")

    def on_reply(self, msg: dict[str, Any]) -> None:
        """A reply read by the session: a refused subscription is asked again, a few times."""
        if msg.get("success") is not False:
            return
        self.refusals += 1
        req_id = msg.get("req_id")
        method, channel = (
            self._requests.get(req_id, ("", "")) if isinstance(req_id, int) else ("", "")
        )
        symbol = msg.get("symbol")
        error = str(msg.get("error") or "no error text")
        tickers = [symbol] if isinstance(symbol, str) else []
        self._event("error", f"{method or msg.get('method')} refused: {error}", tickers)
        if method != "subscribe" or not tickers:
            return
        key = (channel, tickers[0])
        tries = self._retries.get(key, 0)
        if tries >= MAX_RETRIES or tickers[0] not in self.shard.markets:
            self.shard.subscribed.discard(tickers[0])
            return
        self._retries[key] = tries + 1
        task = asyncio.get_running_loop().create_task(
            self._retry(channel, tickers[0], RETRY_AFTER * 2**tries)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _retry(self, channel: str, symbol: str, delay: float) -> None:
        await asyncio.sleep(delay)
        # If the connection ended meanwhile, the next one subscribes everything again.
        with contextlib.suppress(SessionError):
            await self._send("subscribe", channel, [symbol])

    async def _send(self, method: str, channel: str, symbols: list[str] | None) -> None:
        if symbols is None:
            self._sent(await self.session.request(method, _params(channel, None)), method, channel)
            return
        for i in range(0, len(symbols), SYMBOLS_PER_REQUEST):
            chunk = symbols[i : i + SYMBOLS_PER_REQUEST]
            params = _params(channel, chunk)
            if method == "unsubscribe":
                params.pop("snapshot", None)
            self._sent(await self.session.request(method, params), method, channel)

    def _sent(self, req_id: int, method: str, channel: str) -> None:
        self._requests[req_id] = (method, channel)
        if len(self._requests) > REQUESTS_KEPT:
            self._requests.popitem(last=False)

    async def open(self) -> None:
        shard = self.shard
        if shard.is_global:
            for channel in shard.channels:
                await self._send("subscribe", channel, None)
                self.opened.add(channel)
            self._event("subscribed", "global: " + ",".join(shard.channels))
            return
        symbols = sorted(shard.markets)
        if symbols:
            await self.add(symbols)

    async def add(self, symbols: list[str]) -> None:
        shard = self.shard
        wanted = [s for s in symbols if s not in shard.subscribed]
        if not wanted:
            return
        for channel in shard.channels:
            await self._send("subscribe", channel, wanted)
            self.opened.add(channel)
        shard.subscribed.update(wanted)
        self._event("subscribed", f"{len(wanted)} symbols", wanted)

    async def remove(self, symbols: list[str]) -> None:
        if not symbols:
            return
        for channel in sorted(self.opened):
            await self._send("unsubscribe", channel, symbols)

    async def snapshot(self, stream: int, symbols: list[str]) -> None:
        channel = next((ch for ch, n in STREAMS.items() if n == stream), None)
        if channel not in self.opened or not symbols:
            return
        assert channel is not None
        await self._send("unsubscribe", channel, symbols)
        await self._send("subscribe", channel, symbols)

    async def resubscribe(self, stream: int) -> bool:
        channel = next((ch for ch, n in STREAMS.items() if n == stream), None)
        if channel not in self.opened:
            return False
        if self.shard.is_global:
            assert channel is not None
            await self._send("unsubscribe", channel, None)
            await self._send("subscribe", channel, None)
            return True
        await self.snapshot(stream, sorted(self.shard.subscribed))
        return True
