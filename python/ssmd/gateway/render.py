"""Records to the gateway's JSON messages (docs/gateway.md), rendered once and shared.

Prices are dollars rounded to 6 decimals and sizes are contracts (an int when whole):
records hold both as exact 1e-6 fixed point (`price_e6`, `size_e6`), so the rounding
only drops float noise. Timestamps are Unix milliseconds: the exchange's time when it
sent one, else the connector's receive time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final

import orjson

from ssmd import core

__all__ = [
    "ack",
    "error",
    "orderbook",
    "price",
    "record_ms",
    "size",
    "status",
    "trade",
]

_SCALE: Final = 1_000_000


def price(e6: int | None) -> float | None:
    return None if e6 is None else round(e6 / _SCALE, 6)


def size(e6: int | None) -> int | float | None:
    if e6 is None:
        return None
    whole, frac = divmod(e6, _SCALE)
    return whole if frac == 0 else round(e6 / _SCALE, 6)


def record_ms(rec: dict[str, Any]) -> int:
    """The record's time in Unix ms: exchange time, else receive time."""
    ns = rec.get("exchange_ts") or rec.get("receive_ts") or 0
    return int(ns) // 1_000_000


def _text(obj: dict[str, Any]) -> str:
    return orjson.dumps(obj).decode()


def trade(rec: dict[str, Any]) -> str:
    """A trade record (a dict as core.decode_records gives) as `{"type":"trade",...}`: the
    renderer the stream's trades go through (rust/ssmd-core/src/render.rs); side is the
    taker's, null when the venue sent none."""
    return core.trade_messages(core.encode_records([{**rec, "kind": "trade"}]))[0]


def _levels(levels: Iterable[tuple[int, int]]) -> list[tuple[float, int | float]]:
    out = []
    for p, s in levels:
        whole, frac = divmod(s, _SCALE)
        out.append((round(p / _SCALE, 6), whole if frac == 0 else round(s / _SCALE, 6)))
    return out


def orderbook(
    ticker: str,
    bids: Sequence[tuple[int, int]],
    asks: Sequence[tuple[int, int]],
    valid: bool,
    ts_ms: int,
) -> str:
    """A book view (YES bids and derived YES asks, best first, as (price_e6, size_e6))."""
    return _text(
        {
            "type": "orderbook",
            "ticker": ticker,
            "bids": _levels(bids),
            "asks": _levels(asks),
            "valid": valid,
            "ts": ts_ms,
        }
    )


def status(ticker: str, value: str, ts_ms: int) -> str:
    return _text({"type": "status", "ticker": ticker, "status": value, "ts": ts_ms})


def ack(kind: str, symbols: list[str]) -> str:
    """`subscribed` / `unsubscribed` acknowledgement."""
    return _text({"type": kind, "symbols": symbols})


def error(code: str, message: str) -> str:
    return _text({"type": "error", "code": code, "message": message})
