"""BookSet over normalized record bytes: exact book state, derived YES quote,
sequence gaps, duplicates and resync by snapshot."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssmd import _core
from ssmd.exceptions import DecodeError

SCALE = 1_000_000
CENT = SCALE // 100


def snapshot(
    ticker: str,
    seq: int,
    yes: list[tuple[int, int]],
    no: list[tuple[int, int]],
    *,
    conn_id: int = 1,
    sid: int = 1,
    use_yes_price: bool = False,
) -> dict[str, Any]:
    return {
        "kind": "book_snapshot",
        "ticker": ticker,
        "yes": yes,
        "no": no,
        "use_yes_price": use_yes_price,
        "conn_id": conn_id,
        "sid": sid,
        "seq": seq,
    }


def delta(
    ticker: str | None,
    seq: int,
    side: str | None,
    price: int | None,
    change: int | None,
    *,
    conn_id: int = 1,
    sid: int = 1,
) -> dict[str, Any]:
    return {
        "kind": "book_delta",
        "ticker": ticker,
        "side": side,
        "price_e6": price,
        "delta_e6": change,
        "conn_id": conn_id,
        "sid": sid,
        "seq": seq,
    }


def apply(books: _core.BookSet, *records: dict[str, Any]) -> list[tuple[object, ...]]:
    return books.apply(_core.encode_records(list(records)))


def example(
    books: _core.BookSet, ticker: str = "KXBTCD-26JUL2017-T119999.99", seq: int = 1, **kw: Any
) -> None:
    """The protocol reference's example moment."""
    yes = [(31 * CENT, 120 * SCALE), (33 * CENT, 45_500_000), (34 * CENT, 210 * SCALE)]
    no = [(62 * CENT, 80 * SCALE), (64 * CENT, 12_250_000)]
    assert apply(books, snapshot(ticker, seq, yes, no, **kw)) == []


def valid(books: _core.BookSet, ticker: str) -> bool:
    view = books.view(ticker)
    assert view is not None, ticker
    return view.valid


def test_reference_example_quote() -> None:
    books = _core.BookSet()
    t = "KXBTCD-26JUL2017-T119999.99"
    example(books, t, sid=3)
    assert apply(books, delta(t, 2, "yes", 34 * CENT, -60 * SCALE, sid=3)) == []
    view = books.view(t)
    assert view is not None
    assert (view.ticker, view.valid, view.conn_id, view.stream) == (t, True, 1, 3)
    assert view.bids == [
        (34 * CENT, 150 * SCALE),
        (33 * CENT, 45_500_000),
        (31 * CENT, 120 * SCALE),
    ]
    # Best NO bid 0.64 is a YES ask of 0.36 for 12.25.
    assert view.asks == [(36 * CENT, 12_250_000), (38 * CENT, 80 * SCALE)]
    top = books.view(t, depth=1)
    assert top is not None
    assert top.bids == [(34 * CENT, 150 * SCALE)]
    assert top.asks == [(36 * CENT, 12_250_000)]


def test_use_yes_price_no_levels_are_asks() -> None:
    books = _core.BookSet()
    apply(
        books,
        snapshot(
            "T",
            1,
            [(30 * CENT, SCALE)],
            [(36 * CENT, 2 * SCALE), (35 * CENT, SCALE)],
            use_yes_price=True,
        ),
    )
    view = books.view("T")
    assert view is not None
    assert view.asks == [(35 * CENT, SCALE), (36 * CENT, 2 * SCALE)]


def test_gap_invalidates_every_book_on_the_sid_and_snapshot_resyncs() -> None:
    books = _core.BookSet()
    apply(
        books,
        snapshot("A", 1, [(40 * CENT, 10 * SCALE)], []),
        snapshot("B", 2, [(50 * CENT, SCALE)], []),
        snapshot("C", 1, [(20 * CENT, SCALE)], [], sid=2),
    )
    events = apply(books, delta("A", 5, "yes", 40 * CENT, SCALE))
    assert events == [_core.GapEvent(1, 1, 3, 5, ["A", "B"])]
    assert [valid(books, t) for t in "ABC"] == [False, False, True]
    # Deltas on an invalid book are ignored until its snapshot.
    assert apply(books, delta("A", 6, "yes", 40 * CENT, SCALE)) == []
    a_view = books.view("A")
    assert a_view is not None and a_view.bids == [(40 * CENT, 10 * SCALE)]
    assert books.ignored_deltas == 2
    assert apply(books, snapshot("A", 7, [(41 * CENT, 3 * SCALE)], [])) == [
        _core.ResyncedEvent("A")
    ]
    assert apply(books, delta("A", 8, "yes", 41 * CENT, SCALE)) == []
    a = books.view("A")
    assert a is not None and a.valid and a.bids == [(41 * CENT, 4 * SCALE)]
    assert valid(books, "B") is False


