# Type stub of the compiled extension ssmd._core (rust/ssmd-py).
# Checked against the built module by `just lint` (mypy.stubtest).
# Import from ssmd.core, never from here directly.

from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Protocol, Self, final

__version__: str

# ---- events of books and sequence checks (rust/ssmd-py/src/events.rs) ----

@final
class GapEvent:
    """Seqs missing on (conn_id, stream): books of `tickers` invalid until snapshots, or
    trade/lifecycle records lost (one ticker). 0 and 0 when a venue only suspects it."""

    @property
    def conn_id(self) -> int: ...
    @property
    def stream(self) -> int: ...
    @property
    def expected(self) -> int: ...
    @property
    def received(self) -> int: ...
    @property
    def tickers(self) -> list[str]: ...
    def __new__(
        cls, conn_id: int, stream: int, expected: int, received: int, tickers: list[str]
    ) -> Self: ...

@final
class UnreadableEvent:
    """The delta at `seq` named no readable market: the books of `tickers` are invalid."""

    @property
    def conn_id(self) -> int: ...
    @property
    def stream(self) -> int: ...
    @property
    def seq(self) -> int: ...
    @property
    def tickers(self) -> list[str]: ...
    def __new__(cls, conn_id: int, stream: int, seq: int, tickers: list[str]) -> Self: ...

@final
class DuplicateEvent:
    """A seq seen before on (conn_id, stream); `ticker` "" for books."""

    @property
    def conn_id(self) -> int: ...
    @property
    def stream(self) -> int: ...
    @property
    def seq(self) -> int: ...
    @property
    def ticker(self) -> str: ...
    def __new__(cls, conn_id: int, stream: int, seq: int, ticker: str = "") -> Self: ...

@final
class ResyncedEvent:
    """The book of `ticker` is exact again."""

    @property
    def ticker(self) -> str: ...
    def __new__(cls, ticker: str) -> Self: ...

@final
class DeltaWithoutSnapshotEvent:
    """A delta for `ticker` came before any snapshot of it."""

    @property
    def ticker(self) -> str: ...
    def __new__(cls, ticker: str) -> Self: ...

@final
class InvalidatedEvent:
    """The book of `ticker` became invalid, for `reason`."""

    @property
    def ticker(self) -> str: ...
    @property
    def reason(self) -> str: ...
    def __new__(cls, ticker: str, reason: str) -> Self: ...

_BookEvent = (
    GapEvent
    | UnreadableEvent
    | DuplicateEvent
    | ResyncedEvent
    | DeltaWithoutSnapshotEvent
    | InvalidatedEvent
)
build_profile: str

# --- normalize (rust/ssmd-py/src/normalize.rs) ---

FRAME_KINDS: tuple[str, ...]
RECORD_TYPES: tuple[str, ...]
SCALE_E6: int

@final
class NormalizedBatch:
    """The result of normalize_kalshi: one buffer of records plus routing."""

    def __len__(self) -> int: ...
    @property
    def data(self) -> bytes: ...
    @property
    def records(self) -> list[tuple[int, str, str, int, int]]: ...
    @property
    def problems(self) -> list[tuple[int, str, str]]: ...
    @property
    def control(self) -> list[int]: ...
    @property
    def kinds(self) -> bytes: ...
    @property
    def problem_frames(self) -> int: ...

def normalize_kalshi(
    frames: list[bytes], receive_ns: list[int], conn_id: int
) -> NormalizedBatch: ...
def decode_records(data: bytes) -> list[dict[str, Any]]: ...
def encode_records(records: list[dict[str, Any]]) -> bytes: ...
def record_heads(data: bytes) -> list[tuple[int, str, str, str]]: ...
def exchange_times(data: bytes) -> list[int]: ...
def record_spans(data: bytes) -> list[tuple[int, int]]: ...

# --- Polymarket (rust/ssmd-py/src/polymarket.rs) ---

@final
class PolymarketBatch:
    """The result of PolymarketCodec.normalize: one buffer of records plus routing."""

    def __len__(self) -> int: ...
    @property
    def data(self) -> bytes: ...
    @property
    def records(self) -> list[tuple[int, str, str, int, int]]: ...
    @property
    def problems(self) -> list[tuple[int, str, str]]: ...
    @property
    def kinds(self) -> bytes: ...
    @property
    def control(self) -> list[tuple[int, str]]: ...
    @property
    def resyncs(self) -> list[tuple[int, str, str]]: ...
    @property
    def resynced(self) -> list[tuple[int, str]]: ...
    @property
    def hashes(self) -> tuple[int, int, int]: ...

