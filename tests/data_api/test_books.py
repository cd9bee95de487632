"""book_at and top_of_book against the simulator's own books at the same moments."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import orjson
import polars as pl
import pytest
from typer.testing import CliRunner

import ssmd.data
from _support import ROOT
from _support.datafix import ENV, SEC, Capture
from ssmd.cli import app
from ssmd.data.source import Dataset
from ssmd.exceptions import DataError
from ssmd.sim import BookState

pytestmark = pytest.mark.xdist_group("data_api")

E6 = Decimal(1_000_000)


def _truth(state: BookState) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The simulator's book as book_at gives it: YES bids best first, and YES asks
    (1 - NO bid) best first, in 1e-6 units."""
    yes = [(int(Decimal(p) * E6), int(Decimal(s) * E6)) for p, s in state.yes]
    no = [(int(Decimal(p) * E6), int(Decimal(s) * E6)) for p, s in state.no]
    return sorted(yes, reverse=True), sorted((1_000_000 - p, s) for p, s in no)


def _first_seen(cap: Capture) -> dict[str, int]:
    """When each market's snapshot was received."""
    import orjson

    seen: dict[str, int] = {}
    for frame, ns in zip(cap.frames, cap.receive_ns, strict=True):
        msg = orjson.loads(frame)
        if msg.get("type") == "orderbook_snapshot":
            seen.setdefault(msg["msg"]["market_ticker"], ns)
    return seen


def test_books_at_sampled_times_equal_the_simulators(captured: Capture) -> None:
    dataset = Dataset.open(ENV, data_dir=captured.data_dir)
    first = _first_seen(captured)
    checked = gapped = 0
    for at, books in list(captured.books.items())[::7]:
        moment = at + SEC - 1  # after this second's frames, before the next second's
        for ticker, state in books.items():
            if ticker not in first or first[ticker] > at:
                continue
            book = ssmd.data.book_at(ticker, moment, dataset=dataset)
            if ticker == captured.gap_ticker and moment >= captured.gap_ns:
                # the connector reported a sequence gap on this market: never continued
                assert not book.valid and book.reason and book.reason.startswith("seq_gap from")
                gapped += 1
                continue
            assert book.valid, (ticker, moment, book.reason)
            assert (book.bids, book.asks) == _truth(state), (ticker, moment)
            checked += 1
    assert checked > 100 and gapped > 0


def test_depth_limits_each_side(captured: Capture) -> None:
    at, books = list(captured.books.items())[-1]
    ticker = next(t for t, s in books.items() if len(s.yes) > 2 and t != captured.gap_ticker)
    book = ssmd.data.book_at(ticker, at + SEC - 1, depth=2, env=ENV, data_dir=captured.data_dir)
    bids, asks = _truth(books[ticker])
    assert book.bids == bids[:2] and book.asks == asks[:2]


def test_top_of_book_follows_the_simulator_every_second(captured: Capture) -> None:
    times = list(captured.books)
    ticker = captured.tickers[1]
    tob = ssmd.data.top_of_book(
        ticker, times[5] + SEC - 1, times[-1] + SEC, every="1s", env=ENV, data_dir=captured.data_dir
    )
    assert tob.height == len(times) - 5
    for row, at in zip(tob.iter_rows(named=True), times[5:], strict=True):
        bids, asks = _truth(captured.books[at][ticker])
        assert row["valid"]
        assert (row["bid_e6"], row["bid_size_e6"]) == (bids[0] if bids else (None, None))
        assert (row["ask_e6"], row["ask_size_e6"]) == (asks[0] if asks else (None, None))
    assert tob.schema["ts"] == pl.Datetime("ns", "UTC")


def test_an_unknown_market_names_the_closest(captured: Capture) -> None:
    at = list(captured.books)[10]
    typo = captured.tickers[2].lower()
    with pytest.raises(DataError, match=f"closest: {captured.tickers[2]}"):
        ssmd.data.book_at(typo, at, env=ENV, data_dir=captured.data_dir)


def test_data_book_command(captured: Capture) -> None:
    at, books = list(captured.books.items())[-1]
    ticker = next(t for t, s in books.items() if s.yes and t != captured.gap_ticker)

    when = datetime.fromtimestamp((at + SEC - 1) / SEC, UTC).isoformat().replace("+00:00", "Z")
    common = [
        "--env",
        ENV,
        "--config-dir",
        str(ROOT / "exchanges"),
        "--data-dir",
        str(captured.data_dir),
    ]
    result = CliRunner().invoke(
        app, ["data", "book", ticker, *common, "--at", when, "--depth", "3", "--json"]
    )
    assert result.exit_code == 0, result.output
    import json

    doc = json.loads(result.stdout)
    bids, _ = _truth(books[ticker])
    assert doc["valid"] and [(b["price_e6"], b["size_e6"]) for b in doc["bids"]] == bids[:3]
    table = CliRunner().invoke(app, ["data", "book", ticker, *common, "--at", when])
    assert table.exit_code == 0 and f"{ticker} at {when} (valid)" in table.stdout
    _, size = bids[0]
    assert f"{Decimal(size) / E6:f}".rstrip("0").rstrip(".") in table.stdout
    day = CliRunner().invoke(app, ["data", "book", ticker, *common, "--at", when[:10]])
    assert day.exit_code == 1 and "is a day; give a time" in day.stderr


def test_a_disconnect_invalidates_every_book_and_lost_trades_none(
    captured: Capture, tmp_path: Path
) -> None:
    """Gaps come from the day's manifests: one affecting every market (markets: [])
    invalidates every book that has no snapshot after it; lost trades touch no book."""
    data = tmp_path / "data"
    shutil.copytree(captured.data_dir, data)
    times = list(captured.books)
    start, lost = times[-20], times[-30]
    for manifest in (data / "normalized").rglob("2026/07/21/manifest.json"):
        content = orjson.loads(manifest.read_bytes())
        content["gaps"] = [
            {"start": "t", "end": "t", "start_ns": lost, "end_ns": lost, "duration_s": 0,
             "reason": "records_lost", "detail": "", "markets": []},
            {"start": "2026-07-21T00:01:00.000Z", "end": "e", "start_ns": start,
             "end_ns": start + 5 * SEC, "duration_s": 5, "reason": "disconnect",
             "detail": "", "markets": []},
        ]  # fmt: skip
        manifest.write_bytes(orjson.dumps(content))
    dataset = Dataset.open(ENV, data_dir=data)
    ticker = next(t for t, s in captured.books[times[-1]].items() if s.yes)
    before = ssmd.data.book_at(ticker, start - 1, dataset=dataset)
    after = ssmd.data.book_at(ticker, start + SEC, dataset=dataset)
    assert before.valid and before.reason is None
    assert not after.valid and after.reason == "disconnect from 2026-07-21T00:01:00.000Z"
    tob = ssmd.data.top_of_book(ticker, start - SEC, start + 2 * SEC, "1s", dataset=dataset)
    assert tob["valid"].to_list() == [True, False, False]
    assert tob["bid_e6"][1] is None
