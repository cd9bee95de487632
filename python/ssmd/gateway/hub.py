"""WebSocket clients: subscriptions, bounded per-client queues, conflation, fan-out.

Each client has one queue, sent in order by its own writer task:
  - trades, statuses and replies are queued as WebSocket frames and never dropped; a
    client with more than `client_queue` of them waiting is disconnected (close 4408,
    `ssmd_gateway_slow_disconnects_total`);
  - a book update queues only a marker for its ticker, at most one per ticker and
    client: while one is waiting, later updates of that book are conflated into it
    (`ssmd_gateway_conflated_total`), and the writer sends the latest rendering when it
    gets there. So a slow client holds at most one book per subscribed market.
Every message is rendered and framed once (wire.text_frame) and the same bytes go to
every client: a trade is one queue entry shared by all its subscribers, a book one
cached frame per change (a change that leaves the levels and the valid flag as they
were is not sent). The writer takes everything waiting, up to `_BATCH_BYTES`, as one
write. A send blocked for `send_timeout` seconds (a client that stopped reading) also
ends in 4408.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from ssmd.gateway import render, wire
from ssmd.gateway.auth import ApiKey
from ssmd.gateway.metrics import GatewayMetrics
from ssmd.gateway.settings import GatewaySettings

if TYPE_CHECKING:
    from ssmd.gateway.feed import Feed

__all__ = ["CLOSE_SLOW", "Client", "Hub"]

log = logging.getLogger(__name__)

CLOSE_SLOW: Final = 4408
_BOOK: Final = "orderbook"
_MAX_SYMBOL_LEN: Final = 256
# One write takes at most this much (plus one frame): what a client's connection buffers
# beyond its flow-control mark stays bounded, even with thousands of deep books pending.
_BATCH_BYTES: Final = 256 * 1024

Known = Callable[[list[str]], Awaitable[set[str]]]
# Frames to write, in order: one write when the server takes frames (wire.FRAMES).
SendFrames = Callable[[list[bytes]], Awaitable[None]]


class Client:
    """One WebSocket connection's state. The hub and the writer share it in one loop."""

    def __init__(self, number: int, key: ApiKey | None, max_symbols: int, queue_limit: int):
        self.number = number
        self.key = key
        self.max_symbols = max_symbols
        self.queue_limit = queue_limit
        self.symbols: set[str] = set()
        # (type, frame) or ("orderbook", ticker): a trade's tuple is shared by its subscribers.
        self.queue: deque[tuple[str, bytes | str]] = deque()
        self.pending_books: set[str] = set()
        self.queued = 0  # non-book entries in the queue
        self.wake = asyncio.Event()
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.close_reason = ""
        self.sending_since = 0.0  # monotonic start of the send in progress; 0 = none

    def close(self, code: int, reason: str) -> None:
        if self.close_code is not None:
            return
        self.close_code, self.close_reason = code, reason
        self.queue.clear()
        self.pending_books.clear()
        self.queued = 0
        self.closed.set()
        self.wake.set()


@dataclass
class _Rendered:
    bids: list[tuple[int, int]]
    asks: list[tuple[int, int]]
    valid: bool
    frame: bytes