@final
class PolymarketCodec:
    """Polymarket's normalizer for one process: token books per connection."""

    frame_kinds: ClassVar[list[str]]
    auto_mismatch_budget: ClassVar[int]
    def __new__(cls, hash_mode: str = "auto") -> PolymarketCodec: ...
    def set_token(self, asset_id: str, min_order_size: str, neg_risk: bool) -> None: ...
    def normalize(
        self, frames: list[bytes], receive_ns: list[int], conn_id: int
    ) -> PolymarketBatch: ...
    def integrity(self, batch: PolymarketBatch) -> list[GapEvent | ResyncedEvent]: ...
    def sequence(self, batch: PolymarketBatch) -> list[GapEvent | DuplicateEvent]: ...
    def checkpoint(self, now_ns: int, everything: bool) -> list[tuple[str, bytes]]: ...
    def forget(self, conn_id: int) -> None: ...
    def book(
        self, conn_id: int, asset_id: str, depth: int = 0
    ) -> tuple[bool, list[tuple[int, int]], list[tuple[int, int]]] | None: ...

# --- Kraken (rust/ssmd-py/src/kraken.rs) ---

@final
class KrakenBatch:
    """The result of KrakenCodec.normalize: one buffer of records plus routing."""

    def __len__(self) -> int: ...
    @property
    def data(self) -> bytes: ...
    @property
    def records(self) -> list[tuple[int, str, str, int, int]]: ...
    @property
    def problems(self) -> list[tuple[int, str, str]]: ...
    @property
    def kinds(self) -> bytes: ...

@final
class KrakenCodec:
    """Kraken's normalizer for one process: exact books checked by CRC32, precisions."""

    frame_kinds: ClassVar[list[str]]
    book_stream: ClassVar[int]
    def __new__(cls) -> KrakenCodec: ...
    def set_precision(self, symbol: str, price_decimals: int, qty_decimals: int) -> None: ...
    def precision(self, symbol: str) -> tuple[int, int] | None: ...
    def set_depth(self, symbol: str, depth: int) -> None: ...
    @property
    def checksum_mismatches(self) -> int: ...
    def normalize(
        self, frames: list[bytes], receive_ns: list[int], conn_id: int
    ) -> KrakenBatch: ...
    def integrity(self, batch: KrakenBatch) -> list[GapEvent | ResyncedEvent]: ...
    def gap_reasons(self, batch: KrakenBatch) -> list[tuple[str, str]]: ...
    def sequence(self, batch: KrakenBatch) -> list[GapEvent | DuplicateEvent]: ...
    def checkpoint(self, now_ns: int, everything: bool) -> list[tuple[str, bytes]]: ...
    def forget(self, conn_id: int) -> list[str]: ...
    def book(
        self, symbol: str
    ) -> tuple[bool, int, int, list[tuple[int, int]], list[tuple[int, int]]] | None: ...
    def checksum(self, symbol: str) -> int | None: ...

# --- columns (rust/ssmd-py/src/columns.rs) ---

@final
class ColumnBuffer:
    """Read-only bytes owned by Rust, exposed through the buffer protocol
    (memoryview(buf), pyarrow.py_buffer(buf))."""

    def __len__(self) -> int: ...

_Column = tuple[str, str, ColumnBuffer, ColumnBuffer | None, ColumnBuffer | None, int]

def records_to_columns(data: bytes, kind: str) -> tuple[int, list[_Column]]: ...
def archive_to_columns(
    archive: bytes, kind: str
) -> tuple[int, list[_Column], tuple[int, int] | None]: ...

# --- archive (rust/ssmd-py/src/archive.rs) ---

# Here rather than at the top so that each section stays self-contained.

ARCHIVE_DEFAULT_LEVEL: int

@final
class ArchiveWriter:
    """Collects whole records; each flush returns one independent zstd frame.

    Holds what was written since the last flush: flush by size or time.
    """

    def __new__(cls, level: int = 3) -> ArchiveWriter: ...
    def write(self, data: bytes) -> None: ...
    def flush(self) -> bytes: ...
    @property
    def pending_len(self) -> int: ...

