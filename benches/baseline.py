"""The pure-Python baseline: the same work as ssmd._core.normalize_kalshi
(parse, normalize exactly, encode packed Cap'n Proto) with orjson, Decimal and
pycapnp, one frame at a time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import capnp  # type: ignore[import-untyped]

from ssmd.testing.reference_kalshi import normalize

ROOT = Path(__file__).resolve().parent.parent

schema = capnp.load(str(ROOT / "schemas" / "ssmd.capnp"))
UNDEF = -(2**63)
FIELDS = {
    "trade": {
        "ticker": "ticker",
        "trade_id": "tradeId",
        "price_e6": "priceE6",
        "no_price_e6": "noPriceE6",
        "size_e6": "sizeE6",
        "taker_outcome": "takerOutcome",
        "taker_book_side": "takerBookSide",
        "is_block_trade": "isBlockTrade",
    },
    "ticker": {
        "ticker": "ticker",
        "market_id": "marketId",
        "last_price_e6": "lastPriceE6",
        "yes_bid_e6": "yesBidE6",
        "yes_ask_e6": "yesAskE6",
        "yes_bid_size_e6": "yesBidSizeE6",
        "yes_ask_size_e6": "yesAskSizeE6",
        "last_trade_size_e6": "lastTradeSizeE6",
        "volume_e6": "volumeE6",
        "open_interest_e6": "openInterestE6",
        "dollar_volume": "dollarVolume",
        "dollar_open_interest": "dollarOpenInterest",
    },
    "book_delta": {
        "ticker": "ticker",
        "market_id": "marketId",
        "side": "side",
        "price_e6": "priceE6",
        "delta_e6": "deltaE6",
    },
    "lifecycle": {
        "ticker": "ticker",
        "event_type": "eventType",
        "event_type_text": "eventTypeText",
        "close_ts": "closeTs",
        "determination_ts": "determinationTs",
        "settled_ts": "settledTs",
        "result": "result",
        "settlement_value_e6": "settlementValueE6",
    },
}
UNIONS = {"trade": "trade", "ticker": "ticker", "book_delta": "bookDelta", "lifecycle": "lifecycle"}
ENUMS = {"close_date_updated": "closeDateUpdated", "metadata_updated": "metadataUpdated"}


def encode(record: dict[str, Any]) -> bytes:
    message = schema.Record.new_message()
    message.receiveTs = record["receive_ts"]
    message.exchangeTs = record["exchange_ts"]
    message.connId = record["conn_id"]
    message.sid = record["sid"]
    message.seq = record["seq"]
    body = message.init(UNIONS[record["kind"]])
    for key, field in FIELDS[record["kind"]].items():
        value = record.get(key)
        if value is None:
            if key.endswith("_e6"):
                setattr(body, field, UNDEF)
            continue
        if isinstance(value, str) and field in (
            "takerOutcome",
            "takerBookSide",
            "side",
            "eventType",
        ):
            value = ENUMS.get(value, value)
        setattr(body, field, value)
    return bytes(message.to_bytes_packed())


def normalize_batch(frames: list[bytes], receive_ns: list[int], conn_id: int) -> bytes:
    out = bytearray()
    for frame, ts in zip(frames, receive_ns, strict=True):
        record = normalize(frame, ts, conn_id)
        if record is not None:
            out += encode(record)
    return bytes(out)
