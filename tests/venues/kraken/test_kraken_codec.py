"""Kraken frames through the Rust codec: documented shapes, exact numbers at the pair's
precision, the CRC32 checked on every book message (a mismatch is a gap and a resync),
and bad input kept, counted and survived."""

from __future__ import annotations

import zlib
from decimal import Decimal
from typing import Any

import orjson
import pytest

from ssmd import core
from ssmd.exceptions import CoreError
from ssmd.venues.kraken.venue import KrakenCodec

SYMBOL = "XYZ/USD"  # price precision 4, qty precision 8

# The worked example of the checksum (asks ascending, then bids descending).
SNAPSHOT_BIDS = [("0.1235", "3000.00000000"), ("0.1233", "75.12345678"), ("0.1229", "10.00000000")]
SNAPSHOT_ASKS = [("0.1236", "1200.50000000"), ("0.1238", "250.00000000"), ("0.1240", "0.00010000")]


def token(text: str) -> str:
    return text.replace(".", "").lstrip("0")


def crc(bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> int:
    """Kraken's checksum in plain Python, from the numbers' wire text."""
    text = "".join(token(p) + token(q) for p, q in asks[:10])
    text += "".join(token(p) + token(q) for p, q in bids[:10])
    return zlib.crc32(text.encode()) & 0xFFFFFFFF


def book(
    kind: str,
    bids: list[tuple[str, str]],
    asks: list[tuple[str, str]],
    checksum: int,
    symbol: str = SYMBOL,
) -> bytes:
    def levels(ls: list[tuple[str, str]]) -> str:
        return ",".join(f'{{"price":{p},"qty":{q}}}' for p, q in ls)

    return (
        f'{{"channel":"book","type":"{kind}","data":[{{"symbol":"{symbol}",'
        f'"bids":[{levels(bids)}],"asks":[{levels(asks)}],"checksum":{checksum},'
        f'"timestamp":"2026-05-04T10:00:01.102334Z"}}]}}'
    ).encode()


SNAPSHOT = book("snapshot", SNAPSHOT_BIDS, SNAPSHOT_ASKS, 1377533586)
# Delete bid 0.1235, insert ask 0.1237 x 40.
UPDATE = book("update", [("0.1235", "0.00000000")], [("0.1237", "40.00000000")], 3470963259)


def run(codec: KrakenCodec, frames: list[bytes], conn: int = 1) -> Any:
    return codec.normalize(frames, [1_000 + i for i in range(len(frames))], conn)


def records(batch: Any) -> list[dict[str, Any]]:
    return core.decode_records(batch.data)


def kinds(batch: Any) -> list[str]:
    return [KrakenCodec.frame_kinds[k] for k in batch.kinds]


def test_the_python_checksum_agrees_with_the_documented_values() -> None:
    assert crc(SNAPSHOT_BIDS, SNAPSHOT_ASKS) == 1377533586
    after_asks = sorted([*SNAPSHOT_ASKS, ("0.1237", "40.00000000")])
    assert crc(SNAPSHOT_BIDS[1:], after_asks) == 3470963259


def test_documented_book_messages_become_exact_records() -> None:
    codec = KrakenCodec()
    batch = run(codec, [SNAPSHOT, UPDATE])
    assert batch.problems == []
    assert codec.integrity(batch) == []
    snap, upd = records(batch)
    assert snap["kind"] == "spot_book" and snap["snapshot"] and snap["checksum_ok"]
    assert (snap["price_decimals"], snap["qty_decimals"], snap["depth"]) == (4, 8, 10)
    assert snap["bids"] == [(1235, 300_000_000_000), (1233, 7_512_345_678), (1229, 1_000_000_000)]
    assert upd["asks"] == [(1237, 4_000_000_000)] and upd["checksum"] == 3470963259
    assert upd["exchange_ts"] == 1_777_888_801_102_334_000
    valid, pd, qd, bids, asks = codec.book(SYMBOL)
    assert valid and (pd, qd) == (4, 8)
    assert bids[0] == (1233, 7_512_345_678) and asks[:2] == [
        (1236, 120_050_000_000),
        (1237, 4_000_000_000),
    ]
    assert codec.core.checksum(SYMBOL) == 3470963259


def test_a_checksum_mismatch_is_a_gap_then_the_fresh_snapshot_resyncs() -> None:
    codec = KrakenCodec()
    corrupt = UPDATE.replace(b"3470963259", b"3470963258")
    batch = run(codec, [SNAPSHOT, corrupt, UPDATE])
    assert codec.checksum_mismatches == 1
    assert [p[1] for p in batch.problems] == ["checksum", "no_record"]
    assert codec.integrity(batch) == [
        core.GapEvent(1, core.KrakenCodec.book_stream, 0, 0, [SYMBOL])
    ]
    assert codec.core.gap_reasons(batch) == [
        (SYMBOL, "checksum mismatch: sent 3470963258, computed 3470963259")
    ]
    # The record says the book it describes is not exact; nothing after it is applied.
    assert [r["checksum_ok"] for r in records(batch)] == [True, False]
    assert codec.book(SYMBOL)[0] is False
    again = run(codec, [SNAPSHOT])
    assert codec.integrity(again) == [core.ResyncedEvent(SYMBOL)]
    assert codec.book(SYMBOL)[0] is True


def test_a_missed_update_shows_as_a_mismatch_on_the_next_message() -> None:
    # The venue's next update (delete ask 0.1240) carries the checksum of the book with
    # UPDATE applied; a client that missed UPDATE computes another.
    bids = SNAPSHOT_BIDS[1:]
    asks = [("0.1236", "1200.50000000"), ("0.1237", "40.00000000"), ("0.1238", "250.00000000")]
    following = book("update", [], [("0.1240", "0")], crc(bids, asks))
    complete = KrakenCodec()
    assert complete.integrity(run(complete, [SNAPSHOT, UPDATE, following])) == []
    missed = KrakenCodec()
    batch = run(missed, [SNAPSHOT, following])
    assert missed.integrity(batch) == [core.GapEvent(1, 1, 0, 0, [SYMBOL])]


def test_floats_without_trailing_zeros_read_at_the_listed_precision() -> None:
    codec = KrakenCodec()
    codec.set_precision(SYMBOL, 4, 8)
    stripped = SNAPSHOT.replace(b"3000.00000000", b"3000.0").replace(b"0.1240", b"0.124")
    batch = run(codec, [stripped, UPDATE])
    assert codec.integrity(batch) == [] and codec.checksum_mismatches == 0
    # More digits than the pair's precision cannot be read exactly: a gap, not a guess.
    finer = UPDATE.replace(b"40.00000000", b"40.000000001")
    batch = run(codec, [finer])
    assert [p[1] for p in batch.problems] == ["field"]
    assert codec.integrity(batch) == [core.GapEvent(1, 1, 0, 0, [SYMBOL])]


def test_depth_from_the_ack_cuts_the_book_and_levels_pushed_out_are_dropped() -> None:
    codec = KrakenCodec()
    ack = orjson.dumps(
        {
            "method": "subscribe",
            "result": {"channel": "book", "depth": 10, "snapshot": True, "symbol": "BTC/USD"},
            "success": True,
            "time_in": "2026-05-04T10:00:00.123456Z",
            "time_out": "2026-05-04T10:00:00.123501Z",
            "req_id": 7,
        }
    )
    bids = [(f"{100 - i}.0", "1.00000000") for i in range(10)]
    asks = [(f"{101 + i}.0", "1.00000000") for i in range(10)]
    snap = book("snapshot", bids, asks, crc(bids, asks), "BTC/USD")
    # A better bid: the worst bid leaves the window with no delete sent.
    new_bids = [("100.5", "2.00000000"), *bids[:9]]
    upd = book("update", [("100.5", "2.00000000")], [], crc(new_bids, asks), "BTC/USD")
    batch = run(codec, [ack, snap, upd])
    assert kinds(batch) == ["subscribe", "book", "book"]
    assert codec.integrity(batch) == []
    assert len(codec.book("BTC/USD")[3]) == 10


def test_trade_ticker_instrument_status_and_control_frames() -> None:
    codec = KrakenCodec()
    frames = [
        b'{"channel":"status","type":"update","data":[{"system":"online","api_version":"v2","connection_id":12393906104898154338,"version":"2.0.10"}]}',
        b'{"channel":"instrument","type":"snapshot","data":{"assets":[],"pairs":[{"symbol":"BTC/USD","base":"BTC","quote":"USD","status":"online","price_precision":1,"qty_precision":8,"price_increment":0.1,"qty_increment":0.00000001,"qty_min":0.0001,"cost_min":"0.5"}]}}',
        b'{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"sell","price":45283.5,"qty":0.01000000,"ord_type":"market","trade_id":4665906,"timestamp":"2026-05-04T10:00:01.102334Z"}]}',
        b'{"channel":"ticker","type":"snapshot","data":[{"symbol":"BTC/USD","bid":45283.5,"bid_qty":0.10000000,"ask":45283.6,"ask_qty":1.5,"last":45283.6,"volume":1234.56789012,"vwap":45100.123456,"low":44000.0,"high":46000.0,"change":-120.5,"change_pct":-0.27,"timestamp":"2026-05-04T10:00:01.102334Z"}]}',
        b'{"channel":"heartbeat"}',
        b'{"method":"pong","req_id":101,"time_in":"2026-05-04T10:00:00.123456Z","time_out":"2026-05-04T10:00:00.123501Z"}',
    ]
    batch = run(codec, frames)
    assert batch.problems == []
    assert kinds(batch) == ["status", "instrument", "trade", "ticker", "heartbeat", "pong"]
    assert codec.core.precision("BTC/USD") == (1, 8)
    status, instrument, trade, ticker = records(batch)
    assert status["kind"] == "venue_status" and status["connection_id"] == 12393906104898154338
    assert (instrument["price_decimals"], instrument["qty_min"]) == (1, 10_000)
    assert trade["kind"] == "trade" and trade["spot"] and trade["side"] == "sell"
    assert (trade["price_units"], trade["size_units"], trade["trade_id"]) == (
        452835,
        1_000_000,
        "4665906",
    )
    assert (trade["price_e6"], trade["size_e6"]) == (45_283_500_000, 10_000)
    assert Decimal(ticker["vwap"]) / 10 == Decimal("45100.1")  # finer than the pair: nearest
    # The records' routing: type and symbol per record.
    assert [(r[1], r[2]) for r in batch.records] == [
        ("status", ""),
        ("status", "BTC/USD"),
        ("trade", "BTC/USD"),
        ("ticker", "BTC/USD"),
    ]


@pytest.mark.parametrize(
    ("frame", "kind", "problem"),
    [
        (b"{not json", "malformed", "malformed"),
        (b"", "malformed", "malformed"),
        (b'{"channel":"ohlc","type":"update","data":[]}', "unknown", "unknown_type"),
        (b'{"something":"else"}', "unknown", "unknown_type"),
        (b'{"method":"frobnicate","req_id":1}', "unknown", "unknown_type"),
        (
            b'{"error":"Currency pair not supported XBT/USD","method":"subscribe","req_id":3,'
            b'"success":false,"symbol":"XBT/USD"}',
            "error",
            "venue_error",
        ),
        (b'{"channel":"book","type":"update","data":{"symbol":"XYZ/USD"}}', "book", "no_record"),
        (b'{"channel":"trade","type":"update","data":[{"side":"buy"}]}', "trade", "no_record"),
        (b'{"channel":"ticker","type":"update","data":"x"}', "ticker", "no_record"),
    ],
)
def test_bad_frames_are_counted_and_the_codec_carries_on(
    frame: bytes, kind: str, problem: str
) -> None:
    codec = KrakenCodec()
    batch = run(codec, [SNAPSHOT, frame, UPDATE])
    assert kinds(batch)[1] == kind
    assert [p[1] for p in batch.problems if p[0] == 1] == [problem]
    if kind == "book":
        # A book message that cannot be read may have changed any book of the connection.
        assert codec.integrity(batch) == [core.GapEvent(1, 1, 0, 0, [SYMBOL])]
    else:
        # The book around the bad frame is intact.
        assert codec.integrity(batch) == [] and codec.book(SYMBOL)[0] is True


def test_checkpoints_say_which_books_are_exact_and_a_lost_connection_invalidates() -> None:
    codec = KrakenCodec()
    run(codec, [SNAPSHOT, UPDATE])
    ((symbol, data),) = codec.checkpoint(5, False)
    (view,) = core.decode_records(data)
    assert symbol == SYMBOL and view["kind"] == "book" and view["spot"] and view["valid"]
    assert view["bids"][0] == (123_300, 75_123_457)
    assert codec.checkpoint(6, False) == []
    codec.forget(1)
    ((_, data),) = codec.checkpoint(7, False)
    assert core.decode_records(data)[0]["valid"] is False
    # A BookSet fed the records rebuilds the same book from the stream.
    books = core.BookSet()
    fresh = KrakenCodec()
    batch = run(fresh, [SNAPSHOT, UPDATE])
    books.apply(batch.data)
    got = books.view(SYMBOL)
    assert got is not None and got.valid
    assert got.asks[:2] == [(123_600, 1_200_500_000), (123_700, 40_000_000)]


def test_frames_and_receive_times_must_pair_up() -> None:
    with pytest.raises(CoreError, match="differ in length"):
        KrakenCodec().normalize([SNAPSHOT], [], 1)
