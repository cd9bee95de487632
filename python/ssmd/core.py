"""The only module that imports the compiled extension ssmd._core.

Everything else imports from here, so the rest of the package can be read and
typed without the binary, and a stale or mismatched binary fails loudly at
import instead of misbehaving later.
"""

from __future__ import annotations

import logging

from ssmd import __version__
from ssmd.exceptions import CoreVersionError

try:
    from ssmd import _core
except ImportError as exc:  # pragma: no cover - exercised only on broken installs
    raise CoreVersionError(
        "ssmd._core (the Rust extension) is not built; run `just setup` "
        f"(or `maturin develop --release`): {exc}"
    ) from exc

if _core.__version__ != __version__:
    raise CoreVersionError(
        f"ssmd._core is version {_core.__version__} but the ssmd package is {__version__}; "
        "rebuild the extension with `just setup`"
    )

logging.getLogger(__name__).debug(
    "ssmd._core %s (%s build)", _core.__version__, _core.build_profile
)

version: str = _core.__version__  # equal to ssmd.__version__ (checked above)
build_profile: str = _core.build_profile

# Normalization and records (rust/ssmd-py/src/normalize.rs).
FRAME_KINDS: tuple[str, ...] = _core.FRAME_KINDS
RECORD_TYPES: tuple[str, ...] = _core.RECORD_TYPES
SCALE_E6: int = _core.SCALE_E6
NormalizedBatch = _core.NormalizedBatch
normalize_kalshi = _core.normalize_kalshi
# Polymarket's market channel (rust/ssmd-py/src/polymarket.rs).
PolymarketCodec = _core.PolymarketCodec
PolymarketBatch = _core.PolymarketBatch
# Kraken's spot WebSocket v2 (rust/ssmd-py/src/kraken.rs).
KrakenCodec = _core.KrakenCodec
KrakenBatch = _core.KrakenBatch
decode_records = _core.decode_records
encode_records = _core.encode_records
record_spans = _core.record_spans
record_heads = _core.record_heads
exchange_times = _core.exchange_times

# Records as Arrow-layout column buffers (rust/ssmd-py/src/columns.rs).
ColumnBuffer = _core.ColumnBuffer
# One column: (name, type, values, offsets, validity, null_count).
Column = tuple[str, str, ColumnBuffer, ColumnBuffer | None, ColumnBuffer | None, int]
records_to_columns = _core.records_to_columns
archive_to_columns = _core.archive_to_columns

# Archives (rust/ssmd-py/src/archive.rs) and order books (rust/ssmd-py/src/book.rs).
ArchiveWriter = _core.ArchiveWriter
ArchiveReader = _core.ArchiveReader
ArchiveContents = _core.ArchiveContents
read_archive = _core.read_archive
raw_lines = _core.raw_lines  # the raw archive's JSONL lines read back
ARCHIVE_DEFAULT_LEVEL: int = _core.ARCHIVE_DEFAULT_LEVEL
BookSet = _core.BookSet
BookView = _core.BookView
FeedBatch = _core.FeedBatch  # BookSet.apply_deliveries: the gateway's fan-in
TradeMessage = _core.TradeMessage
trade_messages = _core.trade_messages
SeqTracker = _core.SeqTracker

# What books and sequence checks report (rust/ssmd-py/src/events.rs).
GapEvent = _core.GapEvent
UnreadableEvent = _core.UnreadableEvent
DuplicateEvent = _core.DuplicateEvent
ResyncedEvent = _core.ResyncedEvent
DeltaWithoutSnapshotEvent = _core.DeltaWithoutSnapshotEvent
InvalidatedEvent = _core.InvalidatedEvent
BookEvent = (
    GapEvent
    | UnreadableEvent
    | DuplicateEvent
    | ResyncedEvent
    | DeltaWithoutSnapshotEvent
    | InvalidatedEvent
)
SeqEvent = GapEvent | DuplicateEvent
# The name of each kind in metrics and logs.
BOOK_EVENT_KINDS: dict[type, str] = {
    GapEvent: "gap",
    UnreadableEvent: "unreadable",
    DuplicateEvent: "duplicate",
    ResyncedEvent: "resynced",
    DeltaWithoutSnapshotEvent: "delta_without_snapshot",
    InvalidatedEvent: "invalidated",
}

# The archiver's per-message work (rust/ssmd-py/src/route.rs), and the headers the
# connector puts on raw frames for it.
RECEIVE_HEADER: str = _core.RECEIVE_HEADER
CONN_HEADER: str = _core.CONN_HEADER
EXCHANGE_HEADER: str = _core.EXCHANGE_HEADER
HOUR_NS: int = _core.HOUR_NS
DAY_NS: int = _core.DAY_NS
Chunk = _core.Chunk
Coverage = _core.Coverage
RoutedBatch = _core.RoutedBatch
RoutedChunk = _core.RoutedChunk
route_batch = _core.route_batch

# The NATS client protocol without I/O (rust/ssmd-py/src/nats.rs), for ssmd.bus.wire.
NatsProtocol = _core.NatsProtocol
Received = _core.Received
Deliveries = _core.Deliveries
ack_meta = _core.ack_meta

# JetStream publishing without I/O (rust/ssmd-py/src/publish.rs), for ssmd.bus.publisher
# and the connector's pipeline.
OutBatch = _core.OutBatch
PublishWindow = _core.PublishWindow
Acked = _core.Acked

# A WebSocket client's reads without I/O (rust/ssmd-py/src/websocket.rs), for
# ssmd.venues.websocket.
WsReader = _core.WsReader
WsRead = _core.WsRead
WsEnd = _core.WsEnd
