"""The Rust normalizer against the fixture tree and the plain-Python reference."""

from __future__ import annotations

import pytest

from _support import kalshi_fixture, kalshi_fixture_names
from ssmd import core
from ssmd.exceptions import CoreError, DecodeError, SsmdError
from ssmd.testing import reference_kalshi as reference

GOOD = [
    n
    for n in kalshi_fixture_names()
    if not n.startswith(("bad_", "malformed_", "unknown_", "no_type", "control_"))
]
RECEIVE_NS = 1_800_000_000_123_456_789


def normalize_one(name: str) -> tuple[core.NormalizedBatch, list[dict[str, object]]]:
    batch = core.normalize_kalshi([kalshi_fixture(name)], [RECEIVE_NS], 42)
    return batch, core.decode_records(batch.data)


@pytest.mark.parametrize("name", GOOD)
def test_matches_the_python_reference(name: str) -> None:
    batch, records = normalize_one(name)
    assert batch.problems == []
    assert records == [reference.normalize(kalshi_fixture(name), RECEIVE_NS, 42)]


@pytest.mark.parametrize(
    ("stem", "fields"),
    [
        ("trade", ["ticker", "trade_id", "price_e6", "no_price_e6", "size_e6", "taker_outcome"]),
        ("orderbook_snapshot", ["ticker", "market_id", "yes", "no"]),
        ("orderbook_delta", ["ticker", "side", "price_e6", "delta_e6", "exchange_ts"]),
        ("ticker", ["ticker", "last_price_e6", "yes_bid_e6", "yes_ask_e6", "dollar_volume"]),
    ],
)
def test_every_era_gives_the_same_values(stem: str, fields: list[str]) -> None:
    eras = {era: normalize_one(f"{stem}_{era}")[1][0] for era in "abc"}
    for field in fields:
        assert eras["a"][field] == eras["b"][field] == eras["c"][field], field


def test_batch_routes_every_frame() -> None:
    names = kalshi_fixture_names()
    frames = [kalshi_fixture(n) for n in names]
    batch = core.normalize_kalshi(frames, list(range(len(frames))), 5)
    assert len(batch) == len(frames)
    kinds = [core.FRAME_KINDS[code] for code in batch.kinds]
    for name, kind in zip(names, kinds, strict=True):
        if name.startswith("malformed_"):
            assert kind == "malformed", name
        elif name.startswith(("unknown_", "no_type")):
            assert kind == "unknown", name
    # Records point at their frame and slice the buffer into whole messages.
    records = core.decode_records(batch.data)
    assert len(records) == len(batch.records)
    for (frame, record_type, ticker, start, end), record in zip(
        batch.records, records, strict=True
    ):
        assert record["receive_ts"] == frame
        assert record["type"] == record_type
        assert record["ticker"] == ticker
        assert core.decode_records(batch.data[start:end]) == [record]
    assert [core.FRAME_KINDS[batch.kinds[i]] for i in batch.control] == [
        "error",
        "ok",
        "ok",
        "ok",
        "subscribed",
        "unsubscribed",
    ]


def test_problems_are_reported_per_frame_and_the_batch_goes_on() -> None:
    names = [
        "trade_c",
        "malformed_truncated",
        "bad_wrong_types",
        "unknown_type_fill",
        "bad_missing_ticker",
        "trade_a",
    ]
    batch = core.normalize_kalshi([kalshi_fixture(n) for n in names], [1] * len(names), 1)
    by_frame: dict[int, list[tuple[str, str]]] = {}
    for frame, problem, detail in batch.problems:
        by_frame.setdefault(frame, []).append((problem, detail))
    assert set(by_frame) == {1, 2, 3, 4}
    assert by_frame[1][0][0] == "malformed"
    assert ("field", "count: wrong type (string)") in by_frame[2]
    assert by_frame[3] == [("unknown_type", "fill")]
    assert ("no_record", "no market ticker could be read") in by_frame[4]
    # Frames 0, 2 (nulled fields) and 5 still produce records.
    assert [r[0] for r in batch.records] == [0, 2, 5]


def test_sub_cent_and_fractional_values_are_exact() -> None:
    _, [trade] = normalize_one("trade_c_subcent_fractional")
    assert (trade["price_e6"], trade["size_e6"]) == (999_000, 110_000)
    _, [ticker] = normalize_one("ticker_c_fractional_volume")
    assert ticker["volume_e6"] == 2_233_487_480_000
    _, [never] = normalize_one("ticker_c_never_traded")
    assert never["last_price_e6"] is None


def test_trades_with_the_same_ticker_and_second_stay_distinct() -> None:
    _, first = normalize_one("trade_c")
    _, twin = normalize_one("trade_c_twin_same_second")
    assert first[0]["exchange_ts"] // 10**9 == twin[0]["exchange_ts"] // 10**9
    assert first[0]["trade_id"] != twin[0]["trade_id"]


def test_mismatched_lengths_are_an_error() -> None:
    with pytest.raises(CoreError, match="differ in length"):
        core.normalize_kalshi([b"{}"], [1, 2], 0)


def test_garbage_records_raise_decode_error() -> None:
    with pytest.raises(DecodeError) as info:
        core.decode_records(b"\x00\x01\x02garbage")
    assert isinstance(info.value, SsmdError)
    assert isinstance(info.value, ValueError)
