"""WebSocket clients: subscriptions, bounded per-client queues, conflation, fan-out.

Each client has one queue, sent in order:
  - trades, statuses and replies are queued as WebSocket frames and never dropped; a
    client with more than `client_queue` of them waiting is disconnected (close 4408,
    `ssmd_gateway_slow_disconnects_total{reason="queue_full"}`);
  - a book update queues only a marker for its ticker, at most one per ticker and
    client: while one is waiting, later updates of that book are conflated into it
    (`ssmd_gateway_conflated_total`), and the writer sends the latest rendering when it
    gets there. So a slow client holds at most one book per subscribed market.
Every message is rendered and framed once (wire.text_frame) and the same bytes go to
every client: a trade is one queue entry shared by all its subscribers, a book one
cached frame per change (a change that leaves the levels and the valid flag as they
were is not sent).

One writer task serves every client (`_flush`): each round it takes the clients that
have something waiting and a connection that takes writes, oldest connection first,
and hands each one everything it has waiting (up to `_BATCH_BYTES`) as one write, until
the round has used `write_slice` seconds; then it yields, so the stream is read between
two rounds. Under a load the gateway cannot carry, the oldest connections are still
served every round and keep their latency, while the newest ones fall behind and are
disconnected: a client whose oldest waiting message has waited `send_timeout` seconds
(`reason="behind"`), or whose connection has taken no write for that long (it stopped
reading: `reason="send_timeout"`), is closed with 4408. When the gateway as a whole
falls behind the stream, the newest clients are closed with 1013 (shedding.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

from ssmd.exceptions import AtLimit
from ssmd.gateway import delivery, render, wire
from ssmd.gateway.auth import ApiKey
from ssmd.gateway.metrics import GatewayMetrics
from ssmd.gateway.settings import GatewaySettings
from ssmd.gateway.shedding import CLOSE_OVERLOADED, Shedder
from ssmd.gateway.symbols import Symbols

if TYPE_CHECKING:
    from ssmd.gateway.feed import Feed
    from ssmd.gateway.tenants import Policy
    from ssmd.gateway.transform import Transform

__all__ = ["CLOSE_SLOW", "Client", "Hub", "Writer"]

log = logging.getLogger(__name__)

CLOSE_SLOW: Final = 4408
_BOOK: Final = "orderbook"
_MAX_SYMBOL_LEN: Final = 256
_SHED_EVERY: Final = 0.1  # seconds between two looks at the gateway's load (shedding.py)
_SHED_WINDOW: Final = 1.0  # seconds over which what arrived and what was applied are compared
# One write takes at most this much (plus one frame): what a client's connection buffers
# beyond its flow-control mark stays bounded, even with thousands of deep books pending.
_BATCH_BYTES: Final = 256 * 1024

Known = Callable[[list[str]], Awaitable[set[str]]]
# A queue entry: (type, frame, monotonic time queued), or ("orderbook", ticker, time) for
# a pending book. A trade's entry is one tuple shared by its subscribers.
Entry = tuple[str, bytes | str, float]


class Writer(Protocol):
    """A client's connection as the hub writes to it. `write` never blocks: it is only
    called when `writable()` says the connection takes a write now; a connection that
    did not calls `Hub.writable_again` once it does."""

    def writable(self) -> bool: ...
    def write(self, frames: list[bytes]) -> None: ...


class Client:
    """One WebSocket connection's state. The hub and the writer share it in one loop."""

    def __init__(self, number: int, key: ApiKey | None, max_symbols: int, queue_limit: int):
        self.number = number
        self.key = key
        self.max_symbols = max_symbols
        self.queue_limit = queue_limit
        self.symbols: set[str] = set()
        self.queue: deque[Entry] = deque()
        self.pending_books: set[str] = set()
        self.queued = 0  # non-book entries in the queue
        self.writer: Writer | None = None
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.close_reason = ""
        self.policy: Policy | None = None  # its key's tenant (delivery.py)
        self.transform: Transform | None = None  # its Lua transform (delivery.py)
        self.resume_scheduled = False  # over its tenant's messages/s, written again later
        self.blocked_since = 0.0  # monotonic time its connection stopped taking writes; 0 = none

    def close(self, code: int, reason: str) -> None:
        if self.close_code is not None:
            return
        self.close_code, self.close_reason = code, reason
        self.queue.clear()
        self.pending_books.clear()
        self.queued = 0
        self.closed.set()


