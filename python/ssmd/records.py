"""Normalized records as Python values, Arrow tables and Polars frames.

A normalized stream is packed Cap'n Proto `Record` messages back to back
(schemas/ssmd.capnp): one NATS message holds one, an archive's data file holds
many (zstd-compressed). Prices and sizes are exact integers in 1e-6 units
(`*_e6` columns); divide by SCALE_E6 for dollars or contracts. Timestamps are
UTC nanoseconds.

    import ssmd.records
    frame = ssmd.records.to_polars(data, "trade")   # one row per trade
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ssmd import core

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
)


def decode(data: bytes) -> list[dict[str, Any]]:
    """Every record in `data`, as dicts (see ssmd._core.decode_records for the keys)."""
    return core.decode_records(data)


def encode(records: Sequence[dict[str, Any]]) -> bytes:
    """The inverse of `decode`."""
    return core.encode_records(list(records))


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


def to_arrow(data: bytes, kind: str) -> pyarrow.Table:
    """The records of `kind` (one of TABLE_KINDS) in `data` as a pyarrow Table.

    The columns are built in Rust and wrapped without a per-row Python loop.
    """
    import pyarrow as pa

    rows, columns = core.records_to_columns(data, kind)
    arrays = []
    names = []
    for name, type_name, values, offsets, validity, null_count in columns:
        arrow_type = _arrow_type(type_name)
        validity_buffer = pa.py_buffer(validity) if validity is not None else None
        buffers = [validity_buffer]
        if offsets is not None:
            buffers.append(pa.py_buffer(offsets))
        buffers.append(pa.py_buffer(values))
        arrays.append(pa.Array.from_buffers(arrow_type, rows, buffers, null_count=null_count))
        names.append(name)
    return pa.Table.from_arrays(arrays, names=names)


def to_polars(data: bytes, kind: str) -> polars.DataFrame:
    """The records of `kind` in `data` as a Polars DataFrame (zero-copy from Arrow)."""
    import polars as pl

    frame = pl.from_arrow(to_arrow(data, kind))
    assert isinstance(frame, pl.DataFrame)
    return frame
