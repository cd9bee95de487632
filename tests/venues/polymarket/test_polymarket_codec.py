"""Polymarket frames through the Rust codec: documented shapes, exact numbers, loss
suspicions, and bad input kept, counted and survived."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from ssmd import core
from ssmd.venues.polymarket.venue import PolymarketCodec

TOKEN = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
OTHER = "52114319501245915516055106046884209969926127482827954674443846427813813222426"
MARKET = "0x5f65177b394277fd294cd75650044e32ba009a95022d88a0c1d565897d72f8f1"


def book(bids: list[tuple[str, str]], asks: list[tuple[str, str]], token: str = TOKEN) -> bytes:
    return orjson.dumps(
        {
            "event_type": "book",
            "market": MARKET,
            "asset_id": token,
            "timestamp": "1790000000000",
            "hash": "0" * 40,
            "tick_size": "0.01",
            "last_trade_price": "",
            "bids": [{"price": p, "size": s} for p, s in bids],
            "asks": [{"price": p, "size": s} for p, s in asks],
        }
    )


def change(price: str, size: str, side: str, best_bid: str, best_ask: str) -> bytes:
    return orjson.dumps(
        {
            "event_type": "price_change",
            "market": MARKET,
            "timestamp": "1790000000123",
            "price_changes": [
                {
                    "asset_id": TOKEN,
                    "price": price,
                    "size": size,
                    "side": side,
                    "hash": "ab" * 20,
                    "best_bid": best_bid,
                    "best_ask": best_ask,
                }
            ],
        }
    )


def run(codec: PolymarketCodec, frames: list[bytes], conn: int = 1) -> Any:
    return codec.normalize(frames, [1_000 + i for i in range(len(frames))], conn)


def test_documented_messages_become_exact_records() -> None:
    codec = PolymarketCodec("off")
    trade = orjson.dumps(
        {
            "event_type": "last_trade_price",
            "asset_id": TOKEN,
            "market": MARKET,
            "price": "0.456",
            "size": "219.217767",
            "side": "BUY",
            "fee_rate_bps": "0",
            "timestamp": "1790000000200",
            "transaction_hash": "0xabc",
        }
    )
    batch = run(
        codec,
        [
            b"["
            + book([("0.40", "500"), (".42", "120.5")], [("0.47", "75"), ("0.45", "33.25")])
            + b"]",
            change("0.44", "60", "BUY", "0.44", "0.45"),
            trade,
        ],
    )
    assert batch.problems == []
    records = core.decode_records(batch.data)
    kinds = [r["kind"] for r in records]
    assert kinds == ["book_snapshot", "book_delta", "trade"], records
    snap, delta, tr = records
    assert snap["ticker"] == TOKEN and snap["market_id"] == MARKET
    assert snap["exchange_ts"] == 1_790_000_000_000_000_000
    assert snap["yes"] == [(400_000, 500_000_000), (420_000, 120_500_000)]
    assert snap["no"] == [(470_000, 75_000_000), (450_000, 33_250_000)]
    assert snap["use_yes_price"] is True
    assert delta["price_e6"] == 440_000 and delta["delta_e6"] == 60_000_000
    assert tr["price_e6"] == 456_000 and tr["size_e6"] == 219_217_767
    assert [codec.frame_kinds[k] for k in batch.kinds] == [
        "book",
        "price_change",
        "last_trade_price",
    ]
    # The book the codec keeps for the token, best first on its own scale.
    assert codec.core.book(1, TOKEN) == (
        True,
        [(440_000, 60_000_000), (420_000, 120_500_000), (400_000, 500_000_000)],
        [(450_000, 33_250_000), (470_000, 75_000_000)],
    )


def test_a_missed_update_is_a_gap_and_the_next_book_resyncs() -> None:
    codec = PolymarketCodec("off")
    # The venue says 0.41 is the best bid: a change we never got put it there.
    batch = run(
        codec, [book([("0.40", "5")], [("0.60", "5")]), change("0.39", "1", "BUY", "0.41", "0.6")]
    )
    assert codec.integrity(batch) == [core.GapEvent(1, 1, 0, 0, [TOKEN])]
    assert codec.core.book(1, TOKEN)[0] is False  # type: ignore[index]
    fresh = run(codec, [book([("0.41", "3"), ("0.40", "5")], [("0.60", "5")])])
    assert codec.integrity(fresh) == [core.ResyncedEvent(TOKEN)]
    # A change for a token whose book never came is a gap too.
    other = run(codec, [change("0.5", "1", "BUY", "0.5", "1")], conn=2)
    assert codec.integrity(other) == [core.GapEvent(2, 1, 0, 0, [TOKEN])]
    assert other.records == []


def test_hash_mismatch_asks_for_a_fresh_book_in_strict_mode() -> None:
    from ssmd.sim.polymarket.book import book_hash

    body = orjson.loads(book([("0.45", "120"), ("0.47", "30.5")], [("0.52", "80"), ("0.50", "10")]))
    summary = {
        "market": MARKET,
        "asset_id": TOKEN,
        "timestamp": body["timestamp"],
        "hash": "",
        "bids": body["bids"],
        "asks": body["asks"],
        "min_order_size": "5",
        "tick_size": "0.01",
        "neg_risk": False,
        "last_trade_price": "",
    }
    good = dict(body, hash=book_hash(summary))
    bad = dict(body, hash=book_hash(dict(summary, min_order_size="6")))
    codec = PolymarketCodec("strict")
    codec.set_token(TOKEN, "5", False)
    ok = run(codec, [orjson.dumps(good)])
    assert ok.hashes == (1, 0, 0) and len(ok.records) == 1
    wrong = run(codec, [orjson.dumps(bad)])
    assert wrong.hashes == (0, 1, 0)
    assert wrong.records == []
    assert wrong.resyncs == [(0, TOKEN, "hash_mismatch")]
    assert codec.integrity(wrong) == [core.GapEvent(1, 1, 0, 0, [TOKEN])]
    assert codec.integrity(run(codec, [orjson.dumps(good)])) == [core.ResyncedEvent(TOKEN)]


@pytest.mark.parametrize(
    ("frame", "kind", "problem"),
    [
        (b'{"event_type":"price_change","market":"0x', "malformed", "malformed"),
        (b"not json at all", "malformed", "malformed"),
        (b'{"event_type":"brand_new_event","market":"0x1"}', "unknown", "unknown_type"),
        (b"INVALID OPERATION", "control", None),
        (b"NO NEW ASSETS", "control", None),
        (b"PONG", "pong", None),
        (b"[]", "empty", None),
        (
            b'{"event_type":"last_trade_price","market":"0x1","price":"0.5","size":"1","side":"BUY","timestamp":"1"}',
            "last_trade_price",
            "no_record",
        ),
    ],
)
def test_bad_and_control_frames_are_kept_counted_and_survived(
    frame: bytes, kind: str, problem: str | None
) -> None:
    codec = PolymarketCodec()
    batch = run(codec, [frame, book([("0.4", "1")], [])])
    assert [codec.frame_kinds[k] for k in batch.kinds] == [kind, "book"]
    problems = {p for f, p, _ in batch.problems if f == 0}
    assert problems == ({problem} if problem else set()) | (
        {"field"} if problem == "no_record" else set()
    ), batch.problems
    # The next frame is normalized as usual.
    assert [r[1] for r in batch.records] == ["orderbook"]
    if kind in ("control", "pong"):
        assert batch.control == [(0, frame.decode())]