def test_duplicates_are_reported_and_not_applied() -> None:
    books = _core.BookSet()
    example(books, "T")
    apply(books, delta("T", 2, "yes", 31 * CENT, SCALE), delta("T", 3, "yes", 31 * CENT, SCALE))
    # A redelivered batch (an archiver crash between flush and ack).
    events = apply(
        books, delta("T", 2, "yes", 31 * CENT, SCALE), delta("T", 3, "yes", 31 * CENT, SCALE)
    )
    assert events == [_core.DuplicateEvent(1, 1, 2), _core.DuplicateEvent(1, 1, 3)]
    view = books.view("T")
    assert view is not None and view.valid
    assert view.bids == [
        (34 * CENT, 210 * SCALE),
        (33 * CENT, 45_500_000),
        (31 * CENT, 122 * SCALE),
    ]
    # The redelivery did not pull the sequence back.
    assert apply(books, delta("T", 4, "yes", 31 * CENT, SCALE)) == []


def test_delta_before_snapshot_is_not_applied() -> None:
    books = _core.BookSet()
    assert apply(books, delta("T", 1, "no", 50 * CENT, SCALE)) == [
        _core.DeltaWithoutSnapshotEvent("T")
    ]
    assert books.view("T") == _core.BookView("T", [], [], False, 1, 1)
    assert apply(books, snapshot("T", 2, [], [])) == [_core.ResyncedEvent("T")]


def test_negative_size_and_missing_fields_invalidate() -> None:
    books = _core.BookSet()
    example(books, "T")
    assert apply(books, delta("T", 2, "no", 64 * CENT, -13 * SCALE)) == [
        _core.InvalidatedEvent("T", "negative_size")
    ]
    example(books, "U", seq=3)
    assert apply(books, delta("U", 4, None, 64 * CENT, SCALE)) == [
        _core.InvalidatedEvent("U", "missing_side")
    ]
    example(books, "V", seq=5)
    assert apply(books, delta("V", 6, "yes", None, SCALE)) == [
        _core.InvalidatedEvent("V", "missing_price")
    ]
    example(books, "W", seq=7)
    assert apply(books, delta("W", 8, "yes", CENT, None)) == [
        _core.InvalidatedEvent("W", "missing_size")
    ]
    assert not any(valid(books, t) for t in "TUVW")


def test_reconnect_is_not_a_gap() -> None:
    books = _core.BookSet()
    example(books, "T", seq=90, sid=4)
    assert books.close_connection(1) == ["T"]
    # The new connection restarts sids and seqs; its snapshot makes T exact.
    assert apply(books, snapshot("T", 1, [(10 * CENT, SCALE)], [], conn_id=2, sid=1)) == [
        _core.ResyncedEvent("T")
    ]
    assert apply(books, delta("T", 2, "yes", 10 * CENT, SCALE, conn_id=2, sid=1)) == []
    view = books.view("T")
    assert view is not None and view.valid and (view.conn_id, view.stream) == (2, 1)


def test_resubscribe_reset_and_removal() -> None:
    books = _core.BookSet()
    example(books, "T", seq=40)
    books.reset_stream(1, 1)
    assert apply(books, snapshot("T", 1, [], [])) == []
    assert books.tickers() == ["T"] and len(books) == 1
    assert books.remove("T") is True
    assert books.remove("T") is False
    assert books.view("T") is None and len(books) == 0


def test_non_book_records_are_ignored() -> None:
    books = _core.BookSet()
    trade = {
        "kind": "trade",
        "ticker": "T",
        "price_e6": CENT,
        "size_e6": SCALE,
        "conn_id": 1,
        "sid": 1,
        "seq": 1,
    }
    assert apply(books, trade) == []
    assert len(books) == 0


def test_undecodable_bytes_raise_and_change_nothing() -> None:
    books = _core.BookSet()
    good = _core.encode_records([snapshot("T", 1, [(CENT, SCALE)], [])])
    with pytest.raises(DecodeError):
        books.apply(good + b"\xff\xff\xff\xff\x00\x00")
    assert len(books) == 0


