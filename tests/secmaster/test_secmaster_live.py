"""Lifecycle records and the sweep; the Redis cache and the NATS journal of a sync."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nats
import orjson
import redis.asyncio as aioredis

from _support.secmaster_fixtures import nats_server, redis_server
from ssmd import core
from ssmd.secmaster.cache import Cache
from ssmd.secmaster.db import Store
from ssmd.secmaster.journal import Journal, journal_stream, journal_subject
from ssmd.secmaster.lifecycle import Live, StatusMsg
from ssmd.secmaster.model import iso_from_seconds
from ssmd.secmaster.service import Services
from ssmd.secmaster.sync import Syncer, SyncOptions
from ssmd.sim import ManualClock, Simulator
from ssmd.venues.kalshi.rest import RestClient

T = "KXBTC15M-26JUL201045-45"
OPEN, CLOSE = 1784557800, 1784558700


def frames() -> list[bytes]:
    msgs: list[dict[str, Any]] = [
        {
            "type": "event_lifecycle",
            "sid": 5,
            "seq": 1,
            "msg": {
                "event_ticker": "KXBTC15M-26JUL201045",
                "title": "BTC",
                "subtitle": "Jul 20",
                "collateral_return_type": "",
                "series_ticker": "KXBTC15M",
                "strike_date": CLOSE,
            },
        },
        {
            "type": "market_lifecycle_v2",
            "sid": 5,
            "seq": 2,
            "msg": {
                "market_ticker": T,
                "event_type": "created",
                "open_ts": OPEN,
                "close_ts": CLOSE,
                "additional_metadata": {
                    "title": "BTC 15 min",
                    "yes_sub_title": "Target Price: $118,412.55",
                    "event_ticker": "KXBTC15M-26JUL201045",
                    "strike_type": "greater_or_equal",
                    "floor_strike": 118412.55,
                },
            },
        },
    ]
    return [orjson.dumps(m) for m in msgs]


def later(event: dict[str, Any]) -> list[dict[str, Any]]:
    frame = orjson.dumps(
        {"type": "market_lifecycle_v2", "sid": 5, "seq": 9, "msg": {"market_ticker": T, **event}}
    )
    return core.decode_records(core.normalize_kalshi([frame], [1], 1).data)


async def test_lifecycle_and_sweep(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s.sqlite3")
    store.migrate()
    store.apply_series([{"ticker": "KXBTC15M", "category": "Crypto", "title": "BTC"}])
    now = [OPEN - 3600.0]
    sent: list[StatusMsg] = []

    async def publish(msgs: list[StatusMsg]) -> None:
        sent.extend(msgs)

    live = Live(store, "kalshi-test", "kalshi", publish_status=publish, clock=lambda: now[0])
    batch = core.normalize_kalshi(frames(), [1, 2], 1)
    await live.apply_records(core.decode_records(batch.data))
    row = store.market(T, "kalshi")
    assert row is not None
    assert (row["status"], row["category"], row["floor_strike"]) == (
        "initialized",
        "Crypto",
        "118412.55",
    )
    assert row["open_time"] == iso_from_seconds(OPEN) and row["close_time"] == iso_from_seconds(
        CLOSE
    )
    assert store.event("KXBTC15M-26JUL201045") is not None
    assert await live.sweep() == []  # not yet
    now[0] = OPEN + 1  # Kalshi opens it silently
    assert [c.fields["status"] for c in await live.sweep()] == [("initialized", "open")]
    await live.apply_records(later({"event_type": "deactivated", "is_deactivated": True}))
    await live.apply_records(later({"event_type": "activated"}))
    await live.apply_records(later({"event_type": "close_date_updated", "close_ts": CLOSE + 3600}))
    now[0] = CLOSE + 1  # the old close time: still open
    assert await live.sweep() == []
    now[0] = CLOSE + 3601
    assert [c.fields["status"] for c in await live.sweep()] == [("open", "closed")]
    await live.apply_records(
        later(
            {
                "event_type": "determined",
                "result": "yes",
                "settlement_value": "1.0000",
                "determination_ts": CLOSE + 3606,
            }
        )
    )
    await live.apply_records(later({"event_type": "settled", "settled_ts": CLOSE + 3666}))
    await live.apply_records(later({"event_type": "activated"}))  # late and out of order: ignored
    row = store.market(T, "kalshi")
    assert row is not None
    assert (row["status"], row["result"], row["settlement_value_e6"]) == (
        "settled",
        "yes",
        1_000_000,
    )
    statuses = [
        (h["new_value"], h["source"]) for h in store.history(T, "kalshi") if h["field"] == "status"
    ]
    assert statuses == [
        ("initialized", "lifecycle"),
        ("open", "sweep"),
        ("halted", "lifecycle"),
        ("open", "lifecycle"),
        ("closed", "sweep"),
        ("determined", "lifecycle"),
        ("settled", "lifecycle"),
    ]
    decoded = [core.decode_records(data)[0] for _, data, _ in sent]
    assert [d["status"] for d in decoded] == [s for s, _ in statuses]
    assert {subject for subject, _, _ in sent} == {f"kalshi-test.kalshi.status.{T}"}
    assert len({msg_id for _, _, msg_id in sent}) == len(sent)
    store.close()


async def test_sync_feeds_redis_and_the_journal(tmp_path: Path) -> None:
    env = "kalshi-test"
    with redis_server(tmp_path) as redis_url, nats_server(tmp_path) as nats_url:
        nc = await nats.connect(nats_url)
        r = aioredis.Redis.from_url(redis_url)
        store = Store.open(tmp_path / "s.sqlite3")
        store.migrate()
        journal = Journal(nc.jetstream(), env)
        await journal.ensure_stream()
        cache = Cache(r, env, "kalshi")
        await cache.ensure(store)
        svc = Services(store, journal, cache)
        try:
            async with (
                Simulator(clock=ManualClock(), seed=5, rate=10, markets=150) as sim,
                RestClient(sim.rest_url, tokens_per_second=100_000.0) as rest,
            ):
                report = await Syncer(
                    store,
                    rest,
                    SyncOptions(),
                    journal_subject=journal_subject(env),
                    on_changes=svc.changed,
                ).run()
                info = await nc.jetstream().stream_info(journal_stream(env))
                assert info.state.messages == report.changes
                assert store.count("secmaster_outbox") == 0
                writes = cache.writes
                again = await Syncer(
                    store,
                    rest,
                    SyncOptions(),
                    journal_subject=journal_subject(env),
                    on_changes=svc.changed,
                ).run()
                assert again.changes == 0 and cache.writes == writes
                info = await nc.jetstream().stream_info(journal_stream(env))
                assert info.state.messages == report.changes
                u = sim.universe
                for t, m in u.markets.items():
                    h = await cache.market(t)
                    assert h["status"] == store.market(t, "kalshi")["status"]  # type: ignore[index]
                    assert h["category"] == u.series[m.series_ticker].category
                open_now = {str(x["ticker"]) for x in store.markets(statuses=["open"])}
                assert await cache.tickers(status="open") == open_now
                sports = {t for t, m in u.markets.items() if m.series_ticker == "KXNBAGAME"}
                assert await cache.tickers(category="Sports") == sports
                # a status change moves the ticker between sets and is journaled
                sim.clock.advance(1800)
                await sim.wait_idle(30)
                third = await Syncer(
                    store,
                    rest,
                    SyncOptions(),
                    journal_subject=journal_subject(env),
                    on_changes=svc.changed,
                ).run()
                assert third.updated["market"] > 0
                assert await cache.tickers(status="open") == {
                    str(x["ticker"]) for x in store.markets(statuses=["open"])
                }
                assert await cache.tickers(status="settled") == {
                    str(x["ticker"]) for x in store.markets(statuses=["settled"])
                }
            sub = await nc.jetstream().pull_subscribe(
                journal_subject(env), stream=journal_stream(env)
            )
            msgs = await sub.fetch(5, timeout=5)
            first = orjson.loads(msgs[0].data)
            assert first["kind"] == "series" and first["action"] == "created"
            assert msgs[0].headers and msgs[0].headers["Nats-Msg-Id"].startswith(
                "secmaster:series:"
            )
        finally:
            store.close()
            await r.aclose()
            await nc.close()
