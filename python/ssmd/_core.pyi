# Type stub of the compiled extension ssmd._core (rust/ssmd-py).
# Checked against the built module by `just lint` (mypy.stubtest).
# Import from ssmd.core, never from here directly.

from typing import Any, final

__version__: str
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
def record_spans(data: bytes) -> list[tuple[int, int]]: ...

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

@final
class ArchiveReader:
    """Push-style reader: feed chunks, take content, finish for the tail."""

    def __new__(cls) -> ArchiveReader: ...
    def feed(self, chunk: bytes) -> None: ...
    def take(self) -> bytes: ...
    def finish(self) -> ArchiveContents: ...

# --- book (rust/ssmd-py/src/book.rs) ---

@final
class BookSet:
    """Order books keyed by ticker, fed packed Record messages in stream order.

    `checkpoint()` returns (ticker, `book` record) for the books changed since
    the last call; `apply()` of those on another BookSet restores them exactly.

    apply() returns events as tuples, first item the kind:
    ("gap", conn_id, sid, expected, received, [tickers]),
    ("duplicate", conn_id, sid, seq), ("resynced", ticker),
    ("delta_without_snapshot", ticker), ("invalidated", ticker, reason).
    apply_batch() (a normalized batch, in frame order: an order-book frame that
    yielded no record still takes its seq) adds
    ("unreadable", conn_id, sid, seq, [tickers]): a delta whose market could not
    be read; every book of the sid is invalid until its snapshot.
    `ignore_seqs=True` takes each record's seq as it comes, for a reader of one
    market's records (the sid's seq is shared by the markets of a subscription).
    """

    def __new__(cls, ignore_seqs: bool = False) -> BookSet: ...
    def apply(self, data: bytes) -> list[tuple[object, ...]]: ...
    def apply_batch(self, batch: NormalizedBatch) -> list[tuple[object, ...]]: ...
    def checkpoint(self, receive_ns: int, everything: bool = False) -> list[tuple[str, bytes]]: ...
    def view(self, ticker: str, depth: int = 0) -> dict[str, object] | None: ...
    def tickers(self) -> list[str]: ...
    def remove(self, ticker: str) -> bool: ...
    def close_connection(self, conn_id: int) -> list[str]: ...
    def reset_stream(self, conn_id: int, sid: int) -> None: ...
    @property
    def ignored_deltas(self) -> int: ...
    def __len__(self) -> int: ...

# --- seq (rust/ssmd-py/src/seq.rs) ---

@final
class SeqTracker:
    """Sequence checks per (conn_id, sid) for trade and lifecycle records.

    observe_batch() walks a normalized batch in frame order: a trade or lifecycle
    frame that yielded no record still takes its seq (its problems carry ticker "").
    """

    def __init__(self) -> None: ...
    def observe(self, data: bytes) -> list[tuple[str, int, int, int, int, str]]: ...
    def observe_batch(
        self, batch: NormalizedBatch
    ) -> list[tuple[str, int, int, int, int, str]]: ...
    def reset(self, conn_id: int, sid: int) -> None: ...
    def forget_connection(self, conn_id: int) -> None: ...
    def __len__(self) -> int: ...

# --- wire (rust/ssmd-py/src/wire.rs) ---

def encode_publishes(msgs: list[Any], reply_prefix: bytes, first_token: int) -> bytes:
    """NATS HPUB commands of objects with subject, payload, msg_id, headers and
    header_lines; the i-th replies to reply_prefix + str(first_token + i)."""

def parse_acks(
    data: bytes, head: bytes, sid: int
) -> tuple[list[tuple[int, int, bool, bytes | None]], int]:
    """PubAcks `MSG <head><token> <sid> <size>` at the start of data: (token, seq,
    duplicate, payload when refused), and the offset where the rest begins."""

def parse_deliveries(
    data: bytes, sid: int, pos: int = 0
) -> tuple[list[tuple[str, str, int, int, dict[str, str] | None, bytes, int]], int]:
    """MSG/HMSG for subscription `sid` at data[pos:]: (subject, reply, stream seq, stored
    ns, headers, payload, status), and the offset of the first byte that is not one."""

def encode_acks(
    deliveries: list[tuple[str, str, int, int, dict[str, str] | None, bytes, int]],
) -> bytes:
    """`PUB <reply> 4\\r\\n+ACK\\r\\n` for each delivery: the acks of a batch in one write."""

def message_end(data: bytes, pos: int) -> int | None:
    """Where the complete MSG/HMSG (any subscription) at data[pos:] ends; None when more
    bytes are needed; ValueError when the bytes there are not such a message."""

# --- route (rust/ssmd-py/src/route.rs) ---

RECEIVE_HEADER: str
CONN_HEADER: str
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
class RoutedBatch:
    """route_batch's result: chunks [(kind "raw" | "record" | "events" | "derived", type,
    ticker, bucket (hours since the epoch for raw, days otherwise), Chunk)] and counts.
    A "derived" chunk holds the sequences of messages not archived (book checkpoints),
    with empty items."""

    @property
    def chunks(self) -> list[tuple[str, str, str, int, Chunk]]: ...
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
    deliveries: list[tuple[str, str, int, int, dict[str, str] | None, bytes, int]],
    prefix: str,
    written: Coverage,
    now_ns: int,
) -> RoutedBatch:
    """The archiver's per-message work for deliveries on "{prefix}.>": drops what
    `written` holds, turns raw frames into JSONL lines and routes records to their
    files; `written` learns the batch's sequences."""