class Naive:
    """A book recomputed from scratch: a list of (side, price, size) levels."""

    def __init__(self) -> None:
        self.levels: list[tuple[str, int, int]] = []
        self.valid = False
        self.use_yes_price = False

    def snapshot(
        self, yes: list[tuple[int, int]], no: list[tuple[int, int]], use_yes_price: bool
    ) -> None:
        merged: dict[tuple[str, int], int] = {}
        for side, levels in (("yes", yes), ("no", no)):
            for price, size in levels:
                merged[(side, price)] = merged.get((side, price), 0) + size
        self.levels = [(s, p, z) for (s, p), z in merged.items() if z != 0]
        self.valid = all(z >= 0 for _, _, z in self.levels)
        if not self.valid:
            self.levels = []
        self.use_yes_price = use_yes_price

    def delta(self, side: str, price: int, change: int) -> None:
        if not self.valid:
            return
        old = sum(z for s, p, z in self.levels if (s, p) == (side, price))
        if old + change < 0:
            self.valid = False
            return
        self.levels = [lvl for lvl in self.levels if (lvl[0], lvl[1]) != (side, price)]
        if old + change:
            self.levels.append((side, price, old + change))

    def bids(self) -> list[tuple[int, int]]:
        return sorted(((p, z) for s, p, z in self.levels if s == "yes"), reverse=True)

    def asks(self) -> list[tuple[int, int]]:
        no = [(p, z) for s, p, z in self.levels if s == "no"]
        if self.use_yes_price:
            return sorted(no)
        return sorted((SCALE - p, z) for p, z in no)


prices = st.integers(min_value=1, max_value=8).map(lambda k: k * 11 * CENT)
levels = st.lists(
    st.tuples(prices, st.integers(min_value=0, max_value=300).map(lambda k: k * 10_000)), max_size=5
)
snapshot_op = st.tuples(st.just("snapshot"), levels, levels, st.booleans())
delta_op = st.tuples(
    st.just("delta"),
    st.sampled_from(["yes", "no"]),
    prices,
    st.integers(min_value=-200, max_value=200).map(lambda k: k * 10_000),
)
ops = st.lists(
    # Deltas twice as likely as snapshots, so that some books live long.
    st.one_of(snapshot_op, delta_op, delta_op),
    min_size=1,
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(ops)
def test_random_sequences_match_a_naive_model(sequence: list[tuple[Any, ...]]) -> None:
    books = _core.BookSet()
    naive = Naive()
    records = []
    for seq, op in enumerate(sequence, start=1):
        if op[0] == "snapshot":
            _, yes, no, use_yes_price = op
            records.append(snapshot("T", seq, yes, no, use_yes_price=use_yes_price))
        else:
            _, side, price, change = op
            records.append(delta("T", seq, side, price, change))
    # One batch per record, so that state can be compared after each.
    for record in records:
        was_valid = naive.valid
        events = apply(books, record)
        if record["kind"] == "book_snapshot":
            naive.snapshot(record["yes"], record["no"], record["use_yes_price"])
        else:
            naive.delta(record["side"], record["price_e6"], record["delta_e6"])
            if not was_valid:
                assert events in ([], [_core.DeltaWithoutSnapshotEvent("T")])
            elif not naive.valid:
                assert events == [_core.InvalidatedEvent("T", "negative_size")]
            else:
                assert events == []
        view = books.view("T")
        assert view is not None
        assert view.valid == naive.valid
        if naive.valid:
            assert view.bids == naive.bids()
            assert view.asks == naive.asks()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=2, max_value=15), min_size=1, max_size=40))
def test_any_delivery_order_reports_gaps_and_duplicates(order: list[int]) -> None:
    books = _core.BookSet()
    apply(books, snapshot("T", 1, [(50 * CENT, 100 * SCALE)], []))
    highest, gapped, size = 1, False, 100 * SCALE
    for seq in order:
        events = apply(books, delta("T", seq, "yes", 50 * CENT, SCALE))
        if seq <= highest:
            assert events == [_core.DuplicateEvent(1, 1, seq)]
        elif seq == highest + 1:
            assert events == []
            size += 0 if gapped else SCALE
            highest = seq
        else:
            assert events == [_core.GapEvent(1, 1, highest + 1, seq, ["T"])]
            gapped, highest = True, seq
        view = books.view("T")
        assert view is not None
        assert view.valid == (not gapped)
        assert view.bids == [(50 * CENT, size)]
