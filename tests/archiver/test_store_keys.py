"""The key layout contract (docs/archiver.md): one builder, parsed back by readers."""

from __future__ import annotations

import re
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ssmd import core
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


@given(st.text(min_size=0, max_size=400))
def test_ticker_segment_is_bounded_path_safe_and_reversible_unless_hashed(ticker: str) -> None:
    seg = keys.ticker_segment(ticker)
    assert seg.isascii() and len(seg) <= keys.MAX_SEGMENT
    assert "/" not in seg and "\\" not in seg and seg and not seg.startswith(".")
    info = keys.parse_key(keys.normalized_key("e", "f", "trade", DAY, ticker))
    assert info is not None and info.segment == seg
    if keys.HASH_MARK in seg:
        assert keys.ticker_from_segment(seg) is None and info.ticker is None
    else:
        assert keys.ticker_from_segment(seg) == ticker and info.ticker == ticker


@given(st.text(max_size=300), st.text(max_size=300))
def test_different_tickers_never_share_a_segment(a: str, b: str) -> None:
    if a != b:
        assert keys.ticker_segment(a) != keys.ticker_segment(b)


# Tickers a fault injection sends: path-like, NATS wildcards, empty, long, non-ASCII.
ODD_TICKERS = ["../x", "a/b", "..", ".hidden", "*", ">", "a.*.>", "", "A" * 300, "é" * 50, "a~b"]


@pytest.mark.parametrize("ticker", ODD_TICKERS)
def test_every_path_component_of_an_odd_ticker_stays_far_below_255_bytes(ticker: str) -> None:
    key = keys.normalized_key("kalshi-prod", "kalshi", "orderbook", DAY, ticker)
    # the spool's files and the stores' temporary names are derived from the key
    derived = [
        key,
        keys.meta_key(key),
        key + ".spool",
        key + ".seqs",
        key + ".sealing",
        key + ".spool.merge",
        key + ".sealing.tmp",
        f"{key}.{'0' * 32}.tmp",
    ]
    for path in derived:
        for part in path.split("/"):
            assert len(part.encode()) <= 160, (ticker, part)
            assert part not in ("", ".", "..") and not part.startswith(".")
    info = keys.parse_key(key)
    assert info is not None and info.kind == "normalized"
    assert info.ticker in (ticker, None)


def test_a_long_ticker_keeps_a_readable_prefix() -> None:
    seg = keys.ticker_segment("KXLONG-" + "A" * 300)
    assert seg.startswith("KXLONG-AAAA") and keys.HASH_MARK in seg
    assert len(keys.ticker_segment("é" * 50).encode()) <= keys.MAX_SEGMENT
    # a prefix never ends inside a %XX escape
    for n in range(1, 6):
        head = keys.ticker_segment("x" * n + "é" * 60).split(keys.HASH_MARK)[0]
        assert re.search(r"%[0-9A-F]?$", head) is None, head


def test_message_types_name_files_only_when_plain() -> None:
    for msgtype in (*core.FRAME_KINDS, "undecodable", keys.QUARANTINE_MSGTYPE):
        info = keys.parse_key(keys.raw_key("p", "k", msgtype, DAY, 3))
        assert info is not None and info.msgtype == msgtype
    for bad in ("", "a-b", "a.b", "é", "*", ">", "..", "x" * 65, "a/b", "a b"):
        with pytest.raises(ValueError, match="cannot name a raw file"):
            keys.raw_key("p", "k", bad, DAY, 3)


def test_ordinary_and_dotted_tickers_stay_readable() -> None:
    for t in ("KXBTCD-26MAR1213-T69499.99", "INXD-25-B4000"):
        assert keys.ticker_segment(t) == t
    assert keys.ticker_segment("a/b") == "a%2Fb"
    assert keys.ticker_segment("..") == "%2E%2E"
    assert keys.ticker_segment(".x") == "%2Ex"  # never a hidden (or temporary) name
    assert keys.ticker_segment("a~b") == "a%7Eb"  # `~` marks hashed segments only


def test_days_and_hours_are_utc_receive_time() -> None:
    midnight = 1_784_592_000 * 10**9  # 2026-07-21T00:00:00Z
    assert keys.day_of_ns(midnight - 1) == DAY and keys.hour_of_ns(midnight - 1) == 23
    assert keys.day_of_ns(midnight) == date(2026, 7, 21) and keys.hour_of_ns(midnight) == 0


def test_bad_parts_are_refused() -> None:
    with pytest.raises(ValueError):
        keys.raw_key("prod", "kalshi", "trade", DAY, 24)
    with pytest.raises(ValueError):
        keys.raw_key("a/b", "kalshi", "trade", DAY, 1)