@dataclass
class _Rendered:
    bids: list[tuple[int, int]]
    asks: list[tuple[int, int]]
    valid: bool
    frame: bytes


class Hub:
    def __init__(
        self, settings: GatewaySettings, metrics: GatewayMetrics, symbols: Symbols | None = None
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.symbols = symbols or Symbols(settings.feed)
        self.feeds: dict[str, Feed] = {}  # by venue: the own one, then the further ones
        # Tickers the security master knows, by venue (when it exists).
        self.known: dict[str, Known] = {}
        self.clients: set[Client] = set()
        self.subs: dict[str, set[Client]] = {}
        self.per_key: dict[str, int] = {}
        self._books: dict[str, _Rendered] = {}
        self._numbers = itertools.count(1)
        # Clients with something waiting whose connection takes writes (insertion-ordered set).
        self._ready: dict[Client, None] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._shedder = Shedder(settings.shed_after)
        # (time, stream messages pending, stream seq applied) at the looks of the last
        # _SHED_WINDOW seconds, summed over the venues that caught up (_load_venues)
        self._load_marks: deque[tuple[float, int, int]] = deque()
        self._load_venues: tuple[str, ...] = ()

    # ---- clients ------------------------------------------------------------------------

    def connect(self, key: ApiKey | None) -> Client:
        """A new client; AtLimit when its key or its key's tenant has its connections open."""
        open_now = self.per_key.get(key.name, 0) if key is not None else 0
        if key is not None and key.connections is not None and open_now >= key.connections:
            raise AtLimit(f"key {key.name} has its {key.connections} connections open already")
        limit = key.symbols if key is not None and key.symbols else self.settings.max_symbols
        client = Client(next(self._numbers), key, limit, self.settings.client_queue)
        delivery.admit(self, client, key)  # AtLimit: its tenant's connections
        if key is not None and key.connections is not None:
            self.per_key[key.name] = self.per_key.get(key.name, 0) + 1
        self.clients.add(client)
        return client

    def attach(self, client: Client, writer: Writer) -> None:
        """The client's connection is open: what it has waiting goes out from now on."""
        client.writer = writer
        if client.queue:
            self._mark(client)

    def writable_again(self, client: Client) -> None:
        """The client's connection takes writes again (see `Writer`)."""
        client.blocked_since = 0.0
        if client.queue:
            self._mark(client)

    def _mark(self, client: Client) -> None:
        if client.writer is not None and not client.blocked_since and client.close_code is None:
            self._ready[client] = None
            self._wake.set()

    def disconnect(self, client: Client) -> None:
        if client not in self.clients:
            return
        self.clients.discard(client)
        self._ready.pop(client, None)
        if client.key is not None and client.key.connections is not None:
            left = self.per_key.get(client.key.name, 1) - 1
            if left > 0:
                self.per_key[client.key.name] = left
            else:
                self.per_key.pop(client.key.name, None)
        for t in client.symbols:
            self._drop(t, client)
        client.symbols.clear()
        delivery.release(client)
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
        self.metrics.slow_disconnects.labels(label).inc()
        client.close(CLOSE_SLOW, reason)

    def close_all(self, code: int, reason: str) -> None:
        for c in list(self.clients):
            c.close(code, reason)

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._flush(), name="gateway-writer"),
            asyncio.create_task(self._watch(), name="gateway-send-watchdog"),
        ]
        if self.settings.shed_after > 0:
            self._tasks.append(asyncio.create_task(self._watch_load(), name="gateway-shedder"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _watch(self) -> None:
        """Clients that fell `send_timeout` behind, or whose connection took no write for
        that long (they stopped reading): 4408."""
        limit = self.settings.send_timeout
        while True:
            await asyncio.sleep(min(1.0, limit / 4))
            self.check_behind(time.monotonic())

    def check_behind(self, now: float) -> None:
        limit = self.settings.send_timeout
        for c in list(self.clients):
            if c.blocked_since and now - c.blocked_since > limit:
                self.slow(c, f"a send was blocked for more than {limit:g}s", "send_timeout")
            elif c.queue and now - c.queue[0][2] > limit:
                why = f"messages waited more than {limit:g}s to be sent{delivery.rate_note(c)}"
                self.slow(c, why, "behind")

    async def _watch_load(self) -> None:
        while True:
            await asyncio.sleep(_SHED_EVERY)
            self.check_load(time.monotonic())

    def check_load(self, now: float) -> None:
        """Close the newest clients with 1013 while the gateway is behind the stream and
        not catching up (shedding.py). A writer that cannot serve its clients shows here
        too: the stream is read by the same loop."""
        # The venues that caught up: one still replaying at start (or whose stream does
        # not exist yet) has no pace to judge, and must not keep the others from shedding.
        ready = tuple(v for v, f in self.feeds.items() if f.ready)
        if ready != self._load_venues:  # the sums below change meaning: start them again
            self._load_venues = ready
            self._load_marks.clear()
        if not ready:
            return
        feeds = [self.feeds[v] for v in ready]
        marks = self._load_marks
        # Sums over the venues: each feed's stream sequences count what it applied.
        marks.append((now, sum(f.pending() for f in feeds), sum(f.last_seq for f in feeds)))
        while len(marks) > 2 and now - marks[1][0] >= _SHED_WINDOW:
            marks.popleft()
        (t0, pending0, seq0), (_, pending, seq) = marks[0], marks[-1]
        grew, applied = pending - pending0, seq - seq0
        deficit = grew / (applied + grew) if grew > 0 else 0.0
        shrink_per_s = -grew / (now - t0) if grew < 0 else 0.0
        drain = pending / shrink_per_s if shrink_per_s else math.inf
        open_now = [c for c in self.clients if c.close_code is None]
        behind = max(f.behind() for f in feeds)
        n = self._shedder.observe(now, behind, deficit, drain, len(open_now))
        if not n:
            return
        log.warning(
            "the gateway is %.2fs behind the stream and applied %.0f%% of what arrived "
            "over the last second: closing the %d newest of %d clients (1013)",
            behind,
            100 * (1 - deficit),
            n,
            len(open_now),
        )
        reason = "the gateway is overloaded: try again later"
        for c in sorted(open_now, key=_number, reverse=True)[:n]:
            c.close(CLOSE_OVERLOADED, reason)
        self.metrics.shed.inc(n)

    # ---- queueing -----------------------------------------------------------------------

    def _push(self, client: Client, entry: Entry) -> None:
        if client.close_code is not None:
            return
        if client.queued >= client.queue_limit:
            self.slow(
                client,
                f"more than {client.queue_limit} messages waiting to be sent"
                f"{delivery.rate_note(client)}",
                "queue_full",
            )
            return
        client.queue.append(entry)
        client.queued += 1
        if client not in self._ready:
            self._mark(client)

    def _push_all(self, clients: Iterable[Client], kind: str, text: str) -> None:
        """One message to many clients: framed once, one shared queue entry."""
        entry = (kind, wire.text_frame(text.encode()), time.monotonic())
        for c in clients:
            self._push(c, entry)

    def _push_book(self, client: Client, ticker: str) -> None:
        if client.close_code is not None:
            return
        if ticker in client.pending_books:
            self.metrics.conflated += 1
            return
        client.pending_books.add(ticker)
        client.queue.append((_BOOK, ticker, time.monotonic()))
        if client not in self._ready:
            self._mark(client)

    def reply(self, client: Client, kind: str, text: str) -> None:
        self._push(client, (kind, wire.text_frame(text.encode()), time.monotonic()))

    def error(self, client: Client, code: str, message: str) -> None:
        self.metrics.client_errors.labels(code).inc()
        self.reply(client, "error", render.error(code, message))

    # ---- the feeds' sink -----------------------------------------------------------------
    # Keyed by symbol: a ticker of the own venue, `venue:ticker` of a further one.

    def locate(self, symbol: str) -> tuple[Feed, str]:
        """The feed of a symbol's venue and the venue's ticker."""
        venue, ticker = self.symbols.split(symbol)
        return self.feeds[venue], ticker

    def _render(self, symbol: str) -> _Rendered | None:
        """Render the book when it changed since the last rendering; None when it did not."""
        feed, ticker = self.locate(symbol)
        bids, asks, valid, ms = feed.state.view(ticker)
        old = self._books.get(symbol)
        if old is not None and old.valid == valid and old.bids == bids and old.asks == asks:
            return None
        text = render.orderbook(symbol, bids, asks, valid, ms)
        new = _Rendered(bids, asks, valid, wire.text_frame(text.encode()))
        self._books[symbol] = new
        return new

    def book_frame(self, symbol: str) -> bytes:
        cached = self._books.get(symbol)
        if cached is not None:
            return cached.frame
        rendered = self._render(symbol)
        assert rendered is not None
        if symbol not in self.subs:
            self._books.pop(symbol, None)
        return rendered.frame

    def books_changed(self, symbols: Iterable[str]) -> None:
        for s in symbols:
            clients = self.subs.get(s)
            if not clients:
                continue
            if self._render(s) is None:
                continue
            for c in clients:
                self._push_book(c, s)

    def trade(self, symbol: str, text: str) -> None:
        clients = self.subs.get(symbol)
        if clients:
            self._push_all(clients, "trade", text)

    def status(self, symbol: str, text: str) -> None:
        clients = self.subs.get(symbol)
        if clients:
            self._push_all(clients, "status", text)

    def caught_up(self, venue: str) -> None:
        """The start-up replay of `venue`'s feed is done: every subscriber of its markets
        gets their books now."""
        for t, clients in self.subs.items():
            if self.symbols.split(t)[0] != venue:
                continue
            self._books.pop(t, None)
            for c in clients:
                self._push_book(c, t)
                self._push_status(c, t)

    def _push_status(self, client: Client, symbol: str) -> None:
        feed, ticker = self.locate(symbol)
        m = feed.state.markets.get(ticker)
        if m is not None and m.status is not None:
            self.reply(client, "status", render.status(symbol, m.status, m.status_ms))

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
        """(known, unknown): known to the stream or to the security master of the
        symbol's venue. While a venue's start-up replay runs, a market may not have shown
        up yet: every symbol of that venue is accepted."""
        by_venue: dict[str, list[tuple[str, str]]] = {}
        for symbol in symbols:
            venue, ticker = self.symbols.split(symbol)
            by_venue.setdefault(venue, []).append((symbol, ticker))
        found: set[str] = set()
        for venue, pairs in by_venue.items():
            feed = self.feeds[venue]
            if not feed.ready:
                found.update(symbol for symbol, _ in pairs)
                continue
            state = feed.state
            found.update(symbol for symbol, ticker in pairs if state.knows(ticker))
            rest = [ticker for symbol, ticker in pairs if symbol not in found]
            known = self.known.get(venue)
            if rest and known is not None:
                stored = await known(rest)
                found.update(symbol for symbol, ticker in pairs if ticker in stored)
        return [s for s in symbols if s in found], [s for s in symbols if s not in found]

    async def subscribe(self, client: Client, value: Any) -> None:
        symbols = self._symbols(client, value)
        if symbols is None:
            return
        symbols = delivery.entitled(self, client, symbols)
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
                f"{client.max_symbols}{delivery.symbols_refused(client)}. Nothing was subscribed",
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
        for t in acked:
            if self.locate(t)[0].ready:
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

    async def _flush(self) -> None:
        """Rounds of writes, oldest connection first, each at most `write_slice` seconds
        (then the loop reads the stream), until cancelled."""
        ready = self._ready
        wake = self._wake
        while True:
            if not ready:
                wake.clear()
                await wake.wait()
                continue
            self.write_round(time.monotonic() + self.settings.write_slice)
            await asyncio.sleep(0)

    def write_round(self, end: float) -> None:
        """One round: every ready client in connection order, until `end` (at least one)."""
        ready = self._ready
        for c in sorted(ready, key=_number):
            del ready[c]
            self.write(c)
            if time.monotonic() >= end:
                return

    def write(self, client: Client) -> None:
        """Hand the client's connection everything waiting (up to `_BATCH_BYTES`) as one
        write; a client with more left stays ready for the next round."""
        writer = client.writer
        if client.close_code is not None or writer is None:
            return
        if not writer.writable():
            client.blocked_since = client.blocked_since or time.monotonic()
            return
        most = len(client.queue)  # messages in this write: fewer under a tenant's messages/s
        if client.policy is not None:
            if delivery.throttled(self, client):
                return
            most = delivery.allowance(client, most)
        queue = client.queue
        frames: list[bytes] = []
        size = 0
        counts: dict[str, int] = {}
        while queue and size < _BATCH_BYTES and len(frames) < most:
            kind, item, _ = queue.popleft()
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
        if queue:
            self._ready[client] = None
        if client.transform is not None or client.policy is not None:
            frames = delivery.rendered(self, client, frames)
        if not frames:
            return
        writer.write(frames)
        sent = self.metrics.sent
        for kind, n in counts.items():
            sent[kind] = sent.get(kind, 0) + n


def _number(client: Client) -> int:
    return client.number
