"""A plain-Python Kalshi normalizer: the reference the Rust core is checked
against, and the baseline its benchmark is measured against.

It handles well-formed frames of every era (no tolerance for bad input: that
is the Rust core's job) and returns dicts in the shape of
ssmd._core.decode_records.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

E6 = Decimal(1_000_000)


def _e6(value: Any, cents: bool = False) -> int | None:
    if value is None or value == "":
        return None
    number = Decimal(str(value))
    if cents:
        number /= 100
    return int(number * E6)


def _pick(msg: dict[str, Any], exact: str, legacy: str) -> int | None:
    if msg.get(exact) is not None:
        return _e6(msg[exact])
    if msg.get(legacy) is not None:
        return _e6(msg[legacy], cents=legacy in _CENT_FIELDS)
    return None


_CENT_FIELDS = {"yes_price", "no_price", "price", "yes_bid", "yes_ask"}


def _ns(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, str):
        head, _, frac = value.rstrip("Z").partition(".")
        seconds = int(datetime.fromisoformat(head + "+00:00").timestamp())
        return seconds * 1_000_000_000 + int((frac + "000000000")[:9] or 0)
    number = int(value)
    for limit, factor in ((10**11, 10**9), (10**14, 10**6), (10**17, 10**3)):
        if number < limit:
            return number * factor
    return number


def _exchange_ts(msg: dict[str, Any]) -> int:
    for key in ("time", "ts"):
        if isinstance(msg.get(key), str):
            return _ns(msg[key])
    if msg.get("ts_ms") is not None:
        return int(msg["ts_ms"]) * 1_000_000
    return _ns(msg.get("ts"))


def _levels(msg: dict[str, Any], side: str) -> list[tuple[int | None, int | None]]:
    if f"{side}_dollars_fp" in msg:
        return [(_e6(p), _e6(s)) for p, s in msg[f"{side}_dollars_fp"]]
    if f"{side}_dollars" in msg:
        return [(_e6(p), _e6(s)) for p, s in msg[f"{side}_dollars"]]
    return [(_e6(p, cents=True), _e6(s)) for p, s in msg.get(side, [])]


def _outcome(value: Any) -> str | None:
    return {"yes": "yes", "bid": "yes", "no": "no", "ask": "no"}.get(value)


_LIFECYCLE = {
    "created",
    "activated",
    "deactivated",
    "close_date_updated",
    "determined",
    "settled",
    "metadata_updated",
}


def normalize(frame: bytes, receive_ts: int, conn_id: int) -> dict[str, Any] | None:
    """The normalized record of a data frame, or None for other frames."""
    envelope = orjson.loads(frame)
    kind = envelope.get("type")
    msg = envelope.get("msg")
    common = {
        "receive_ts": receive_ts,
        "conn_id": conn_id,
        "sid": envelope.get("sid") or 0,
        "seq": envelope.get("seq") or 0,
    }
    if kind == "trade":
        taker = msg.get("taker_outcome_side") or msg.get("taker_side")
        body = {
            "kind": "trade",
            "type": "trade",
            "ticker": msg["market_ticker"],
            "trade_id": msg.get("trade_id"),
            "price_e6": _pick(msg, "yes_price_dollars", "yes_price"),
            "no_price_e6": _pick(msg, "no_price_dollars", "no_price"),
            "size_e6": _pick(msg, "count_fp", "count"),
            "taker_outcome": _outcome(taker),
            "taker_book_side": _outcome(msg.get("taker_book_side")),
            "is_block_trade": bool(msg.get("is_block_trade", False)),
        }
    elif kind == "ticker":
        body = {
            "kind": "ticker",
            "type": "ticker",
            "ticker": msg["market_ticker"],
            "market_id": msg.get("market_id"),
            "last_price_e6": _pick(msg, "price_dollars", "price"),
            "yes_bid_e6": _pick(msg, "yes_bid_dollars", "yes_bid"),
            "yes_ask_e6": _pick(msg, "yes_ask_dollars", "yes_ask"),
            "yes_bid_size_e6": _e6(msg.get("yes_bid_size_fp")),
            "yes_ask_size_e6": _e6(msg.get("yes_ask_size_fp")),
            "last_trade_size_e6": _e6(msg.get("last_trade_size_fp")),
            "volume_e6": _pick(msg, "volume_fp", "volume"),
            "open_interest_e6": _pick(msg, "open_interest_fp", "open_interest"),
            "dollar_volume": msg.get("dollar_volume"),
            "dollar_open_interest": msg.get("dollar_open_interest"),
        }
    elif kind == "orderbook_snapshot":
        body = {
            "kind": "book_snapshot",
            "type": "orderbook",
            "ticker": msg["market_ticker"],
            "market_id": msg.get("market_id"),
            "yes": _levels(msg, "yes"),
            "no": _levels(msg, "no"),
            "use_yes_price": False,
        }
    elif kind == "orderbook_delta":
        body = {
            "kind": "book_delta",
            "type": "orderbook",
            "ticker": msg["market_ticker"],
            "market_id": msg.get("market_id"),
            "side": _outcome(msg.get("side")),
            "price_e6": _pick(msg, "price_dollars", "price"),
            "delta_e6": _pick(msg, "delta_fp", "delta"),
            "client_order_id": msg.get("client_order_id"),
        }
    elif kind == "market_lifecycle_v2":
        meta = msg.get("additional_metadata") or {}
        value = msg.get("settlement_value")
        event_type = msg.get("event_type")
        body = {
            "kind": "lifecycle",
            "type": "lifecycle",
            "ticker": msg["market_ticker"],
            "event_type": event_type if event_type in _LIFECYCLE else "other",
            "event_type_text": event_type,
            "open_ts": _ns(msg.get("open_ts")),
            "close_ts": _ns(msg.get("close_ts")),
            "determination_ts": _ns(msg.get("determination_ts")),
            "settled_ts": _ns(msg.get("settled_ts")),
            "result": msg.get("result") or meta.get("result"),
            "settlement_value_e6": _e6(value, cents=isinstance(value, int)),
            "is_deactivated": bool(msg.get("is_deactivated", False)),
            "event_ticker": meta.get("event_ticker"),
            "title": meta.get("title") or meta.get("name"),
            "metadata_json": orjson.dumps(meta).decode() if "additional_metadata" in msg else None,
        }
    elif kind == "event_lifecycle":
        body = {
            "kind": "event_lifecycle",
            "type": "lifecycle",
            "ticker": msg["event_ticker"],
            "event_ticker": msg["event_ticker"],
            "title": msg.get("title"),
            "subtitle": msg.get("subtitle") or msg.get("sub_title"),
            "collateral_return_type": msg.get("collateral_return_type") or None,
            "series_ticker": msg.get("series_ticker"),
            "strike_date": _ns(msg.get("strike_date")),
            "strike_period": msg.get("strike_period"),
        }
    else:
        return None
    return {**common, "exchange_ts": _exchange_ts(msg), **body}
