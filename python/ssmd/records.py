"""Normalized records as Python values, Arrow tables and Polars frames.

A normalized stream is packed Cap'n Proto `Record` messages back to back
(schemas/ssmd.capnp): one NATS message holds one, an archive's data file holds
many (zstd-compressed). Prices and sizes are exact integers in 1e-6 units
(`*_e6` columns); divide by SCALE_E6 for dollars or contracts. Timestamps are
UTC nanoseconds.

    import ssmd.records
    frame = ssmd.records.to_polars(data, "trade")   # one row per trade
    frame = ssmd.records.archive_to_polars(path.read_bytes(), "trade")  # a data.capnp.zst
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ssmd import core
from ssmd.exceptions import ArchiveError

if TYPE_CHECKING:
    import polars
    import pyarrow

SCALE_E6 = core.SCALE_E6
# Tables one stream of records yields, one per record kind; book snapshots give
# one row per level ("book_level"), connector events list their tickers comma-separated.
TABLE_KINDS = (
    "trade",
    "ticker",
    "book_delta",
    "book_level",
    "lifecycle",
    "event_lifecycle",
    "status",
    "connector_event",
    "spot_level",
    "spot_ticker",
)


def decode(data: bytes) -> list[dict[str, Any]]:
    """Every record in `data`, as dicts (see ssmd._core.decode_records for the keys)."""
    return core.decode_records(data)


def encode(records: Sequence[dict[str, Any]]) -> bytes:
    """The inverse of `decode`."""
    return core.encode_records(list(records))


def connector_event(
    event: str,
    receive_ns: int,
    *,
    conn_id: int = 0,
    sid: int = 0,
    shard: int = 0,
    reason: str = "",
    duration_ns: int = 0,
    expected_seq: int = 0,
    received_seq: int = 0,
    tickers: Iterable[str] = (),
    exchange_ns: int = 0,
) -> dict[str, Any]:
    """A connector event record (schemas/ssmd.capnp ConnectorEvent), as `encode` takes it:
    the connector's own, and the `gap` events the archiver and the replay write for what
    they found missing."""
    return {
        "kind": "connector_event",
        "event": event,
        "receive_ts": receive_ns,
        "exchange_ts": exchange_ns,
        "conn_id": conn_id,
        "sid": sid,
        "shard": shard,
        "reason": reason,
        "duration_ns": duration_ns,
        "expected_seq": expected_seq,
        "received_seq": received_seq,
        "tickers": list(tickers),
    }


def _arrow_type(name: str) -> pyarrow.DataType:
    import pyarrow as pa

    return {
        "int64": pa.int64(),
        "uint64": pa.uint64(),
        "uint32": pa.uint32(),
        "timestamp_ns": pa.timestamp("ns", tz="UTC"),
        "bool": pa.bool_(),
        "utf8": pa.utf8(),
    }[name]


def _table(rows: int, columns: list[core.Column]) -> pyarrow.Table:
    """A pyarrow Table over column buffers built in Rust (wrapped, not copied)."""
    import pyarrow as pa

    arrays = []
    names = []
    for name, type_name, values, offsets, validity, null_count in columns:
        buffers = [pa.py_buffer(validity) if validity is not None else None]
        if offsets is not None:
            buffers.append(pa.py_buffer(offsets))
        buffers.append(pa.py_buffer(values))
        arrays.append(
            pa.Array.from_buffers(_arrow_type(type_name), rows, buffers, null_count=null_count)
        )
        names.append(name)
    return pa.Table.from_arrays(arrays, names=names)


def to_arrow(data: bytes, kind: str) -> pyarrow.Table:
    """The records of `kind` (one of TABLE_KINDS) in `data` as a pyarrow Table.

    The columns are built in Rust and wrapped without a per-row Python loop.
    """
    return _table(*core.records_to_columns(data, kind))


def to_polars(data: bytes, kind: str) -> polars.DataFrame:
    """The records of `kind` in `data` as a Polars DataFrame (zero-copy from Arrow)."""
    return _polars(to_arrow(data, kind))


def archive_to_arrow(
    archive: bytes, kind: str, *, allow_truncated_tail: bool = False
) -> pyarrow.Table:
    """The records of `kind` in a normalized archive (data.capnp.zst) as a pyarrow Table.

    Frames are decompressed one at a time straight into the columns, so the
    decompressed records are never held whole. An incomplete last frame (a
    write cut short) raises ArchiveError naming its offset; with
    `allow_truncated_tail` (a file still being written, such as a spool file)
    the records of the complete frames are returned.
    """
    rows, columns, tail = core.archive_to_columns(archive, kind)
    if tail is not None and not allow_truncated_tail:
        offset, length = tail
        raise ArchiveError(
            f"archive ends inside a zstd frame ({length} bytes at byte {offset}); "
            "pass allow_truncated_tail=True to read the complete frames before it"
        )
    return _table(rows, columns)


def archive_to_polars(
    archive: bytes, kind: str, *, allow_truncated_tail: bool = False
) -> polars.DataFrame:
    """`archive_to_arrow` as a Polars DataFrame."""
    return _polars(archive_to_arrow(archive, kind, allow_truncated_tail=allow_truncated_tail))


def archive_ticker(chunks: Iterable[bytes]) -> str | None:
    """The ticker of a normalized archive's first record, from its first frame only
    (every record of a data file is of one ticker); None when it holds no record.

    `chunks`: the archive's bytes in pieces (a file read in blocks, an object's chunks).
    """
    reader = core.ArchiveReader()
    for chunk in chunks:
        reader.feed(chunk)
        data = reader.take()
        if data:
            start, end = core.record_spans(data)[0]
            return core.record_heads(data[start:end])[0][3]
    return None


def _polars(table: pyarrow.Table) -> polars.DataFrame:
    import polars as pl

    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame
