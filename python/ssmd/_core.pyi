# Type stub of the compiled extension ssmd._core (rust/ssmd-py).
# Checked against the built module by `just lint` (mypy.stubtest).
# Import from ssmd.core, never from here directly.

__version__: str
build_profile: str

# --- normalize (rust/ssmd-py/src/normalize.rs) ---

# --- archive (rust/ssmd-py/src/archive.rs) ---

# Here rather than at the top so that each section stays self-contained.
from typing import final  # noqa: E402

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

    apply() returns events as tuples, first item the kind:
    ("gap", conn_id, sid, expected, received, [tickers]),
    ("duplicate", conn_id, sid, seq), ("resynced", ticker),
    ("delta_without_snapshot", ticker), ("invalidated", ticker, reason).
    """

    def __new__(cls) -> BookSet: ...
    def apply(self, data: bytes) -> list[tuple[object, ...]]: ...
    def view(self, ticker: str, depth: int = 0) -> dict[str, object] | None: ...
    def tickers(self) -> list[str]: ...
    def remove(self, ticker: str) -> bool: ...
    def close_connection(self, conn_id: int) -> list[str]: ...
    def reset_stream(self, conn_id: int, sid: int) -> None: ...
    @property
    def ignored_deltas(self) -> int: ...
    def __len__(self) -> int: ...
