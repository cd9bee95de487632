"""The venue seam: what the connector asks of an exchange, and nothing else.

A venue is one folder, `ssmd/venues/<name>/`, whose module `venue.py` exports
`VENUE`, a `Venue`. The connector (shards, pipeline, runner), `ssmd up` and the tests reach the
exchange only through it; subjects, storage keys, the archive and the gateway are
venue-neutral. The feed named `<name>` in `exchanges/feeds/` uses the venue of the
same name (`ssmd.venues.venue(name)`).

    Venue
      name                the feed's name ("kalshi", "kraken", ...)
      session(...)        one WebSocket connection: connect, keep-alive, read frames
                          (each read's messages to on_frames first, as received), send commands.
      subscriptions(shard, session)
                          the subscription protocol on that connection: subscribe the
                          shard's symbols (or its global channels), add and remove some,
                          ask for fresh book snapshots after a loss (`snapshot`), or
                          drop and redo a whole stream (`resubscribe`).
      codec()             the Rust side, one per connector process: normalizes a batch of
                          one connection's frames into records, keeps the books and their
                          integrity (sequence numbers, checksums) and reports losses as
                          gap/resynced events, and checkpoints the books.
      selection(...)      which symbols to capture: the venue's REST listing, filtered by
                          the environment's `symbols`.
      credentials(env)    what `session` needs to sign in (None for public data).
      sync_markets(run)   the security master's market sync (`ssmd market sync`): the
                          venue's REST listing into the store, as `markets` rows of the
                          venue (ssmd.secmaster.sync for Kalshi's series, events and
                          markets; ssmd.secmaster.listing.ListingSync for one listing).
      global_channels     channels one connection carries for every symbol (Kalshi's
                          market lifecycle); the rest are subscribed per symbol.
      lifecycle           the stream carries market lifecycle records keyed by the
                          store's tickers, which `ssmd market live` applies (Kalshi's).

Streams. Loss is reported per (connection id, stream): Kalshi's stream is the
subscription id (sid) of a channel; a venue without sids numbers its own streams
(Kraken: one per channel). A gap event names the stream and the symbols whose books
became invalid; the runner then calls `Subscriptions.snapshot(stream, symbols)`, and,
when no snapshot came within the resync timeout, `resubscribe(stream)`, then drops the
connection. The codec says `resynced` once a book is exact again.

Events the codec returns (ssmd.core's event classes, as BookSet.apply_batch does):
    GapEvent(conn_id, stream, expected, received, [symbols])  books invalid, fetch again
    UnreadableEvent(conn_id, stream, seq, [symbols])          same, no seq missing
    ResyncedEvent(symbol)                                     a book is exact again
    DuplicateEvent(...)                                       a redelivered update
and from `sequence` (streams whose records cannot be fetched again, e.g. trades):
    GapEvent(..., [symbol]) | DuplicateEvent(..., symbol)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ssmd import core
    from ssmd.config import ResolvedEnvironment
    from ssmd.config.models.environment import Symbols
    from ssmd.connector.groups import ShardGroup
    from ssmd.connector.shards import Shard
    from ssmd.secmaster.sync import SyncReport, SyncRun

__all__ = [
    "DEFAULT_LIVENESS",
    "MAX_FRAME_BYTES",
    "Batch",
    "Codec",
    "CoreCodec",
    "Liveness",
    "Selector",
    "Session",
    "Subscriptions",
    "Venue",
]

# The largest frame a session reads: it must fit in one NATS message with its headers
# (nats-server's default max_payload is 1 MiB), and it bounds a session's memory. A larger
# frame closes the connection (WebSocket 1009), which the connector records as a gap.
MAX_FRAME_BYTES = 1024 * 1024 - 8 * 1024


@dataclass(frozen=True)
class Liveness:
    ping_interval: float = 30.0
    ping_timeout: float = 10.0  # also the timeout of every command send
    stale_after: float = 90.0
    open_timeout: float = 10.0
    reply_timeout: float = 30.0


DEFAULT_LIVENESS = Liveness()


class Session(Protocol):
    """One connection. `await open()`, then `await run()` until it returns why it ended."""

    close_reason: str
    frames: int
    last_frame: float  # monotonic time of the last frame read (0: none)
    last_pong: float  # monotonic time of the last keep-alive answer (0: none)

    @property
    def connected(self) -> bool:
        """The socket was opened (it may have ended since)."""
        ...

    async def open(self) -> None: ...

    async def run(self) -> str: ...

    async def close(self) -> None: ...

    def abort(self, reason: str) -> None:
        """Drop the connection now, without a close handshake; `reason` becomes the close reason
        unless one is set."""
        ...


class Subscriptions(Protocol):
    """The subscription protocol of one connection of one shard."""

    @property
    def streams(self) -> dict[str, int]:
        """channel -> stream number on this connection (Kalshi: its sid)."""
        ...

    async def open(self) -> None:
        """Subscribe what the shard holds (its global channels, or its symbols)."""
        ...

    async def add(self, symbols: list[str]) -> None:
        """Subscribe more symbols; those taken go to `shard.subscribed`, a refusal for lack
        of room to `shard.refused` (the shard set places them elsewhere). Those refused
        otherwise stay out of `shard.subscribed`, reported: the shard asks for them again
        (Shard.catch_up). ssmd.exceptions.NoReply when a command got no answer."""
        ...

    async def remove(self, symbols: list[str]) -> None: ...

    async def snapshot(self, stream: int, symbols: list[str]) -> None:
        """Ask for fresh books of `symbols` on `stream` (after a gap or a bad checksum)."""
        ...

    async def resubscribe(self, stream: int) -> bool:
        """Unsubscribe `stream` and subscribe its channel again; False if not live here."""
        ...

    def stream_error(self, stream: int, code: int, text: str) -> None:
        """The exchange said a stream failed (Kalshi: an error on a sid)."""
        ...


class Batch(Protocol):
    """A normalized batch (ssmd._core.NormalizedBatch and the venues' like it)."""

    @property
    def data(self) -> bytes: ...

    @property
    def records(self) -> list[tuple[int, str, str, int, int]]: ...

    @property
    def problems(self) -> list[tuple[int, str, str]]: ...

    @property
    def kinds(self) -> bytes: ...


class Codec(Protocol):
    """The venue's Rust core for one connector process (stateful: books, sequences)."""

    frame_kinds: tuple[str, ...]  # names of Batch.kinds codes: the raw subjects' types

    def normalize(self, frames: list[bytes], receive_ns: list[int], conn_id: int) -> Batch: ...

    def integrity(self, batch: Batch) -> Sequence[core.BookEvent]:
        """Book events of the batch, in frame order (see the module docstring)."""
        ...

    def sequence(self, batch: Batch) -> Sequence[core.SeqEvent]:
        """Sequence events of the batch's unrecoverable streams (trades, lifecycle)."""
        ...

    def checkpoint(self, now_ns: int, everything: bool) -> list[tuple[str, bytes]]:
        """(symbol, `book` record) per book changed since the last call (or every book)."""
        ...

    def forget(self, conn_id: int) -> None:
        """A connection ended: its streams' state goes and its books are invalid."""
        ...


class CoreCodec:
    """A Codec whose work is all done by one ssmd._core codec object (`core`): a venue
    without sequence numbers, whose integrity events come from its books alone."""

    frame_kinds: tuple[str, ...]
    core: Any

    def normalize(self, frames: list[bytes], receive_ns: list[int], conn_id: int) -> Batch:
        batch: Batch = self.core.normalize(frames, receive_ns, conn_id)
        return batch

    def integrity(self, batch: Batch) -> Sequence[core.BookEvent]:
        events: Sequence[core.BookEvent] = self.core.integrity(batch)
        return events

    def sequence(self, batch: Batch) -> Sequence[core.SeqEvent]:
        return []

    def checkpoint(self, now_ns: int, everything: bool) -> list[tuple[str, bytes]]:
        records: list[tuple[str, bytes]] = self.core.checkpoint(now_ns, everything)
        return records

    def forget(self, conn_id: int) -> None:
        self.core.forget(conn_id)


class Selector(Protocol):
    """Which symbols to capture (ssmd.connector.selection.Selection for Kalshi).

    A listing `refresh` cannot read keeps what was known, counts `refresh_errors` and
    says why in `last_error` ("" after a read that succeeded)."""

    refresh_errors: int
    last_error: str

    async def refresh(self) -> None: ...

    def desired(self) -> set[str]: ...

    def on_lifecycle(self, rec: dict[str, Any]) -> bool: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class Venue:
    name: str
    # (url, credentials, on_frames, *, liveness, on_stream_error, max_frame_bytes) -> Session
    session: Callable[..., Session]
    subscriptions: Callable[[Shard, Any], Subscriptions]
    codec: Callable[[], Codec]
    # (symbols, rest_url, credentials, clock, stored, group) -> Selector
    selection: Callable[
        [
            Symbols,
            str,
            Any,
            Callable[[], float],
            Callable[[], Iterable[dict[str, Any]]] | None,
            ShardGroup | None,
        ],
        Selector,
    ]
    credentials: Callable[[ResolvedEnvironment], Any]
    sync_markets: Callable[[SyncRun], Awaitable[SyncReport]]
    global_channels: frozenset[str] = frozenset()
    lifecycle: bool = False
