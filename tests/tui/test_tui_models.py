"""What the panes of `ssmd tui` show, from what the services answer (ssmd.tui.models)."""

from __future__ import annotations

from ssmd.tui import models
from ssmd.up.status import Figures


def test_components_in_pipeline_order_with_their_figures() -> None:
    states = {
        "gateway": ("running", "pid 5"),
        "temporal": ("running", "pid 9"),
        "connector": ("stopped", ""),
        "nats": ("running", "pid 1"),
    }
    f = Figures(received_per_s=1234.4, published_per_s=2000, markets_subscribed=40)
    f.shards = [{"shard": 0, "state": "streaming"}]
    f.gateway_clients = 3
    rows = models.component_rows(states, f, {"status": "ok"})
    assert [r[0] for r in rows] == ["nats", "connector", "gateway", "temporal"]
    assert rows[1][1:3] == ("stopped", "")
    assert rows[1][3].startswith("1,234 frames/s in, 2,000 msgs/s out; 40 markets;")
    assert "#0 streaming" in rows[1][3]
    assert rows[2][3] == "health ok; 3 clients"
    assert rows[3][3] == ""


def test_markets_prefer_the_live_book_to_the_last_sync() -> None:
    live = {"ticker": "A", "status": "open", "yes_bid": 0.1, "yes_ask": 0.9, "volume": 1500,
            "book": {"best_bid": [0.42, 10], "best_ask": [0.45, 3]},
            "last_trade": {"price": 0.43}, "title": "x " * 40}  # fmt: skip
    synced = {"ticker": "B", "yes_bid": 0.1, "yes_ask": 0.9, "last_price": 0.5}
    a, b = models.market_rows([live, synced])
    assert a[:6] == ("A", "open", "0.42", "0.45", "0.43", "1,500")
    assert len(a[6]) == 48 and a[6].endswith("…")
    assert b[:6] == ("B", "-", "0.1", "0.9", "0.5", "-")


def test_the_ladder_puts_both_sides_side_by_side_best_first() -> None:
    book = {"bids": [[0.5, 10], [0.49, 2.5]], "asks": [[0.52, 7]]}
    assert models.ladder_rows(book) == [("10", "0.5", "0.52", "7"), ("2.5", "0.49", "", "")]
    assert (
        models.ladder_rows({"bids": [[0.5, 1]] * 30, "asks": []}, depth=15)
        == [("1", "0.5", "", "")] * 15
    )


def test_a_day_is_summed_over_its_data_types() -> None:
    inventory = [
        {"date": "2026-12-03", "records": 10, "files": 2, "bytes": 2048, "status": "sealed",
         "gaps": 1, "quality_score": 0.99},
        {"date": "2026-12-04", "records": 5, "files": 1, "bytes": 10, "status": "sealed",
         "gaps": 2, "quality_score": 0.5, "pending_records": 3},
        {"date": "2026-12-04", "records": 7, "files": 1, "bytes": 10, "status": "open",
         "gaps": 2, "quality_score": 0.75},
    ]  # fmt: skip
    newest, older = models.day_rows(inventory)
    assert newest == ("2026-12-04", "12", "2", "20 B", "3", "open", "2", "0.500000")
    assert older[0] == "2026-12-03" and older[5:] == ("sealed", "1", "0.990000")


def test_gaps_quality_and_the_issues_of_a_day() -> None:
    gap = {"start": "s", "end": "e", "duration_s": 1234.5, "reason": "disconnect", "markets": []}
    assert models.gap_rows([gap, {**gap, "markets": ["A", "B"]}]) == [
        ("s", "e", "1,234.500", "disconnect", "all"),
        ("s", "e", "1,234.500", "disconnect", "A, B"),
    ]
    assert models.quality_text({"date": "2026-12-04", "found": False}).startswith(
        "2026-12-04: no manifest yet"
    )
    report = {"date": "2026-12-04", "found": True, "quality_score": 0.25,
              "gap_seconds_by_reason": {"seq_gap": 2, "connector_stopped": 3.04},
              "malformed_frames": 0, "quarantined": 1}  # fmt: skip
    assert models.quality_text(report, 2) == (
        "2026-12-04: quality 0.250000; gaps connector_stopped 3.0 s, seq_gap 2.0 s; "
        "malformed frames 0; quarantined 1; open data issues 2"
    )
    issues = [
        {"start": "2026-12-03T23:00:00Z", "end": "2026-12-04T01:00:00Z"},
        {"start": "2026-12-05T00:00:00Z", "end": "2026-12-05T01:00:00Z"},
    ]
    assert [models.issues_on(issues, d) for d in ("2026-12-03", "2026-12-04", "2026-12-05")] == [
        1, 1, 1,
    ]  # fmt: skip
    assert models.issues_on(issues, "2026-12-06") == 0


def test_trades_issues_and_the_book_line() -> None:
    trade = {"ts": 1796392110215, "side": "sell", "price": 0.64, "size": 71.04}
    assert models.trade_rows([trade]) == [("13:48:30.215", "sell", "0.64", "71.04")]
    issue = {"id": 7, "ticker": None, "start": "a", "end": "b", "reporter": "ops",
             "description": "book\njumped"}  # fmt: skip
    assert models.issue_rows([issue]) == [("7", "all", "a", "b", "ops", "book jumped")]
    book = {"ticker": "A", "valid": False, "bids": [[0.5, 1]], "asks": [], "ts": 1796392110215}
    assert models.book_text(book) == (
        "A: book NOT VALID (awaiting a snapshot), 1 bid / 0 ask levels, as of 13:48:30.215 UTC"
    )
    assert (models.count(1, "market"), models.count(1200, "market")) == ("1 market",
                                                                         "1,200 markets")  # fmt: skip
