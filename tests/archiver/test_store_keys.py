"""The key layout contract (DESIGN.md section 5): one builder, parsed back by readers."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ssmd.store import keys

DAY = date(2026, 7, 20)


def test_layout_is_exactly_the_design() -> None:
    assert (
        keys.raw_key("prod", "kalshi", "trade", DAY, 9)
        == "prod/kalshi/2026/07/20/trade-09.jsonl.zst"
    )
    assert (
        keys.normalized_key("prod", "kalshi", "trade", DAY, "KXBTCD-26MAR1213-T69499.99")
        == "prod/kalshi/v1/trade/2026/07/20/KXBTCD-26MAR1213-T69499.99/data.capnp.zst"
    )
    assert keys.manifest_key("prod", "kalshi", "raw", DAY) == "prod/kalshi/2026/07/20/manifest.json"
    assert (
        keys.manifest_key("prod", "kalshi", "orderbook", DAY)
        == "prod/kalshi/v1/orderbook/2026/07/20/manifest.json"
    )
    assert (
        keys.normalized_key("prod", "kalshi", "events", DAY, "")
        == "prod/kalshi/v1/events/2026/07/20/_events/data.capnp.zst"
    )
    assert keys.meta_key("a/b.jsonl.zst") == "a/b.jsonl.zst.meta.json"


def test_parse_round_trip() -> None:
    info = keys.parse_key(keys.raw_key("prod", "kalshi", "orderbook_delta", DAY, 23))
    assert info == keys.KeyInfo("raw", "prod", "kalshi", "raw", DAY, "orderbook_delta", 23)
    info = keys.parse_key(keys.normalized_key("prod", "kalshi", "ticker", DAY, "A/B C"))
    assert info is not None and info.kind == "normalized" and info.ticker == "A/B C"
    meta = keys.parse_key(keys.meta_key(keys.raw_key("p", "k", "trade", DAY, 1)))
    assert meta is not None and meta.kind == "meta" and meta.hour == 1
    assert keys.parse_key("prod/kalshi/2026/07/20/manifest.json") == keys.KeyInfo(
        "manifest", "prod", "kalshi", "raw", DAY
    )
    for bad in (
        "prod/kalshi/2026/07/20/trade-24.jsonl.zst",
        "x/y",
        "prod/kalshi/2026/13/01/a-01.jsonl.zst",
    ):
        assert keys.parse_key(bad) is None


@given(st.text(min_size=0, max_size=30))
def test_ticker_segment_is_reversible_and_path_safe(ticker: str) -> None:
    seg = keys.ticker_segment(ticker)
    assert "/" not in seg and "\\" not in seg and seg not in ("", ".", "..")
    assert keys.ticker_from_segment(seg) == ticker
    key = keys.normalized_key("e", "f", "trade", DAY, ticker)
    info = keys.parse_key(key)
    assert info is not None and info.ticker == ticker


def test_ordinary_and_dotted_tickers_stay_readable() -> None:
    for t in ("KXBTCD-26MAR1213-T69499.99", "INXD-25-B4000"):
        assert keys.ticker_segment(t) == t
    assert keys.ticker_segment("a/b") == "a%2Fb"
    assert keys.ticker_segment("..") == "%2E%2E"


def test_days_and_hours_are_utc_receive_time() -> None:
    midnight = 1_784_592_000 * 10**9  # 2026-07-21T00:00:00Z
    assert keys.day_of_ns(midnight - 1) == DAY and keys.hour_of_ns(midnight - 1) == 23
    assert keys.day_of_ns(midnight) == date(2026, 7, 21) and keys.hour_of_ns(midnight) == 0


def test_bad_parts_are_refused() -> None:
    with pytest.raises(ValueError):
        keys.raw_key("prod", "kalshi", "trade", DAY, 24)
    with pytest.raises(ValueError):
        keys.raw_key("a/b", "kalshi", "trade", DAY, 1)