@final
class ArchiveContents:
    """Content of every complete frame, and where the readable prefix ends."""

    @property
    def data(self) -> bytes: ...
    @property
    def frames(self) -> int: ...
    @property
    def complete_len(self) -> int: ...
    @property
    def truncated_tail(self) -> tuple[int, int] | None: ...

def read_archive(data: bytes) -> ArchiveContents: ...
def raw_lines(
    data: bytes, first_line: int = 1
) -> list[tuple[int, int, str, str | None, bytes]]: ...

@final
class ArchiveReader:
    """Push-style reader: feed chunks, take content, finish for the tail."""

    def __new__(cls) -> ArchiveReader: ...
    def feed(self, chunk: bytes) -> None: ...
    def take(self) -> bytes: ...
    def finish(self) -> ArchiveContents: ...

# --- book (rust/ssmd-py/src/book.rs) ---

@final
class BookView:
    """One market's book as BookSet.view read it: levels best first, as (price_e6,
    size_e6); bids highest first, asks (derived from NO bids) lowest first. (conn_id,
    stream) is the sequence the book follows."""

    @property
    def ticker(self) -> str: ...
    @property
    def bids(self) -> list[tuple[int, int]]: ...
    @property
    def asks(self) -> list[tuple[int, int]]: ...
    @property
    def valid(self) -> bool: ...
    @property
    def conn_id(self) -> int: ...
    @property
    def stream(self) -> int: ...
    def __new__(
        cls,
        ticker: str,
        bids: list[tuple[int, int]],
        asks: list[tuple[int, int]],
        valid: bool,
        conn_id: int,
        stream: int,
    ) -> Self: ...

@final
class BookSet:
    """Order books keyed by ticker, fed packed Record messages in stream order.

    `checkpoint()` returns (ticker, `book` record) for the books changed since
    the last call; `apply()` of those on another BookSet restores them exactly.

    apply() returns the events it found (GapEvent, DuplicateEvent, ResyncedEvent,
    DeltaWithoutSnapshotEvent, InvalidatedEvent); apply_batch() (a normalized batch,
    in frame order: an order-book frame that yielded no record still takes its seq)
    adds UnreadableEvent: a delta whose market could not be read; every book of the
    sid is invalid until its snapshot. apply_deliveries() is the gateway's fan-in: a
    consumer's batch applied in one call, with a FeedBatch saying what changed.
    `ignore_seqs=True` takes each record's seq as it comes, for a reader of one
    market's records (the sid's seq is shared by the markets of a subscription).
    """

    def __new__(cls, ignore_seqs: bool = False) -> BookSet: ...
    def apply(self, data: bytes) -> list[_BookEvent]: ...
    def apply_batch(self, batch: NormalizedBatch) -> list[_BookEvent]: ...
    def apply_deliveries(
        self,
        deliveries: Deliveries,
        after_seq: int,
        after_consumer_seq: int,
        prefix: str,
        types: list[str],
        symbol_prefix: str = "",
    ) -> FeedBatch:
        """Applies a consumer's batch in order: deliveries at or below `after_seq` are
        skipped, so are those whose subject's type (the token after `prefix`) is not in
        `types`, a message that does not decode is skipped whole, and the call stops at
        a missing delivery (a consumer sequence other than `after_consumer_seq` + 1;
        0 checks nothing). A trade's message names its market `symbol_prefix` + ticker
        (a further venue's symbol in a gateway serving several)."""
    def checkpoint(self, receive_ns: int, everything: bool = False) -> list[tuple[str, bytes]]: ...
    def view(self, ticker: str, depth: int = 0) -> BookView | None:
        """The book of `ticker` with `depth` levels per side (0: all), or None."""
    def tickers(self) -> list[str]: ...
    def remove(self, ticker: str) -> bool: ...
    def close_connection(self, conn_id: int) -> list[str]: ...
    def reset_stream(self, conn_id: int, sid: int) -> None: ...
    @property
    def ignored_deltas(self) -> int: ...
    def __len__(self) -> int: ...

@final
class TradeMessage:
    """One trade as the gateway keeps and sends it (`text` is the client message)."""

    @property
    def ticker(self) -> str: ...
    @property
    def ms(self) -> int: ...
    @property
    def price_e6(self) -> int | None: ...
    @property
    def receive_ns(self) -> int: ...
    @property
    def text(self) -> str: ...

def trade_messages(data: bytes) -> list[str]:
    """The gateway's message of each trade in a stream of packed records, in order."""

