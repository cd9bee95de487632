"""BookSet.apply_deliveries, the gateway's fan-in: a consumer's batch applied in one call.

Books end as BookSet.apply leaves them, trades come back rendered, the records the
gateway handles itself come back as dicts in stream order, and what must be skipped
(redeliveries, types not asked for, a message that does not decode) is skipped and
counted without hiding the rest. A missing delivery stops the batch where it is.
"""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from ssmd import _core, core

P = "prod.kalshi"
TYPES = ["orderbook", "book", "trade", "status", "lifecycle", "events"]
SCALE = 1_000_000


def enc(*records: dict[str, Any]) -> bytes:
    return _core.encode_records(list(records))


def snapshot(ticker: str, seq: int, conn_id: int = 1) -> dict[str, Any]:
    return {
        "kind": "book_snapshot",
        "ticker": ticker,
        "yes": [(40 * SCALE // 100, 10 * SCALE)],
        "no": [(55 * SCALE // 100, 5 * SCALE)],
        "conn_id": conn_id,
        "sid": 1,
        "seq": seq,
        "receive_ts": 7_000_000_000 + seq,
    }


def delta(ticker: str, seq: int, change: int) -> dict[str, Any]:
    return {
        "kind": "book_delta",
        "ticker": ticker,
        "side": "yes",
        "price_e6": 40 * SCALE // 100,
        "delta_e6": change,
        "conn_id": 1,
        "sid": 1,
        "seq": seq,
        "exchange_ts": 9_000_000_000 + seq * 1_000_000,
    }


def trade(ticker: str, price_e6: int, size_e6: int, outcome: str | None) -> dict[str, Any]:
    return {
        "kind": "trade",
        "ticker": ticker,
        "price_e6": price_e6,
        "size_e6": size_e6,
        "taker_outcome": outcome,
        "receive_ts": 5_000_000_123,
    }


def handmade(*msgs: tuple[str, bytes]) -> core.Deliveries:
    """Deliveries at stream sequences 1, 2, ... of (subject type and ticker, payload)."""
    return core.Deliveries(
        [(f"{P}.{subject}", i + 1, 1_000 + i, None, data) for i, (subject, data) in enumerate(msgs)]
    )


def test_books_trades_and_records_come_back_in_stream_order() -> None:
    books = _core.BookSet()
    status = {"kind": "status", "ticker": "A", "status": "closed", "receive_ts": 3}
    event = {"kind": "connector_event", "event": "heartbeat", "conn_id": 9, "receive_ts": 4}
    got = handmade(
        ("orderbook.A", enc(snapshot("A", 1))),
        ("trade.A", enc(trade("A", 450_000, 10 * SCALE, "yes"))),
        ("orderbook.A", enc(delta("A", 2, -4 * SCALE))),
        ("status.A", enc(status)),
        ("events.heartbeat", enc(event)),
        ("trade.B", enc(trade("B", 1_000_000, 2_500_000, None))),
    )
    batch = books.apply_deliveries(got, 0, 0, P, TYPES)
    reference = _core.BookSet()
    reference.apply(enc(snapshot("A", 1), delta("A", 2, -4 * SCALE)))
    assert books.view("A") == reference.view("A")
    assert (batch.received, batch.last_seq, batch.duplicates, batch.ignored) == (6, 6, 0, 0)
    assert batch.books == [("A", 9002)]  # the latest change's exchange time, in ms
    assert [t.ticker for t in batch.trades] == ["A", "B"]
    assert [orjson.loads(t.text) for t in batch.trades] == [
        {"type": "trade", "ticker": "A", "price": 0.45, "size": 10, "side": "buy", "ts": 5000},
        {"type": "trade", "ticker": "B", "price": 1.0, "size": 2.5, "side": None, "ts": 5000},
    ]
    first = batch.trades[0]
    assert (first.ms, first.price_e6, first.receive_ns) == (5000, 450_000, 5_000_000_123)
    assert [r["kind"] for r in batch.records] == ["status", "connector_event"]
    assert batch.records[0]["status"] == "closed"
    assert sorted(batch.counts) == [("events", 1), ("orderbook", 2), ("status", 1), ("trade", 2)]
    assert batch.last_receive_ns == 7_000_000_001


def test_a_symbol_prefix_names_the_trade_messages_not_the_books() -> None:
    """A further venue's feed: clients see `venue:ticker` in its trade messages, while the
    books, the trades' tickers and the records keep the venue's own tickers."""
    books = _core.BookSet()
    got = handmade(
        ("orderbook.A", enc(snapshot("A", 1))),
        ("trade.A", enc(trade("A", 450_000, 10 * SCALE, "yes"))),
    )
    batch = books.apply_deliveries(got, 0, 0, P, TYPES, "kraken:")
    assert [ticker for ticker, _ in batch.books] == ["A"]
    assert books.view("A") is not None and books.view("kraken:A") is None
    (only,) = batch.trades
    assert only.ticker == "A"
    assert orjson.loads(only.text)["ticker"] == "kraken:A"
    plain = _core.BookSet().apply_deliveries(got, 0, 0, P, TYPES)
    assert orjson.loads(plain.trades[0].text) == {**orjson.loads(only.text), "ticker": "A"}


def test_redeliveries_other_types_and_bad_payloads_are_skipped_and_counted() -> None:
    books = _core.BookSet()
    got = handmade(
        ("orderbook.A", enc(snapshot("A", 1))),  # seq 1: applied before, skipped now
        ("raw.orderbook_delta", b'{"type":"orderbook_delta"}'),  # not asked for
        ("ticker.A", b"\x00\x01 not a record"),  # not asked for, so never read
        ("orderbook.B", b"\x00\x00\x00\x07 broken"),  # asked for, does not decode
        ("orderbook.C", enc(snapshot("C", 1, conn_id=2))),
    )
    batch = books.apply_deliveries(got, 1, 0, P, TYPES)
    assert (batch.duplicates, batch.ignored, batch.undecodable) == (1, 2, 1)
    assert batch.last_seq == 5 and batch.received == 5
    assert books.view("A") is None and books.view("B") is None
    view = books.view("C")
    assert view is not None and view.valid
    assert batch.books == [("C", 7000)]


def test_a_disconnect_invalidates_the_books_before_it_not_those_after() -> None:
    books = _core.BookSet()
    gone = {"kind": "connector_event", "event": "disconnected", "conn_id": 1, "receive_ts": 8}
    got = handmade(
        ("orderbook.A", enc(snapshot("A", 1, conn_id=1))),
        ("events.disconnected", enc(gone)),
        ("orderbook.B", enc(snapshot("B", 1, conn_id=2))),
    )
    batch = books.apply_deliveries(got, 0, 0, P, TYPES)
    a, b = books.view("A"), books.view("B")
    assert a is not None and not a.valid
    assert b is not None and b.valid
    assert {t for t, _ in batch.books} == {"A", "B"}
    assert batch.records[0]["event"] == "disconnected"


def test_a_gap_names_the_books_it_invalidated() -> None:
    books = _core.BookSet()
    got = handmade(
        ("orderbook.A", enc(snapshot("A", 1))),
        ("orderbook.B", enc(snapshot("B", 2))),
        ("orderbook.A", enc(delta("A", 5, SCALE))),  # seqs 3 and 4 never came
    )
    batch = books.apply_deliveries(got, 0, 0, P, TYPES)
    assert dict(batch.book_events) == {"gap": 1}
    assert {t for t, _ in batch.books} == {"A", "B"}
    assert not any(v is not None and v.valid for v in (books.view("A"), books.view("B")))


def _wire_deliveries(consumer_seqs: list[int]) -> core.Deliveries:
    """Deliveries as a pull consumer's inbox receives them, with these consumer seqs."""
    protocol = core.NatsProtocol("_INBOX.r.", "_INBOX.d")
    data = b""
    for i, cseq in enumerate(consumer_seqs):
        payload = enc(trade("A", 500_000 + i, SCALE, "no"))
        reply = f"$JS.ACK.S.c.1.{i + 1}.{cseq}.{1_000 + i}.{9 - i}"
        data += b"MSG %s.trade.A 2 %s %d\r\n%s\r\n" % (
            P.encode(),
            reply.encode(),
            len(payload),
            payload,
        )
    got = protocol.receive(data)
    assert got.delivered == len(consumer_seqs)
    return protocol.take_deliveries(100)


def test_a_missing_delivery_stops_the_batch_where_it_is() -> None:
    books = _core.BookSet()
    batch = books.apply_deliveries(_wire_deliveries([1, 2, 4, 5]), 0, 0, P, TYPES)
    assert batch.broken and batch.last_seq == 2 and batch.received == 2
    assert batch.consumer_seq == 2 and batch.pending == 8
    assert [orjson.loads(t.text)["price"] for t in batch.trades] == [0.5, 0.500001]
    # In order from where the last batch ended: nothing is missing.
    whole = books.apply_deliveries(_wire_deliveries([3, 4]), 0, 2, P, TYPES)
    assert not whole.broken and whole.received == 2 and whole.consumer_seq == 4


@given(
    price=st.integers(-(10**15), 10**15),
    size=st.integers(0, 10**15),
    outcome=st.sampled_from(["yes", "no", None]),
    ticker=st.text(min_size=1, max_size=20),
)
def test_trade_messages_say_what_the_record_says(
    price: int, size: int, outcome: str | None, ticker: str
) -> None:
    (text,) = core.trade_messages(enc(trade(ticker, price, size, outcome)))
    whole, frac = divmod(size, SCALE)
    assert orjson.loads(text) == {
        "type": "trade",
        "ticker": ticker,
        "price": round(price / SCALE, 6),
        "size": whole if frac == 0 else round(size / SCALE, 6),
        "side": {"yes": "buy", "no": "sell", None: None}[outcome],
        "ts": 5000,
    }
