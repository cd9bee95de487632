"""The store on SQLite and on PostgreSQL: migrations up and down (Kalshi rows kept through
the venue migration), diffing upserts, history, venues kept apart."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from _support.secmaster_fixtures import fresh_database, postgres_server
from ssmd.secmaster.db import Store
from ssmd.secmaster.schema import migrations

_names = itertools.count()


@pytest.fixture(scope="module")
def pg_admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with postgres_server(tmp_path_factory.mktemp("pg")) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        s = Store.open(tmp_path / "sm.sqlite3")
    else:
        admin = request.getfixturevalue("pg_admin")
        s = Store.open(fresh_database(admin, f"store{next(_names)}"))
    yield s
    s.close()


TABLES = {"series", "events", "markets", "market_history", "secmaster_outbox"}


def test_migrations_up_and_down(store: Store) -> None:
    latest = migrations(store.dialect)[-1].version
    assert store.version() == 0
    assert store.migrate() == list(range(1, latest + 1))
    assert store.tables() >= TABLES
    assert store.migrate() == []  # already there
    assert store.migrate(1) == list(range(-latest, -1))  # newest first, down to 2
    assert "secmaster_outbox" not in store.tables() and "markets" in store.tables()
    assert store.migrate(0) == [-1]
    assert store.tables() & TABLES == set()
    assert store.version() == 0
    assert store.migrate() == list(range(1, latest + 1))  # and up again, cleanly
    store.check_schema()


def _market(ticker: str, **kw: object) -> dict[str, object]:
    row: dict[str, object] = {
        "ticker": ticker,
        "event_ticker": ticker.rsplit("-", 1)[0],
        "series_ticker": ticker.split("-", 1)[0],
        "title": "t",
        "status": "open",
        "status_text": "active",
        "close_time": "2026-07-20T21:00:00Z",
        "last_price_e6": 340_000,
    }
    row.update(kw)
    return row


def test_upsert_diffs_and_records_history(store: Store) -> None:
    store.migrate()
    long_ticker = "KXMENTION-26JUL20-" + "A.B" * 50  # 150+ characters with dots
    changes = store.apply_markets(
        [_market("KXA-1-X"), _market(long_ticker)], journal="e.journal.secmaster"
    )
    assert [c.created for c in changes] == [True, True]
    assert store.count("market_history") == 2
    assert store.count("secmaster_outbox") == 2
    # the same rows again: nothing written
    assert store.apply_markets([_market("KXA-1-X"), _market(long_ticker)], journal="x") == []
    assert store.count("market_history") == 2 and store.count("secmaster_outbox") == 2
    # a quote change alone: stored, no history, no journal
    assert store.apply_markets([_market("KXA-1-X", last_price_e6=350_000)], journal="x") == []
    assert store.market("KXA-1-X", "kalshi")["last_price_e6"] == 350_000  # type: ignore[index]
    assert store.count("market_history") == 2
    # a reference change: one history row per field
    ch = store.apply_markets(
        [
            _market(
                "KXA-1-X",
                status="closed",
                status_text="closed",
                close_time="2026-07-20T22:00:00Z",
            )
        ],
        "sync",
    )
    assert ch[0].fields["status"] == ("open", "closed")
    hist = store.history("KXA-1-X", "kalshi")
    assert [(h["field"], h["old_value"], h["new_value"], h["source"]) for h in hist] == [
        ("status", None, "open", "sync"),
        ("status", "open", "closed", "sync"),
        ("status_text", "active", "closed", "sync"),
        ("close_time", "2026-07-20T21:00:00Z", "2026-07-20T22:00:00Z", "sync"),
    ]
    assert store.market(long_ticker, "kalshi")["ticker"] == long_ticker  # type: ignore[index]


def test_settled_market_is_not_moved_back_by_a_lagging_source(store: Store) -> None:
    store.migrate()
    store.apply_markets([_market("KXB-1-Y", status="settled", status_text="settled", result="yes")])
    assert (
        store.apply_markets([_market("KXB-1-Y", status="determined", status_text="determined")])
        == []
    )
    assert store.market("KXB-1-Y", "kalshi")["status"] == "settled"  # type: ignore[index]
    assert store.regressions_ignored == 1


def test_duplicates_within_a_batch_keep_the_last(store: Store) -> None:
    store.migrate()
    changes = store.apply_markets(
        [_market("KXC-1-Z", title="first"), _market("KXC-1-Z", title="second")]
    )
    assert len(changes) == 1
    assert store.market("KXC-1-Z", "kalshi")["title"] == "second"  # type: ignore[index]


def test_batch_beyond_the_parameter_limit(store: Store) -> None:
    """3,000 markets x ~47 columns = 140k values in one call: chunked, never one statement."""
    store.migrate()
    rows = [_market(f"KXBIG-{i // 10}-{i}", yes_sub_title=f"s{i}") for i in range(3000)]
    assert len(store.apply_markets(rows)) == 3000
    assert store.count("markets") == 3000
    assert store.apply_markets(rows) == []
    assert len(list(store.markets(series=["KXBIG"], statuses=["open"]))) == 3000
    assert [r["ticker"] for r in store.markets(search="s2999")] == ["KXBIG-299-2999"]


def test_the_same_ticker_at_two_venues_is_two_markets(store: Store) -> None:
    store.migrate()
    store.apply_markets([{"ticker": "BTC/USD", "status": "open", "title": "kalshi's"}])
    created = store.apply_markets(
        [
            {"ticker": "ETH/USD", "venue": "kraken", "status": "open"},
            {"ticker": "BTC/USD", "venue": "kraken", "status": "open", "title": "kraken's"},
        ]
    )
    assert [(c.key, c.created, c.state["venue"]) for c in created] == [
        ("ETH/USD", True, "kraken"),
        ("BTC/USD", True, "kraken"),
    ]
    assert store.count("markets") == 3
    assert store.market("BTC/USD", "kalshi")["title"] == "kalshi's"  # type: ignore[index]
    assert store.market("BTC/USD", "kraken")["title"] == "kraken's"  # type: ignore[index]
    assert store.market("ETH/USD", "kalshi") is None
    assert [r["ticker"] for r in store.markets(venue="kraken")] == ["BTC/USD", "ETH/USD"]
    # A change to one venue's market leaves the other's alone, and its history too.
    (closed,) = store.apply_markets([{"ticker": "BTC/USD", "venue": "kraken", "status": "closed"}])
    assert closed.fields == {"status": ("open", "closed")}
    assert closed.payload()["venue"] == "kraken"
    assert store.market("BTC/USD", "kalshi")["status"] == "open"  # type: ignore[index]
    kraken = [(h["field"], h["new_value"]) for h in store.history("BTC/USD", "kraken")]
    assert kraken == [("status", "open"), ("status", "closed")]
    assert [h["new_value"] for h in store.history("BTC/USD", "kalshi")] == ["open"]


def test_the_venue_key_migration_keeps_rows_ids_and_history(store: Store) -> None:
    store.migrate(4)
    store.execute(
        "INSERT INTO markets (ticker, status, title, first_seen_at, updated_at) "
        "VALUES ('BTC/USD', 'open', 'before', 't', 't')"
    )
    store.execute(
        "INSERT INTO market_history (ticker, field, old_value, new_value, changed_at, source) "
        "VALUES ('BTC/USD', 'status', NULL, 'open', 't', 'sync')"
    )
    (before,) = store.query("SELECT id FROM markets WHERE ticker = 'BTC/USD'")
    assert store.migrate() == [5]
    row = store.market("BTC/USD", "kalshi")
    assert row is not None and row["title"] == "before"
    assert store.query("SELECT id FROM markets WHERE ticker = 'BTC/USD'")[0][0] == before[0]
    assert [h["new_value"] for h in store.history("BTC/USD", "kalshi")] == ["open"]
    assert store.migrate(4) == [-5]  # and back, while tickers are unique
    assert store.migrate() == [5]
    store.apply_markets([{"ticker": "BTC/USD", "venue": "kraken", "status": "open"}])
    ids = [r[0] for r in store.query("SELECT id FROM markets WHERE ticker = 'BTC/USD' ORDER BY id")]
    assert ids[0] == before[0] and ids[1] > ids[0]  # new rows continue the ids


def test_the_venue_migration_keeps_kalshi_rows_both_ways(store: Store) -> None:
    store.migrate(3)
    store.execute(
        "INSERT INTO markets (ticker, kalshi_id, status, kalshi_status, kalshi_updated_time, "
        "first_seen_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        ("KXB-1", "id-1", "open", "active", "2026-01-01T00:00:00Z", "t", "t"),
    )
    assert store.migrate() == [4, 5]
    row = store.market("KXB-1", "kalshi")
    assert row is not None
    assert (row["venue"], row["venue_id"], row["status_text"], row["venue_updated_time"]) == (
        "kalshi",
        "id-1",
        "active",
        "2026-01-01T00:00:00Z",
    )
    assert store.migrate(3) == [-5, -4]
    back = store.query("SELECT kalshi_id, kalshi_status FROM markets WHERE ticker = 'KXB-1'")
    assert [tuple(r) for r in back] == [("id-1", "active")]
    assert store.migrate() == [4, 5]