@final
class FeedBatch:
    """What one BookSet.apply_deliveries did and found (rust/ssmd-py/src/feed.rs)."""

    @property
    def received(self) -> int: ...
    @property
    def last_seq(self) -> int: ...
    @property
    def pending(self) -> int: ...
    @property
    def consumer_seq(self) -> int: ...
    @property
    def last_stored_ns(self) -> int: ...
    @property
    def broken(self) -> bool: ...
    @property
    def duplicates(self) -> int: ...
    @property
    def ignored(self) -> int: ...
    @property
    def undecodable(self) -> int: ...
    @property
    def last_receive_ns(self) -> int: ...
    @property
    def counts(self) -> list[tuple[str, int]]: ...
    @property
    def book_events(self) -> list[tuple[str, int]]: ...
    @property
    def books(self) -> list[tuple[str, int]]: ...
    @property
    def trades(self) -> list[TradeMessage]: ...
    @property
    def records(self) -> list[dict[str, Any]]: ...

# --- seq (rust/ssmd-py/src/seq.rs) ---

@final
class SeqTracker:
    """Sequence checks per (conn_id, sid) for trade and lifecycle records.

    observe_batch() walks a normalized batch in frame order: a trade or lifecycle
    frame that yielded no record still takes its seq (its problems carry ticker "").
    """

    def __init__(self) -> None: ...
    def observe(self, data: bytes) -> list[GapEvent | DuplicateEvent]: ...
    def observe_batch(self, batch: NormalizedBatch) -> list[GapEvent | DuplicateEvent]: ...
    def reset(self, conn_id: int, sid: int) -> None: ...
    def forget_connection(self, conn_id: int) -> None: ...
    def __len__(self) -> int: ...

# --- route (rust/ssmd-py/src/route.rs) ---

RECEIVE_HEADER: str
CONN_HEADER: str
EXCHANGE_HEADER: str
HOUR_NS: int
DAY_NS: int

@final
class Chunk:
    """Items bound for one archive file, laid out as the spool stores them:
    `items` back to back, `lengths` (u32 LE each), `meta` ((u64 stream seq, u64 receive
    ns) LE each); the seq and ts ranges ignore zeros."""

    def __new__(cls, items: list[bytes], meta: list[tuple[int, int]]) -> Chunk: ...
    @property
    def items(self) -> bytes: ...
    @property
    def lengths(self) -> bytes: ...
    @property
    def meta(self) -> bytes: ...
    @property
    def count(self) -> int: ...
    @property
    def seq_first(self) -> int: ...
    @property
    def seq_last(self) -> int: ...
    @property
    def ts_first(self) -> int: ...
    @property
    def ts_last(self) -> int: ...

@final
class Coverage:
    """The stream sequences written so far: everything at or below the floor, and runs
    above it. A delivery is a duplicate only if its sequence was written; a sequence
    never written is a hole only once the consumer's ack floor passes it (`advance`)."""

    def __new__(
        cls, floor: int = 0, floor_ts: int = 0, runs: list[tuple[int, int, int, int]] = ...
    ) -> Coverage: ...
    def state(self) -> tuple[int, int, list[tuple[int, int, int, int]]]: ...
    def insert(self, seq: int, ts: int) -> bool: ...
    def __contains__(self, seq: int, /) -> bool: ...
    def advance(self, ack_floor: int) -> list[tuple[int, int, int, int]]: ...
    @property
    def floor(self) -> int: ...
    @property
    def last_seq(self) -> int: ...
    @property
    def runs(self) -> int: ...

@final
class RoutedChunk:
    """Where a chunk of a routed batch goes: `kind` "raw" (`data_type` = message type,
    `bucket` = hours since the epoch), "record" (record type and ticker, `bucket` =
    days), "events" (the connector events; `bucket` = days) or "derived" (messages not
    archived, book checkpoints: empty items, their sequences to journal)."""

    @property
    def kind(self) -> str: ...
    @property
    def data_type(self) -> str: ...
    @property
    def ticker(self) -> str: ...
    @property
    def bucket(self) -> int: ...
    @property
    def chunk(self) -> Chunk: ...

