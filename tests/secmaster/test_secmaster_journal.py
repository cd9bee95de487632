"""The journal is complete: changes a sync stores while NATS is out of reach wait in the
outbox and are published, once each, by the next secmaster run that reaches NATS; the
sync's summary counts what it read once."""

from __future__ import annotations

import logging
from pathlib import Path

import nats
import pytest

from _support import ROOT
from _support.secmaster_fixtures import free_port, nats_server
from ssmd.config import Overrides, ResolvedEnvironment, load_environment
from ssmd.secmaster import services, sync_environment
from ssmd.secmaster.db import Store, open_store
from ssmd.secmaster.journal import journal_stream, journal_subject
from ssmd.secmaster.sync import Syncer, SyncOptions
from ssmd.sim import ManualClock, Simulator
from ssmd.venues.kalshi.rest import RestClient

ENV = "kalshi-sim"


def environment(data_dir: Path, nats_url: str | None = None) -> ResolvedEnvironment:
    """kalshi-sim (NATS `embedded` unless `nats_url` is given) with its store in data_dir."""
    return load_environment(
        ENV, ROOT / "exchanges", Overrides(data_dir=str(data_dir), nats_url=nats_url)
    )


def outbox(data_dir: Path) -> list[tuple[str, bytes]]:
    """(msg id, payload) of every entry waiting in the store's outbox, in order."""
    with open_store(environment(data_dir)) as store:
        return [(msg_id, payload) for _, _, msg_id, payload in store.outbox(1_000_000)]


async def journal_messages(url: str) -> list[tuple[str, bytes]]:
    """(msg id, payload) of every message in the journal stream, in order."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(journal_stream(ENV))
        sub = await js.pull_subscribe(journal_subject(ENV), stream=journal_stream(ENV))
        got: list[tuple[str, bytes]] = []
        while len(got) < info.state.messages:
            for m in await sub.fetch(500, timeout=5):
                assert m.headers is not None
                got.append((m.headers["Nats-Msg-Id"], m.data))
                await m.ack()
        return got
    finally:
        await nc.close()


async def test_changes_stored_without_nats_are_journaled_once_nats_is_reachable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "ssmd.secmaster")
    clock = ManualClock()
    async with (
        Simulator(clock=clock, seed=5, rate=10, markets=150) as sim,
        RestClient(sim.rest_url, tokens_per_second=100_000.0) as rest,
    ):
        # 1. outside `ssmd up`: NATS is `embedded`, nothing to publish to
        first = await sync_environment(environment(tmp_path), rest=rest)
        assert first.changes > 0
        assert len(outbox(tmp_path)) == first.changes
        assert f"{first.changes} journal entries wait in the outbox" in caplog.text

        # 2. a NATS URL where nothing listens: the sync goes on, the entries wait
        clock.advance(1800)
        await sim.wait_idle(30)
        dead = environment(tmp_path, f"nats://127.0.0.1:{free_port()}")
        second = await sync_environment(dead, rest=rest, connect_wait=0.5)
        assert second.updated["market"] > 0
        waiting = outbox(tmp_path)
        assert len(waiting) == first.changes + second.changes

        # 3. NATS reachable: the next run publishes what waited, then its own changes
        with nats_server(tmp_path) as url:
            third = await sync_environment(environment(tmp_path, url), rest=rest)
            assert third.changes == 0
            assert outbox(tmp_path) == []
            published = await journal_messages(url)
            assert published == waiting
            assert len({msg_id for msg_id, _ in published}) == len(published)

            # 4. any later secmaster run finds nothing left to publish
            async with services(environment(tmp_path, url)):
                pass
            assert await journal_messages(url) == published


async def test_outbox_entries_older_than_the_journal_retention_are_dropped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store.open(tmp_path / "secmaster.sqlite3")
    store.migrate()
    subject = journal_subject(ENV)
    store.apply_series(
        [{"ticker": "KXOLD", "category": "Crypto"}], "sync", subject, "2020-01-01T00:00:00Z"
    )
    store.apply_series([{"ticker": "KXNEW", "category": "Crypto"}], "sync", subject)
    store.close()
    caplog.set_level(logging.WARNING, "ssmd.secmaster")
    async with services(environment(tmp_path)):
        pass
    [(msg_id, _)] = outbox(tmp_path)
    assert msg_id.startswith("secmaster:series:KXNEW:")
    assert "dropped 1 journal entries older than" in caplog.text


async def test_summary_counts_a_series_selected_twice_once(tmp_path: Path) -> None:
    env = environment(tmp_path)
    # kalshi-sim selects the series KXBTCD and the category Crypto, which holds KXBTCD
    assert "KXBTCD" in env.symbols.series and "Crypto" in env.symbols.categories
    store = open_store(env)
    try:
        async with (
            Simulator(clock=ManualClock(), seed=3, rate=10, markets=400) as sim,
            RestClient(sim.rest_url, tokens_per_second=100_000.0) as rest,
        ):
            report = await Syncer(store, rest, SyncOptions.from_symbols(env.symbols)).run()
        assert report.series == store.count("series") == report.created["series"]
    finally:
        store.close()
