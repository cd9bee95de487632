"""Book imbalance, a signal module for `ssmd signal run` (docs/signals.md).

book_imbalance: (bid depth - ask depth) / (bid depth + ask depth) over the first five
levels of a valid book, in [-1, 1], emitted when it moves by 0.05 or more.
signed_volume: each trade's size, positive when the taker bought YES.

    ssmd signal run examples/book_imbalance.py --env kalshi-sim --replay 2026-12-02 \
        --speed max --out imbalance.parquet
"""

from __future__ import annotations

from typing import Any

from ssmd.signals.api import Book, Context

LEVELS = 5
STEP = 0.05


def on_book(ctx: Context, book: Book) -> None:
    if not book.valid:
        return
    bid, ask = book.depth("bids", LEVELS), book.depth("asks", LEVELS)
    if bid + ask == 0:
        return
    value = (bid - ask) / (bid + ask)
    last = ctx.state.get(book.ticker)
    if last is None or abs(value - last) >= STEP:
        ctx.state[book.ticker] = value
        ctx.emit("book_imbalance", value)


def on_trade(ctx: Context, trade: dict[str, Any]) -> None:
    size = trade["size_e6"] / 1e6
    ctx.emit("signed_volume", size if trade["taker_outcome"] == "yes" else -size)