@final
class RoutedBatch:
    """route_batch's result: the chunks, each with where it goes, and counts."""

    @property
    def chunks(self) -> list[RoutedChunk]: ...
    @property
    def first_ts(self) -> int: ...
    @property
    def last_ts(self) -> int: ...
    @property
    def received(self) -> int: ...
    @property
    def duplicates(self) -> int: ...
    @property
    def malformed(self) -> int: ...
    @property
    def undecodable(self) -> int: ...
    @property
    def derived(self) -> int: ...

def route_batch(
    deliveries: Deliveries,
    prefix: str,
    written: Coverage,
    now_ns: int,
) -> RoutedBatch:
    """The archiver's per-message work for deliveries on "{prefix}.>": drops what
    `written` holds, turns raw frames into JSONL lines and routes records to their
    files; `written` learns the batch's sequences."""

class _Publishable(Protocol):
    subject: str
    payload: bytes
    msg_id: str
    headers: dict[str, str] | None
    receive_ns: int

class _Batch(Protocol):
    """A venue codec's batch: NormalizedBatch, PolymarketBatch or KrakenBatch."""

    @property
    def data(self) -> bytes: ...

@final
class Received:
    """What one `NatsProtocol.receive` found."""

    @property
    def acks(self) -> list[tuple[int, int, bool]]:
        """(token, stream seq, duplicate) of each PubAck."""
    @property
    def refusals(self) -> list[tuple[int, str]]:
        """(token, reason) of each publish JetStream refused."""
    @property
    def replies(self) -> int:
        """How many PubAcks and refusals this read brought."""
    @property
    def infos(self) -> list[bytes]: ...
    @property
    def errors(self) -> list[str]: ...
    @property
    def pings(self) -> int: ...
    @property
    def pongs(self) -> int: ...
    @property
    def confirmations(self) -> list[int]:
        """Tokens of the answers to acks sent with a confirm token."""
    @property
    def delivered(self) -> int:
        """Deliveries of the pull consumer this read added to those held."""
    @property
    def statuses(self) -> list[int]:
        """Status codes on the pull consumer's inbox (100, 404, 408, 409)."""
    @property
    def others(self) -> int: ...

def ack_meta(reply: str) -> tuple[int, int, int] | None:
    """(stream sequence, stored ns, pending) from a JetStream ack subject."""

@final
class Deliveries:
    """Messages a JetStream pull consumer delivered, held in Rust."""

    def __new__(
        cls, messages: list[tuple[str, int, int, dict[str, str] | None, bytes]]
    ) -> Deliveries:
        """Made by hand: (subject, stream seq, stored ns, headers, payload) each."""
    def __len__(self) -> int: ...
    @property
    def seqs(self) -> list[int]: ...
    def message(self, seq: int) -> tuple[str, dict[str, str] | None, bytes] | None:
        """(subject, headers, payload) of the message at stream sequence `seq`."""

@final
class NatsProtocol:
    """The NATS client protocol of one connection, without I/O: PubAcks return on
    `reply_prefix` + token; a pull consumer delivers to `deliver_subject`."""

    def __new__(cls, reply_prefix: str, deliver_subject: str = "") -> NatsProtocol: ...
    @property
    def reply_prefix(self) -> str: ...
    @property
    def deliver_subject(self) -> str: ...
    @property
    def held(self) -> int:
        """Deliveries received and not yet taken."""
    def take_deliveries(self, max: int) -> Deliveries: ...
    def encode_publish(self, subject: str, payload: bytes, reply: str = "") -> bytes:
        """One PUB without headers (a JetStream API request)."""
    def encode_acks(self, deliveries: Deliveries, confirm_token: int | None = None) -> bytes:
        """+ACK to each delivery; the last replies to the prefix + confirm_token."""
    def set_max_payload(self, max_payload: int) -> None: ...
    def reset(self) -> None: ...
    def receive(self, data: bytes) -> Received:
        """Parse bytes from the server; BusProtocolError when it breaks the protocol."""

