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
def records_to_columns(
    data: bytes, kind: str
) -> tuple[int, list[tuple[str, str, bytes, bytes | None, bytes | None, int]]]: ...

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
    """

    def __new__(cls) -> BookSet: ...
    def apply(self, data: bytes) -> list[tuple[object, ...]]: ...
    def checkpoint(
        self, receive_ns: int, everything: bool = False
    ) -> list[tuple[str, bytes]]: ...
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
    """Sequence checks per (conn_id, sid) for trade and lifecycle records."""

    def __init__(self) -> None: ...
    def observe(self, data: bytes) -> list[tuple[str, int, int, int, int, str]]: ...
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

def message_end(data: bytes, pos: int) -> int | None:
    """Where the complete MSG/HMSG (any subscription) at data[pos:] ends; None when more
    bytes are needed; ValueError when the bytes there are not such a message."""
