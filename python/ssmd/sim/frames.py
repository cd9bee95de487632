"""Rendering logical events to Kalshi WebSocket frames in wire era A, B or C.

Era A: integer cents and integer counts. Era B: cents plus `*_dollars` strings and `*_fp`
counts. Era C (default): dollar strings and fixed-point counts only, with `ts_ms`,
`taker_outcome_side`/`taker_book_side` and `is_block_trade`.

A `Msg` renders its body once per (era, use_yes_price) and every subscription wraps it
in its own envelope (sid, seq), so fan-out costs one string join per frame.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from ssmd.sim.book import ONE, cents, price_str, size_str

__all__ = ["ERAS", "Msg", "envelope", "error_frame", "rfc3339"]

ERAS = ("A", "B", "C")
Level = tuple[int, int]


def rfc3339(ts: float) -> str:
    whole = int(ts)
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{int((ts - whole) * 1e6):06d}Z"
    )


def envelope(typ: str, sid: int, seq: int | None, body: bytes) -> bytes:
    if seq is None:
        return b'{"type":"%s","sid":%d,"msg":%s}' % (typ.encode(), sid, body)
    return b'{"type":"%s","sid":%d,"seq":%d,"msg":%s}' % (typ.encode(), sid, seq, body)


def error_frame(cmd_id: int | None, code: int, text: str, **extra: Any) -> bytes:
    msg: dict[str, Any] = {"code": code, "msg": text, **extra}
    if cmd_id:
        return orjson.dumps({"id": cmd_id, "type": "error", "msg": msg})
    return orjson.dumps({"type": "error", "msg": msg})


def _levels(levels: list[Level], flip: bool) -> list[Level]:
    if not flip:
        return levels
    return sorted((ONE - p, s) for p, s in levels)


class Msg:
    """One logical server message: `channel` routes it, `ticker` filters it (None = global)."""

    __slots__ = ("_cache", "channel", "data", "sequenced", "ticker", "ts", "type")

    def __init__(
        self, channel: str, typ: str, ticker: str | None, ts: float, data: dict[str, Any]
    ) -> None:
        self.channel = channel
        self.type = typ
        self.ticker = ticker
        self.ts = ts
        self.data = data
        self.sequenced = typ != "ticker"
        self._cache: dict[tuple[str, bool], bytes] = {}

    def body(self, era: str, use_yes_price: bool = False) -> bytes:
        flip = use_yes_price and self.channel == "orderbook_delta"
        key = (era, flip)
        b = self._cache.get(key)
        if b is None:
            b = orjson.dumps(_RENDER[self.type](self, era, flip))
            self._cache[key] = b
        return b

    def frame(self, era: str, sid: int, seq: int | None, use_yes_price: bool = False) -> bytes:
        return envelope(
            self.type, sid, seq if self.sequenced else None, self.body(era, use_yes_price)
        )


def _snapshot(m: Msg, era: str, flip: bool) -> dict[str, Any]:
    d = m.data
    out: dict[str, Any] = {"market_ticker": m.ticker, "market_id": d["market_id"]}
    for side in ("yes", "no"):
        lv = _levels(d[side], flip and side == "no")
        if not lv:
            continue
        if era in ("A", "B"):
            out[side] = [[cents(p), s // 100] for p, s in lv]
        if era == "B":
            out[f"{side}_dollars"] = [[price_str(p), s // 100] for p, s in lv]
        if era in ("B", "C"):
            out[f"{side}_dollars_fp"] = [[price_str(p), size_str(s)] for p, s in lv]
    return out


def _delta(m: Msg, era: str, flip: bool) -> dict[str, Any]:
    d = m.data
    p = d["price"]
    if flip and d["side"] == "no":
        p = ONE - p
    out: dict[str, Any] = {"market_ticker": m.ticker, "market_id": d["market_id"]}
    if era in ("A", "B"):
        out["price"] = cents(p)
    if era in ("B", "C"):
        out["price_dollars"] = price_str(p)
    if era in ("A", "B"):
        out["delta"] = int(d["delta"] / 100)
    if era in ("B", "C"):
        out["delta_fp"] = size_str(d["delta"])
    out["side"] = d["side"]
    out["ts"] = rfc3339(m.ts)
    if era == "C":
        out["ts_ms"] = int(m.ts * 1000)
    return out


def _ticker(m: Msg, era: str, flip: bool) -> dict[str, Any]:
    d = m.data
    bid, ask, last = d["bid"], d["ask"], d["last"]
    out: dict[str, Any] = {"market_ticker": m.ticker, "market_id": d["market_id"]}
    if era in ("A", "B"):
        out["price"] = cents(last) if last is not None else 0
        out["yes_bid"] = cents(bid) if bid is not None else 0
        out["yes_ask"] = cents(ask) if ask is not None else 100
    if era in ("B", "C"):
        out["price_dollars"] = price_str(last) if last is not None else ""
        out["yes_bid_dollars"] = price_str(bid) if bid is not None else "0.0000"
        out["yes_ask_dollars"] = price_str(ask) if ask is not None else "1.0000"
        out["yes_bid_size_fp"] = size_str(d["bid_size"])
        out["yes_ask_size_fp"] = size_str(d["ask_size"])
        out["last_trade_size_fp"] = size_str(d["last_size"])
    if era in ("A", "B"):
        out["volume"] = d["volume"] // 100
        out["open_interest"] = d["oi"] // 100
    if era in ("B", "C"):
        out["volume_fp"] = size_str(d["volume"])
        out["open_interest_fp"] = size_str(d["oi"])
    out["dollar_volume"] = d["dollar_volume"]
    out["dollar_open_interest"] = d["dollar_oi"]
    out["ts"] = int(m.ts)
    if era == "C":
        out["ts_ms"] = int(m.ts * 1000)
        out["time"] = rfc3339(m.ts)
    else:
        out["Clock"] = d["clock"]
    return out


def _trade(m: Msg, era: str, flip: bool) -> dict[str, Any]:
    d = m.data
    yp = d["yes_price"]
    out: dict[str, Any] = {"trade_id": d["trade_id"], "market_ticker": m.ticker}
    if era in ("A", "B"):
        out["yes_price"] = cents(yp)
        out["no_price"] = cents(ONE - yp)
    if era in ("B", "C"):
        out["yes_price_dollars"] = price_str(yp)
        out["no_price_dollars"] = price_str(ONE - yp)
    if era in ("A", "B"):
        out["count"] = d["count"] // 100
    if era in ("B", "C"):
        out["count_fp"] = size_str(d["count"])
    out["taker_side"] = d["taker"]
    if era == "C":
        out["taker_outcome_side"] = d["taker"]
        out["taker_book_side"] = "bid" if d["taker"] == "yes" else "ask"
        out["is_block_trade"] = False
    out["ts"] = int(m.ts)
    if era == "C":
        out["ts_ms"] = int(m.ts * 1000)
    return out


def _lifecycle(m: Msg, era: str, flip: bool) -> dict[str, Any]:
    out = dict(m.data)
    sv = out.pop("settlement", None)
    if sv is not None:
        out["settlement_value"] = sv // 100 if era == "A" else price_str(sv)
    return out


def _event_lifecycle(m: Msg, era: str, flip: bool) -> dict[str, Any]:
    out = dict(m.data)
    if era == "A":
        out["sub_title"] = out.pop("subtitle")
    return out


def _opaque(m: Msg, era: str, flip: bool) -> dict[str, Any]:
    return dict(m.data)


_RENDER = {
    "orderbook_snapshot": _snapshot,
    "orderbook_delta": _delta,
    "ticker": _ticker,
    "trade": _trade,
    "market_lifecycle_v2": _lifecycle,
    "event_lifecycle": _event_lifecycle,
}


def register_opaque(typ: str) -> None:
    """Render messages of type `typ` as their data dict (used for unknown-type faults)."""
    _RENDER.setdefault(typ, _opaque)
