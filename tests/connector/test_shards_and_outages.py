"""Shards (cap, add/delete without disturbing others), dotted tickers, empty selection,
a NATS restart mid-capture, the spool, and the health/metrics endpoints."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson

from _support.connfix import (
    check_books,
    check_exactly_once,
    drive,
    events,
    manual_sim,
    open_markets,
    reselect,
    running,
    sent,
    settings_for,
    settled,
    stream_messages,
)
from ssmd.bus import subjects
from ssmd.config.models.environment import Symbols
from ssmd.connector.capture_queue import CaptureQueue, Item
from ssmd.sim import Scenario
from ssmd.testing import until
from ssmd.testing.connector import PREFIX, streaming, tickers_symbols
from ssmd.testing.nats import nats_server


async def test_cap_forces_new_shards_and_delete_markets_spares_the_rest(tmp_path: Path) -> None:
    sim, _ = manual_sim(seed=11)
    async with nats_server(tmp_path / "nats") as srv, sim:
        tickers = open_markets(sim, 7)
        settings = settings_for(
            sim, srv, tmp_path, symbols=tickers_symbols(tickers), markets_per_connection=3
        )
        async with running(settings) as conn:
            await until(lambda: streaming(conn, 7))
            sizes = sorted(len(s.markets) for n, s in conn.shards.shards.items() if n > 0)
            assert sizes == [1, 3, 3]
            await drive(sim, conn, 2)
            shard = conn.shards.shards[1]
            gone = sorted(shard.markets)[0]
            conn_id = shard.conn_id
            await reselect(conn, drop=[gone])
            await until(lambda: gone not in conn.shards.subscribed, 10, "the market removed")
            simconn = next(
                c
                for c in sim.connections.values()
                if "orderbook_delta" in c.by_channel
                and gone not in (c.by_channel["orderbook_delta"].tickers or set())
                and c.by_channel["orderbook_delta"].tickers == shard.markets
            )
            assert simconn.by_channel["trade"].tickers == shard.markets
            assert shard.conn_id == conn_id and shard.reconnects == 0
            await drive(sim, conn, 2)
        msgs = await stream_messages(srv.url)
    check_exactly_once(sim, msgs)
    check_books(sim, msgs, [t for t in tickers if t != gone])
    assert events(msgs, "unsubscribed")[0]["tickers"] == [gone]


async def test_dotted_ticker_subjects_round_trip(tmp_path: Path) -> None:
    sim, _ = manual_sim(seed=12)
    async with nats_server(tmp_path / "nats") as srv, sim:
        tickers = open_markets(sim, 2, dotted=True)
        assert all("." in t for t in tickers)
        settings = settings_for(sim, srv, tmp_path, symbols=tickers_symbols(tickers))
        async with running(settings) as conn:
            await until(lambda: streaming(conn, 2))
            await drive(sim, conn, 3)
        msgs = await stream_messages(srv.url)
    norm = [m for m in msgs if m.subject.startswith(f"{PREFIX}.orderbook.")]
    assert norm
    for m in norm:
        assert len(m.subject.split(".")) == 4
        assert subjects.unescape_token(m.subject.split(".")[3]) in tickers
    check_books(sim, msgs, tickers)


async def test_empty_selection_at_start_runs_and_is_healthy(tmp_path: Path) -> None:
    sim, _ = manual_sim(seed=13)
    async with nats_server(tmp_path / "nats") as srv, sim:
        settings = settings_for(
            sim, srv, tmp_path, symbols=Symbols(series=["NOSUCHSERIES"]), health_port=0
        )
        async with running(settings) as conn:
            await until(lambda: streaming(conn, 0))
            assert conn.health_server is not None
            port = conn.health_server.port

            async def selected() -> dict[str, Any] | None:
                """/health once the (empty) selection is read: degraded until then."""
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                body = (await reader.read()).split(b"\r\n\r\n", 1)[1]
                writer.close()
                await writer.wait_closed()
                health: dict[str, Any] = orjson.loads(body)
                return health if health["selection"].get("selected") else None

            health = await until(selected, what="the selection read")
            assert health["status"] == "ok" and health["markets"] == 0
            assert health["shards"][0]["state"] == "streaming"
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /metrics HTTP/1.1\r\n\r\n")
            text = (await reader.read()).decode()
            writer.close()
            await writer.wait_closed()
            for name in (
                "ssmd_connector_messages_received_total",
                "ssmd_connector_messages_published_total",
                "ssmd_connector_lag_seconds",
                "ssmd_connector_shards",
                "ssmd_connector_markets_subscribed",
            ):
                assert f"# TYPE {name}" in text


async def test_nats_restart_mid_capture_loses_nothing(tmp_path: Path) -> None:
    sim, clock = manual_sim(seed=14)
    async with nats_server(tmp_path / "nats") as srv, sim:
        tickers = open_markets(sim, 6)
        settings = settings_for(
            sim, srv, tmp_path, symbols=tickers_symbols(tickers), memory_bytes=20_000
        )
        async with running(settings) as conn:
            await until(lambda: streaming(conn, 6))
            await drive(sim, conn, 2)
            srv.stop()
            for _ in range(8):  # frames arrive while NATS is down: memory, then the spool
                clock.advance(0.5)
                await sim.wait_idle()
            await until(lambda: conn.frames_in >= sent(sim), 10, "frames read")
            await until(lambda: conn.queue.spool_used > 0, 10, "spooling")
            await srv.start()
            await until(lambda: settled(conn, sim), 30, "drained after restart")
            await drive(sim, conn, 2)
        msgs = await stream_messages(srv.url)
    check_exactly_once(sim, msgs)
    check_books(sim, msgs, tickers)
    assert any("spool" in e["reason"] for e in events(msgs, "buffer_full"))


async def test_spool_keeps_order_drops_with_count_and_survives_restart(tmp_path: Path) -> None:
    path = tmp_path / "q.spool"
    q = CaptureQueue(path, memory_bytes=10 * 74, spool_bytes=5 * 60)
    results = [q.put(Item(1, i, i, b"x" * 10)) for i in range(20)]
    assert results.count(False) == q.dropped > 0
    assert [s for s, _ in q.transitions] == ["spool", "dropping"]
    q.close()
    again = CaptureQueue(path)  # a crash leaves the spool; the next start reads it back
    got = []
    while not again.empty():
        got.extend(it.frame_no for it in await again.get_batch(3, 0))
    assert got == sorted(got) and got[0] == 10 and not path.exists()


async def test_a_read_queued_at_once_follows_the_same_policy(tmp_path: Path) -> None:
    """A read's frames go in with one call: in memory while they fit, else each as `put`
    would (spooled in order, then dropped and counted), the same as one by one."""
    one, many = (
        CaptureQueue(tmp_path / f"{name}.spool", memory_bytes=10 * 74, spool_bytes=5 * 60)
        for name in ("one", "many")
    )
    reads = [
        [Item(1, i, i, b"x" * 10) for i in range(start, start + 4)] for start in range(0, 20, 4)
    ]
    dropped = [many.put_many(reads[0])]
    assert dropped == [0] and many.memory_used == 4 * 74  # the first read, whole, in memory
    dropped += [many.put_many(read) for read in reads[1:]]
    for read in reads:
        for item in read:
            one.put(item)
    assert sum(dropped) == many.dropped == one.dropped > 0
    assert (
        [s for s, _ in many.transitions] == [s for s, _ in one.transitions] == ["spool", "dropping"]
    )
    got = {}
    for name, q in (("one", one), ("many", many)):
        got[name] = []
        while not q.empty():
            got[name].extend(it.frame_no for it in await q.get_batch(3, 0))
    assert got["many"] == got["one"] == sorted(got["one"])


async def test_market_limit_error_26_moves_markets_to_other_shards(tmp_path: Path) -> None:
    """The exchange allows 3 markets per subscription; the connector is configured for 200
    per connection: every market still ends up subscribed, none on a sid above the cap."""
    sim, _ = manual_sim(seed=15, scenario=Scenario(market_cap=3))
    async with nats_server(tmp_path / "nats") as srv, sim:
        tickers = open_markets(sim, 8)
        settings = settings_for(sim, srv, tmp_path, symbols=tickers_symbols(tickers))
        async with running(settings) as conn:
            await until(lambda: streaming(conn, 8), 20)
            await drive(sim, conn, 1)
            # Ground truth: what each simulator connection is subscribed to, per channel.
            live = [c for c in sim.connections.values() if not c.closed]
            per_channel: dict[str, list[str]] = {}
            for c in live:
                for ch, sub in c.by_channel.items():
                    if sub.tickers is not None:
                        assert len(sub.tickers) <= 3, (ch, sub.tickers)
                        per_channel.setdefault(ch, []).extend(sub.tickers)
            for ch in ("orderbook_delta", "trade", "ticker"):
                assert sorted(per_channel[ch]) == sorted(tickers), ch  # each exactly once
            assert conn.shards.cap == 3
            sizes = sorted(len(s.subscribed) for n, s in conn.shards.shards.items() if n > 0)
            assert sizes == [2, 3, 3]
            # A market selected later goes to the shard with room, not above the cap.
            extra = open_markets(sim, 9)[8]
            await reselect(conn, add=[extra])
            await until(lambda: streaming(conn, 9), 10, "extra market")
            assert sorted(len(s.subscribed) for n, s in conn.shards.shards.items() if n > 0) == [
                3,
                3,
                3,
            ]
            await drive(sim, conn, 2)
        msgs = await stream_messages(srv.url)
    check_exactly_once(sim, msgs)
    check_books(sim, msgs, [*tickers, extra])
    assert [f for f in sim.truth.faults if f.kind == "market_cap"]
    assert any("error 26" in e["reason"] for e in events(msgs, "error"))
