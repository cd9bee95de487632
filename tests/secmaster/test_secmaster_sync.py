"""Sync against the simulator: pagination, idempotency, 429 bursts, missing events,
duplicates, unknown statuses, string settlement values; SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from _support.secmaster_fixtures import fresh_database, postgres_server
from ssmd.secmaster.db import Store
from ssmd.secmaster.status import map_status
from ssmd.secmaster.sync import Syncer, SyncOptions
from ssmd.sim import Fault, FaultKind, ManualClock, Scenario, Simulator
from ssmd.venues.kalshi.rest import RestClient

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
        s = Store.open(fresh_database(request.getfixturevalue("pg_admin"), f"sync{next(_names)}"))
    s.migrate()
    yield s
    s.close()


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(clock=ManualClock(), seed=3, rate=10, markets=400) as s:
        yield s


def rest_for(sim: Simulator, **kw: Any) -> RestClient:
    kw.setdefault("tokens_per_second", 100_000.0)
    return RestClient(sim.rest_url, backoff_base=0.01, backoff_cap=0.2, **kw)


def rest_view(sim: Simulator) -> dict[str, tuple[str, str | None, str]]:
    """ticker -> (ssmd status, event ticker, category), as the simulator serves it."""
    u = sim.universe
    return {
        t: (map_status(sim.rest.status_of(m)), m.event_ticker, u.series[m.series_ticker].category)
        for t, m in u.markets.items()
    }


def store_view(store: Store) -> dict[str, tuple[str, str | None, str]]:
    return {
        str(r["ticker"]): (str(r["status"]), r["event_ticker"], r["category"])  # type: ignore[misc]
        for r in store.markets()
    }


async def test_full_sync_over_many_pages_then_idempotent(sim: Simulator, store: Store) -> None:
    async with rest_for(sim) as rest:
        report = await Syncer(store, rest, SyncOptions(market_page=7, event_page=5)).run()
        assert report.pages > 400 // 7
        assert store_view(store) == rest_view(sim)
        assert store.count("events") == len(sim.universe.events)
        assert store.count("series") == len(sim.universe.series)
        assert report.created["market"] == len(sim.universe.markets)
        history = store.count("market_history")
        again = await Syncer(store, rest, SyncOptions(market_page=7, event_page=5)).run()
    assert again.changes == 0 and again.history_rows == 0
    assert store.count("market_history") == history


async def test_selection_sync_and_reconcile(sim: Simulator, store: Store) -> None:
    opts = SyncOptions(series=("KXBTCD",), categories=("Sports",), statuses=("open",))
    async with rest_for(sim) as rest:
        await Syncer(store, rest, opts).run()
        want = {
            t: v
            for t, v in rest_view(sim).items()
            if (t.startswith("KXBTCD-") or v[2] == "Sports")
            and v[0] in ("open", "halted", "initialized")
        }
        assert store_view(store) == want
        # time passes: markets close, are determined, settle; the open pass no longer lists
        # them and the reconcile pass re-reads them by ticker
        now = sim.clock.now()
        sim.clock.advance((now // 3600 + 1) * 3600 + 30 - now)  # the hour's ladder is determined
        await sim.wait_idle(30)
        report = await Syncer(store, rest, opts).run()
    assert report.reconciled >= 8 and report.vanished == 0
    view = rest_view(sim)
    for t, (status, _, _) in store_view(store).items():
        if t in view:
            assert status == view[t][0], t


async def test_429_bursts_are_retried(store: Store) -> None:
    faults = [Fault(FaultKind.REST_429, at=0, count=6)]
    async with Simulator(
        clock=ManualClock(),
        seed=4,
        rate=10,
        markets=120,
        scenario=Scenario(faults=faults),
        rest_tokens_per_s=400.0,
        rest_bucket=40.0,
    ) as sim:
        sim.inject(faults[0])
        async with RestClient(
            sim.rest_url,
            tokens_per_second=100_000.0,
            backoff_base=0.01,
            backoff_cap=0.1,
            max_retries=20,
        ) as rest:
            report = await Syncer(store, rest, SyncOptions(market_page=10)).run()
        assert sim.truth.rest_429 >= 6  # the burst, plus the bucket's own refusals
        assert rest.throttled == sim.truth.rest_429
        assert store_view(store) == rest_view(sim)
        assert report.created["market"] == len(sim.universe.markets)


async def test_market_whose_event_is_missing(sim: Simulator, store: Store) -> None:
    victim = next(m for m in sim.universe.markets.values() if m.series_ticker == "KXFED")
    del sim.universe.events[victim.event_ticker]
    async with rest_for(sim) as rest:
        report = await Syncer(store, rest, SyncOptions()).run()
    assert report.missing_events == 1
    row = store.market(victim.ticker, "kalshi")
    assert row is not None and row["series_ticker"] == "KXFED" and row["category"] == "Economics"
    assert store.count("markets") == len(sim.universe.markets)


class Mangled:
    """The simulator's REST answers with every market listed twice in its page, and one
    market carrying a status word nobody documented."""

    def __init__(self, rest: RestClient, odd: str, word: str) -> None:
        self.rest, self.odd, self.word = rest, odd, word

    async def get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        body = await self.rest.get(path, params)
        if path == "/markets":
            out = []
            for m in body["markets"]:
                if m["ticker"] == self.odd:
                    m = {**m, "status": self.word}
                out += [m, dict(m)]
            body["markets"] = out
        return body


async def test_duplicates_in_a_page_and_an_unknown_status(
    sim: Simulator, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    odd = sorted(sim.universe.markets)[5]
    word = f"frozen_by_exchange_{store.dialect}"  # warned once per word and process
    async with rest_for(sim) as rest:
        report = await Syncer(store, Mangled(rest, odd, word), SyncOptions(market_page=50)).run()
    assert report.markets == 2 * len(sim.universe.markets)
    assert store.count("markets") == len(sim.universe.markets)
    assert report.created["market"] == len(sim.universe.markets)
    row = store.market(odd, "kalshi")
    assert row is not None and (row["status"], row["status_text"]) == (
        "unknown",
        word,
    )
    assert word in caplog.text


async def test_settlement_with_a_string_value(sim: Simulator, store: Store) -> None:
    async with rest_for(sim) as rest:
        await Syncer(store, rest, SyncOptions()).run()
        sim.clock.advance(1800)
        await sim.wait_idle(30)
        await Syncer(store, rest, SyncOptions()).run()
    settled = [m for m in sim.universe.markets.values() if m.status in ("determined", "settled")]
    assert settled
    for m in settled:
        row = store.market(m.ticker, "kalshi")
        assert row is not None
        assert row["status"] == m.status and row["result"] == m.result
        assert row["settlement_value_e6"] == (1_000_000 if m.result == "yes" else 0)
        fields = [h["field"] for h in store.history(m.ticker, "kalshi")]
        assert "status" in fields and "result" in fields
