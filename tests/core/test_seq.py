"""SeqTracker: gaps and duplicates on trade and lifecycle sids."""

from __future__ import annotations

from typing import Any

from ssmd import core


def trade(
    conn: int, sid: int, seq: int, ticker: str = "KXBTCD-26MAR1213-T69499.99"
) -> dict[str, Any]:
    return {
        "kind": "trade",
        "ticker": ticker,
        "trade_id": f"t{conn}-{sid}-{seq}",
        "conn_id": conn,
        "sid": sid,
        "seq": seq,
    }


def test_gaps_and_duplicates_per_connection_and_sid() -> None:
    tracker = core.SeqTracker()
    records = [
        trade(1, 2, 10),
        trade(1, 2, 11),
        trade(1, 2, 14),
        trade(1, 2, 12),
        trade(1, 3, 1),
        trade(1, 3, 2),
    ]
    problems = tracker.observe(core.encode_records(records))
    assert problems == [
        core.GapEvent(1, 2, 12, 14, ["KXBTCD-26MAR1213-T69499.99"]),
        core.DuplicateEvent(1, 2, 12, "KXBTCD-26MAR1213-T69499.99"),
    ]
    # The late frame never pulls the expected seq back: 15 is in order.
    assert tracker.observe(core.encode_records([trade(1, 2, 15)])) == []
    assert len(tracker) == 2


def test_a_new_connection_or_reset_is_not_a_gap() -> None:
    tracker = core.SeqTracker()
    assert tracker.observe(core.encode_records([trade(1, 2, 500), trade(2, 2, 1)])) == []
    tracker.reset(1, 2)
    assert tracker.observe(core.encode_records([trade(1, 2, 3)])) == []
    tracker.forget_connection(1)
    assert len(tracker) == 1


def test_books_tickers_and_unsequenced_records_are_skipped() -> None:
    tracker = core.SeqTracker()
    records = [
        {
            "kind": "book_delta",
            "ticker": "A",
            "conn_id": 1,
            "sid": 5,
            "seq": 1,
            "side": "yes",
            "price_e6": 1,
            "delta_e6": 1,
        },
        {
            "kind": "book_delta",
            "ticker": "A",
            "conn_id": 1,
            "sid": 5,
            "seq": 9,
            "side": "yes",
            "price_e6": 1,
            "delta_e6": 1,
        },
        {"kind": "ticker", "ticker": "A", "conn_id": 1, "sid": 6, "seq": 0},
        {
            "kind": "lifecycle",
            "ticker": "A",
            "event_type": "settled",
            "conn_id": 1,
            "sid": 7,
            "seq": 4,
        },
        {
            "kind": "lifecycle",
            "ticker": "B",
            "event_type": "settled",
            "conn_id": 1,
            "sid": 7,
            "seq": 6,
        },
    ]
    assert tracker.observe(core.encode_records(records)) == [core.GapEvent(1, 7, 5, 6, ["B"])]
