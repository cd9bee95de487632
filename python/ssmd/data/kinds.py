"""The tables the archive is read as (`ssmd.data.scan`, `ssmd data export --type`).

Each kind is one table of ssmd.records (TABLE_KINDS) and lives in one normalized
record type's files (the `{type}` of the storage key). Prices and sizes are exact
integers in units of 1e-6 (`*_e6`, SCALE_E6); the tables that carry the seed
schema's Float64 `price` and UInt32 `size` (trades, book levels) get them too,
computed as the normalizer does (nearest double; size rounded half away from
zero and clamped to UInt32), appended after the other columns. Trades also say where
each came from (`source`: `live`, or `rest_backfill` for the trades `ssmd data
backfill` fetched from the venue's REST API to fill a gap), last.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING

from ssmd.exceptions import DataError
from ssmd.records import SCALE_E6, TABLE_KINDS
from ssmd.store import keys

if TYPE_CHECKING:
    import pyarrow

__all__ = ["KINDS", "RECORD_TYPE", "closest", "parse_kinds", "with_seed_columns"]

# kind -> the normalized record type whose files hold it
RECORD_TYPE: dict[str, str] = {
    "trade": "trade",
    "ticker": "ticker",
    "book_delta": "orderbook",
    "book_level": "orderbook",
    "lifecycle": "lifecycle",
    "event_lifecycle": "event",
    "status": "status",
    "connector_event": keys.EVENTS_TYPE,
    "spot_level": "orderbook",
    "spot_ticker": "ticker",
}
KINDS: tuple[str, ...] = TABLE_KINDS
assert set(RECORD_TYPE) == set(KINDS), "every table kind has a record type"

# `--type book` is the whole order book: its deltas and its snapshots' levels (a binary
# contract's), or its book messages' levels (a spot pair's).
_GROUPS = {"book": ("book_delta", "book_level", "spot_level")}
_SEED_TABLES = ("trade", "book_level")
_U32_MAX = 2**32 - 1


def closest(name: str, known: list[str] | tuple[str, ...]) -> str:
    """`; closest: a, b` for a misspelt name (case aside), or `` when nothing is close."""
    by_folded: dict[str, str] = {}
    for k in known:
        by_folded.setdefault(k.casefold(), k)
    near = difflib.get_close_matches(name.casefold(), list(by_folded), n=3, cutoff=0.5)
    return f"; closest: {', '.join(by_folded[n] for n in near)}" if near else ""


def parse_kinds(names: list[str] | tuple[str, ...] | str | None) -> list[str]:
    """Kinds from names (or one comma-separated string), `book` expanded; all when None.

    An unknown name raises DataError naming the closest known ones.
    """
    if names is None:
        return list(KINDS)
    if isinstance(names, str):
        names = [n for n in names.split(",")]
    kinds: list[str] = []
    for raw_name in names:
        name = raw_name.strip()
        if not name:
            continue
        expanded = _GROUPS.get(name, (name,))
        for kind in expanded:
            if kind not in RECORD_TYPE:
                known = [*KINDS, *_GROUPS]
                raise DataError(
                    f"unknown data type {name!r}{closest(name, known)} (known: {', '.join(known)})"
                )
            if kind not in kinds:
                kinds.append(kind)
    if not kinds:
        raise DataError(f"no data type given. Fix: use one of {', '.join([*KINDS, *_GROUPS])}")
    return kinds


def with_seed_columns(
    table: pyarrow.Table, kind: str, source: str = keys.LIVE_SOURCE
) -> pyarrow.Table:
    """The table with the seed schema's `price` (Float64) and `size` (UInt32) appended
    for trades and book levels, and for trades `source` (where the file's records come
    from, ssmd.store.keys.source_of); other kinds unchanged.

    Computed with pyarrow, whose division is IEEE division: Polars divides a column by
    a constant through its reciprocal, which is off by one bit for values such as 0.93.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if kind not in _SEED_TABLES:
        return table
    price = table.column("price_e6")
    # Whole and fractional parts apart, as the normalizer does, so that large values
    # keep every bit a double can hold (integer division truncates, as in Rust).
    whole = pc.divide(price, SCALE_E6)
    frac = pc.subtract(price, pc.multiply(whole, SCALE_E6))
    seed_price = pc.add(
        pc.cast(whole, pa.float64()), pc.divide(pc.cast(frac, pa.float64()), float(SCALE_E6))
    )
    size = table.column("size_e6")
    # Clipped before rounding so that sizes near Int64's maximum cannot overflow.
    clipped = pc.min_element_wise(size, _U32_MAX * SCALE_E6)
    rounded = pc.divide(pc.add(clipped, SCALE_E6 // 2), SCALE_E6)
    seed_size = pc.cast(pc.if_else(pc.less_equal(size, 0), 0, rounded), pa.uint32())
    table = table.append_column("price", seed_price).append_column("size", seed_size)
    if kind == "trade":
        origin = pa.repeat(pa.scalar(source, pa.string()), table.num_rows)
        table = table.append_column("source", origin)
    return table
