"""Trading day records: in the secmaster's database, on the journal, in Redis."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from _support.secmaster_fixtures import nats_server, redis_server
from ssmd.ops.days import Days, cache, publish, redis_key
from ssmd.secmaster.db import Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store.open(tmp_path / "secmaster.sqlite3")
    s.migrate()
    return s


def test_a_day_is_opened_once_per_startup_and_numbered_within_its_date(store: Store) -> None:
    days = Days(store, "kalshi-sim")
    first = days.open("2026-12-03", "startup-run-1", 1)
    assert first["id"] == "kalshi-sim:2026-12-03" and first["state"] == "started"
    assert days.open("2026-12-03", "startup-run-1", 99) == first  # a retried activity
    assert days.open("2026-12-03", "startup-run-2", 99) == first  # a startup while it runs
    assert days.current() == first
    ended = days.update(first["id"], state="ended", records=10, gaps=1, verification={"ok": True})
    assert ended["records"] == 10 and ended["verification"] == {"ok": True}
    assert days.current() is None
    second = days.open("2026-12-03", "startup-run-3", 11)
    assert second["id"] == "kalshi-sim:2026-12-03#2" and second["first_seq"] == 11
    assert [d["id"] for d in days.history()] == [second["id"], first["id"]]
    assert Days(store, "other").history() == []  # one environment's days only
    with pytest.raises(ValueError, match="not a trading day field"):
        days.update(first["id"], id="x")


def test_each_further_venues_first_sequence_is_kept_with_its_day(store: Store) -> None:
    days = Days(store, "multi-sim")
    day = days.open("2026-12-03", "startup-run-1", 5, {"kraken": 7, "polymarket": 1})
    assert day["first_seq"] == 5  # the environment's own feed
    assert days.venue_seqs(day["id"]) == {"kraken": 7, "polymarket": 1}
    # A retried startup finds the day: nothing is written again.
    assert days.open("2026-12-03", "startup-run-1", 9, {"kraken": 9}) == day
    assert days.venue_seqs(day["id"]) == {"kraken": 7, "polymarket": 1}
    days.update(day["id"], state="ended")
    second = days.open("2026-12-03", "startup-run-2", 50)
    assert days.venue_seqs(second["id"]) == {}


async def test_each_change_goes_to_the_journal_once_and_the_current_day_to_redis(
    tmp_path: Path, store: Store
) -> None:
    import nats
    import redis.asyncio as aioredis

    days = Days(store, "kalshi-sim")
    day = days.open("2026-12-03", "run-1", 1)
    with nats_server(tmp_path) as url, redis_server(tmp_path) as redis_url:
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            await publish(js, "kalshi-sim", day)
            await publish(js, "kalshi-sim", day)  # a retry: the same message id
            ended = days.update(day["id"], state="ended", records=5)
            await publish(js, "kalshi-sim", ended)
            info = await js.stream_info("SSMD_KALSHI_SIM_JOURNAL")
            assert info.state.messages == 2
            last = await js.get_last_msg("SSMD_KALSHI_SIM_JOURNAL", "kalshi-sim.journal.day")
            assert orjson.loads(last.data)["state"] == "ended"
        finally:
            await nc.close()
        await cache(redis_url, "kalshi-sim", ended)
        r = aioredis.Redis.from_url(redis_url)
        try:
            stored = await r.hgetall(redis_key("kalshi-sim"))
        finally:
            await r.aclose()
        assert json.loads(stored[b"state"]) == "ended" and json.loads(stored[b"records"]) == 5