@final
class OutBatch:
    """Messages to publish, in order, held in Rust."""

    def __new__(cls, msgs: Iterable[_Publishable] | None = None) -> OutBatch: ...
    def __len__(self) -> int: ...
    @property
    def payload_bytes(self) -> int: ...
    def append(self, msg: _Publishable) -> None:
        """BusProtocolError on a subject or header NATS refuses; nothing is added then."""
    def extend(self, msgs: Iterable[_Publishable] | OutBatch) -> None: ...
    def subject(self, i: int) -> str: ...
    def msg_id(self, i: int) -> str: ...
    def header_lines(self, i: int) -> bytes:
        """The header lines after the Nats-Msg-Id line, as sent."""
    def payload(self, i: int) -> bytes: ...
    def receive_ns(self, i: int) -> int:
        """The receive time of the frame behind message i (0: not from a frame)."""
    def is_frame(self, i: int) -> bool:
        """Whether message i is a raw frame."""
    @property
    def last_frame_ns(self) -> int:
        """The receive time of the last raw frame (0: none)."""
    def end_within(self, start: int, count: int, size: int) -> int:
        """The end of the run from `start` of at most `count` messages (one at least)
        and `size` bytes of payload (or its first message alone, if bigger)."""
    def add_frames(
        self,
        batch: _Batch,
        frames: list[bytes],
        kinds: bytes,
        receive_ns: list[int],
        frame_nos: list[int],
        conn: int,
        raw_subjects: list[str],
        heads: dict[str, str],
        token: Callable[[str], str],
        exchange_headers: bool = False,
    ) -> list[bytes]:
        """One connection's frames, then the records `batch` made of them: frame k on
        raw_subjects[kinds[k]] as `{conn}:{frame_nos[k]}`, each record on
        heads[type] + token(ticker) as `{conn}:{frame}:n` (`:n1`, ... after the first
        of a frame). Returns the lifecycle records' payloads."""

@final
class Acked:
    """What one read's PubAcks and refusals did to a PublishWindow."""

    @property
    def acked(self) -> int: ...
    @property
    def duplicates(self) -> int: ...
    @property
    def frames(self) -> int:
        """Raw frames among the acked messages."""
    @property
    def newest_frame_ns(self) -> int:
        """The newest receive time among them."""
    @property
    def frame_times(self) -> list[int]:
        """The receive time of each acked frame, when the window keeps them."""
    @property
    def refused(self) -> list[str]:
        """Why JetStream refused a message still unacked."""
    @property
    def reordered(self) -> list[tuple[str, str]]:
        """(message id, subject) of each replayed message found stored ahead of a
        message published before it."""

@final
class PublishWindow:
    """The messages sent and not yet acked, matched to their PubAcks by the token that
    ends their reply subject (`reply_prefix` + token)."""

    def __new__(cls, reply_prefix: str, keep_frame_times: bool = False) -> PublishWindow: ...
    def __len__(self) -> int: ...
    @property
    def payload_bytes(self) -> int:
        """The unacked messages' payload size."""
    @property
    def oldest_sent(self) -> float | None:
        """The `now` the oldest unacked message was sent with."""
    def send(self, batch: OutBatch, start: int, end: int, now: float) -> bytes:
        """The HPUBs of messages start..end of `batch`, which become unacked."""
    def hold(self, batch: OutBatch, start: int, end: int, now: float) -> None:
        """Takes messages start..end as unacked without sending them."""
    def ack(self, got: Received) -> Acked: ...
    def take_unacked(self) -> OutBatch:
        """Every unacked message in the order sent; the window is then empty and a
        replay begins."""
    def end_replay(self) -> None: ...

@final
class WsEnd:
    """How a WebSocket connection ended, as read: the server's close frame
    (`by_server`), or the protocol error the client closes for (1002, 1007, 1009)."""

    @property
    def code(self) -> int: ...
    @property
    def reason(self) -> str: ...
    @property
    def by_server(self) -> bool: ...

@final
class WsRead:
    """What one read from the socket held."""

    @property
    def messages(self) -> list[bytes]:
        """The whole messages, text and binary, in order, as received."""
    @property
    def watched(self) -> list[bytes]:
        """Those of the messages that contain one of the reader's `watch`, in order."""
    @property
    def pings(self) -> list[bytes]: ...
    @property
    def pongs(self) -> list[bytes]: ...
    @property
    def end(self) -> WsEnd | None:
        """Set once the connection ended; nothing is read after it."""

@final
class WsReader:
    """Reads the frames a WebSocket server sends to a client (no extension agreed);
    refuses a message over `max_size` bytes before buffering it. The messages that
    contain one of `watch` are also listed in `watched`."""

    def __new__(cls, max_size: int, watch: list[bytes] = ...) -> WsReader: ...
    def read(self, data: bytes) -> WsRead:
        """Reads the next bytes from the socket."""
    @property
    def buffered(self) -> int:
        """Bytes held for a frame or a message not yet whole."""