class Hub:
    def __init__(self, settings: GatewaySettings, metrics: GatewayMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.feed: Feed | None = None
        self.known: Known | None = None  # symbols the security master knows (when it exists)
        self.clients: set[Client] = set()
        self.subs: dict[str, set[Client]] = {}
        self.per_key: dict[str, int] = {}
        self._books: dict[str, _Rendered] = {}
        self._numbers = itertools.count(1)
        self._watchdog: asyncio.Task[None] | None = None

    # ---- clients ------------------------------------------------------------------------

    def connect(self, key: ApiKey | None) -> Client | None:
        """A new client, or None when its key is at its connection limit."""
        if key is not None and key.connections is not None:
            if self.per_key.get(key.name, 0) >= key.connections:
                return None
            self.per_key[key.name] = self.per_key.get(key.name, 0) + 1
        limit = key.symbols if key is not None and key.symbols else self.settings.max_symbols
        client = Client(next(self._numbers), key, limit, self.settings.client_queue)
        self.clients.add(client)
        return client

    def disconnect(self, client: Client) -> None:
        if client not in self.clients:
            return
        self.clients.discard(client)
        if client.key is not None and client.key.connections is not None:
            left = self.per_key.get(client.key.name, 1) - 1
            if left > 0:
                self.per_key[client.key.name] = left
            else:
                self.per_key.pop(client.key.name, None)
        for t in client.symbols:
            self._drop(t, client)
        client.symbols.clear()
        client.close(1000, "")

    def _drop(self, ticker: str, client: Client) -> None:
        subs = self.subs.get(ticker)
        if subs is not None:
            subs.discard(client)
            if not subs:
                del self.subs[ticker]
                self._books.pop(ticker, None)

    def slow(self, client: Client, reason: str, label: str) -> None:
        if client.close_code is not None:
            return
        log.warning("disconnecting slow client %d: %s", client.number, reason)
        self.metrics.slow_disconnects.inc(label)
        client.close(CLOSE_SLOW, reason)

    def close_all(self, code: int, reason: str) -> None:
        for c in list(self.clients):
            c.close(code, reason)

    def start(self) -> None:
        self._watchdog = asyncio.create_task(self._watch(), name="gateway-send-watchdog")

    async def stop(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog

    async def _watch(self) -> None:
        """Clients whose send has been blocked too long (they stopped reading): 4408."""
        limit = self.settings.send_timeout
        while True:
            await asyncio.sleep(min(1.0, limit / 4))
            now = time.monotonic()
            for c in list(self.clients):
                if c.sending_since and now - c.sending_since > limit:
                    self.slow(c, f"a send was blocked for more than {limit:g}s", "send_timeout")

    # ---- queueing -----------------------------------------------------------------------

    def _push(self, client: Client, entry: tuple[str, bytes]) -> None:
        if client.close_code is not None:
            return
        if client.queued >= client.queue_limit:
            self.slow(
                client,
                f"more than {client.queue_limit} messages waiting to be sent",
                "queue_full",
            )
            return
        client.queue.append(entry)
        client.queued += 1
        client.wake.set()

    def _push_all(self, clients: Iterable[Client], kind: str, text: str) -> None:
        """One message to many clients: framed once, one shared queue entry."""
        entry = (kind, wire.text_frame(text.encode()))
        for c in clients:
            self._push(c, entry)

    def _push_book(self, client: Client, ticker: str) -> None:
        if client.close_code is not None:
            return
        if ticker in client.pending_books:
            self.metrics.conflated.inc()
            return
        client.pending_books.add(ticker)
        client.queue.append((_BOOK, ticker))
        client.wake.set()

    def reply(self, client: Client, kind: str, text: str) -> None:
        self._push(client, (kind, wire.text_frame(text.encode())))

    def error(self, client: Client, code: str, message: str) -> None:
        self.metrics.client_errors.inc(code)
        self.reply(client, "error", render.error(code, message))

    # ---- the feed's sink ----------------------------------------------------------------

    def _render(self, ticker: str) -> _Rendered | None:
        """Render the book when it changed since the last rendering; None when it did not."""
        assert self.feed is not None
        bids, asks, valid, ms = self.feed.view(ticker)
        old = self._books.get(ticker)
        if old is not None and old.valid == valid and old.bids == bids and old.asks == asks:
            return None
        text = render.orderbook(ticker, bids, asks, valid, ms)
        new = _Rendered(bids, asks, valid, wire.text_frame(text.encode()))
        self._books[ticker] = new
        return new

    def book_frame(self, ticker: str) -> bytes:
        cached = self._books.get(ticker)
        if cached is not None:
            return cached.frame
        rendered = self._render(ticker)
        assert rendered is not None
        if ticker not in self.subs:
            self._books.pop(ticker, None)
        return rendered.frame

    def books_changed(self, tickers: Iterable[str]) -> None:
        for t in tickers:
            clients = self.subs.get(t)
            if not clients:
                continue
            if self._render(t) is None:
                continue
            for c in clients:
                self._push_book(c, t)

    def trade(self, ticker: str, text: str) -> None:
        clients = self.subs.get(ticker)
        if clients:
            self._push_all(clients, "trade", text)

    def status(self, ticker: str, text: str) -> None:
        clients = self.subs.get(ticker)
        if clients:
            self._push_all(clients, "status", text)

    def caught_up(self) -> None:
        """The start-up replay is done: every subscriber gets its books now."""
        self._books.clear()
        for t, clients in self.subs.items():
            for c in clients:
                self._push_book(c, t)
                self._push_status(c, t)

    def _push_status(self, client: Client, ticker: str) -> None:
        assert self.feed is not None
        m = self.feed.markets.get(ticker)
        if m is not None and m.status is not None:
            self.reply(client, "status", render.status(ticker, m.status, m.status_ms))

    # ---- client requests ----------------------------------------------------------------

    def _symbols(self, client: Client, value: Any) -> list[str] | None:
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(s, str) and 0 < len(s) <= _MAX_SYMBOL_LEN for s in value)
        ):
            self.error(
                client,
                "bad_request",
                f"symbols must be a non-empty list of tickers (strings of 1 to {_MAX_SYMBOL_LEN} "
                "characters)",
            )
            return None
        return list(dict.fromkeys(value))

    async def _classify(self, symbols: list[str]) -> tuple[list[str], list[str]]:
        """(known, unknown): known to the stream or to the security master. While the
        start-up replay runs, a market may not have shown up yet: everything is accepted."""
        assert self.feed is not None
        feed = self.feed
        if not feed.ready:
            return symbols, []
        rest = [s for s in symbols if not feed.knows(s)]
        found = await self.known(rest) if rest and self.known is not None else set()
        known = [s for s in symbols if s in found or feed.knows(s)]
        unknown = [s for s in symbols if not (s in found or feed.knows(s))]
        return known, unknown

    async def subscribe(self, client: Client, value: Any) -> None:
        symbols = self._symbols(client, value)
        if symbols is None:
            return
        fresh = [s for s in symbols if s not in client.symbols]
        known, unknown = await self._classify(fresh)
        if client.close_code is not None:
            return
        if len(client.symbols) + len(known) > client.max_symbols:
            self.error(
                client,
                "too_many_symbols",
                f"subscribing {len(known)} more symbols would make "
                f"{len(client.symbols) + len(known)}; this connection may hold "
                f"{client.max_symbols}. Nothing was subscribed",
            )
            return
        for t in known:
            client.symbols.add(t)
            self.subs.setdefault(t, set()).add(client)
        acked = [s for s in symbols if s in client.symbols]
        if acked:
            self.reply(client, "subscribed", render.ack("subscribed", acked))
        if unknown:
            shown = ", ".join(unknown[:20]) + (
                f" and {len(unknown) - 20} more" if len(unknown) > 20 else ""
            )
            self.error(client, "unknown_symbol", f"unknown symbols (not subscribed): {shown}")
        assert self.feed is not None
        if self.feed.ready:
            for t in acked:
                self._push_book(client, t)
                self._push_status(client, t)

    def unsubscribe(self, client: Client, value: Any) -> None:
        symbols = self._symbols(client, value)
        if symbols is None:
            return
        for t in symbols:
            if t in client.symbols:
                client.symbols.discard(t)
                self._drop(t, client)
        self.reply(client, "unsubscribed", render.ack("unsubscribed", symbols))

    # ---- the writer ---------------------------------------------------------------------

    async def pump(self, client: Client, send: SendFrames) -> None:
        """Send the client's queue in order until it closes: everything waiting (up to
        `_BATCH_BYTES`) goes out in one send."""
        sent = self.metrics.sent
        queue = client.queue
        while client.close_code is None:
            if not queue:
                client.wake.clear()
                await client.wake.wait()
                continue
            frames: list[bytes] = []
            size = 0
            counts: dict[str, int] = {}
            while queue and size < _BATCH_BYTES:
                kind, item = queue.popleft()
                if kind == _BOOK:
                    assert isinstance(item, str)
                    client.pending_books.discard(item)
                    if item not in client.symbols:
                        continue  # unsubscribed meanwhile
                    frame = self.book_frame(item)
                else:
                    assert isinstance(item, bytes)
                    client.queued -= 1
                    frame = item
                frames.append(frame)
                size += len(frame)
                counts[kind] = counts.get(kind, 0) + 1
            if not frames:
                continue
            client.sending_since = time.monotonic()
            await send(frames)
            client.sending_since = 0.0
            for kind, n in counts.items():
                sent[kind] = sent.get(kind, 0) + n
