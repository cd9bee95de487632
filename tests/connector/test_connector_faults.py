"""Each simulator fault, and what the stream holds afterwards (exactly once, exact books, events)."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import orjson
import pytest

from _support.connfix import (
    check_books,
    check_exactly_once,
    drive,
    errors,
    events,
    manual_sim,
    open_markets,
    running,
    settings_for,
    stream_messages,
)
from ssmd import core
from ssmd.connector.runner import Connector, check_frame_room
from ssmd.exceptions import AuthenticationError, ConfigError
from ssmd.sim import Fault, FaultKind, Scenario, Simulator
from ssmd.testing import until
from ssmd.testing.connector import streaming, tickers_symbols
from ssmd.testing.nats import nats_server


def market_conn(sim: Simulator, conn: Connector, shard: int = 1) -> int:
    """The simulator's connection number serving a connector shard (the newest with data subs)."""
    return max(n for n, c in sim.connections.items() if "orderbook_delta" in c.by_channel)


def received(conn: Connector, kind: str) -> float:
    """Frames of one type the connector counted as received."""
    labels = {"feed": "kalshi", "type": kind}
    return (
        conn.metrics.registry.get_sample_value("ssmd_connector_messages_received_total", labels)
        or 0.0
    )


@pytest.mark.parametrize("kind", [FaultKind.DISCONNECT, FaultKind.STALL])
async def test_dead_connection_reconnects_resubscribes_and_loses_nothing(
    tmp_path: Path, kind: FaultKind
) -> None:
    sim, _ = manual_sim(seed=5)
    async with nats_server(tmp_path / "nats") as srv, sim:
        tickers = open_markets(sim, 6)
        settings = settings_for(sim, srv, tmp_path, symbols=tickers_symbols(tickers))
        async with running(settings) as conn:
            await until(lambda: streaming(conn, 6))
            await drive(sim, conn, 3)
            shard = conn.shards.shards[1]
            before, old_conn = set(shard.subscribed), shard.conn_id
            sim.inject(Fault(kind, at=0, connection=market_conn(sim, conn)))
            await until(lambda: shard.conn_id != old_conn and streaming(conn, 6), 20, "reconnect")
            assert shard.subscribed == before
            assert conn.shards.shards[0].reconnects == 0  # the other shard never noticed
            await drive(sim, conn, 3)
            live = {s.conn_id for s in conn.shards.shards.values()}
            tracked = len(conn.pipeline.seq)
        msgs = await stream_messages(srv.url)
    assert len(conn.pipeline.seq) == 0  # the stop closed every connection
    # The dead connection's trade/lifecycle sequence state was dropped: what was tracked
    # is exactly the sequenced (conn, sid) pairs of the live connections.
    seen = {
        (r["conn_id"], r["sid"])
        for m in msgs
        if m.subject.startswith(("kalshi-sim.kalshi.trade.", "kalshi-sim.kalshi.lifecycle."))
        for r in core.decode_records(m.data)
    }
    assert any(c == old_conn for c, _ in seen)
    assert tracked == len({(c, s) for c, s in seen if c in live})
    check_exactly_once(sim, msgs)
    check_books(sim, msgs, tickers)
    assert not events(msgs, "gap")
    # The fault's, and at the end the stop's (one per shard).
    (ev,) = [e for e in events(msgs, "disconnected") if e["reason"] != "connector stopping"]
    assert ev["duration_ns"] > 0 and sorted(ev["tickers"]) == sorted(tickers)
    stopping = events(msgs, "disconnected")[1:]
    assert sorted(e["shard"] for e in stopping) == [0, 1]
    assert {e["conn_id"] for e in stopping} == live
    if kind is FaultKind.STALL:
        assert "no frame and no pong" in ev["reason"]


@pytest.mark.parametrize(
    "kind", [FaultKind.SEQ_GAP, FaultKind.SEQ_REORDER, FaultKind.SEQ_DUPLICATE]
)
async def test_seq_faults_gap_event_and_resync(tmp_path: Path, kind: FaultKind) -> None:
    sim, _ = manual_sim(seed=7)
    async with nats_server(tmp_path / "nats") as srv, sim:
        tickers = open_markets(sim, 6)
        settings = settings_for(sim, srv, tmp_path, symbols=tickers_symbols(tickers))
        async with running(settings) as conn:
            await until(lambda: streaming(conn, 6))
            await drive(sim, conn, 2)
            sim.inject(Fault(kind, at=0, connection=market_conn(sim, conn)))
            await drive(sim, conn, 4)
            if kind is not FaultKind.SEQ_DUPLICATE:
                await until(lambda: any(e[0] == "resync" for e in conn.events.recent), 10, "resync")
                await drive(sim, conn, 2)
        msgs = await stream_messages(srv.url)
    check_exactly_once(sim, msgs)
    check_books(sim, msgs, tickers)
    if kind is FaultKind.SEQ_DUPLICATE:
        assert not events(msgs, "gap")
        assert errors(conn, "seq_duplicate") >= 1
    else:
        (gap,) = events(msgs, "gap")
        assert gap["expected_seq"] > 0 and gap["received_seq"] > gap["expected_seq"]
        assert len(events(msgs, "resync")) == 1


@pytest.mark.parametrize("kind", [FaultKind.MALFORMED_FRAME, FaultKind.UNKNOWN_TYPE])
async def test_malformed_and_unknown_frames_are_published_raw_and_counted(
    tmp_path: Path, kind: FaultKind
) -> None:
    sim, _ = manual_sim(seed=9)
    async with nats_server(tmp_path / "nats") as srv, sim:
        tickers = open_markets(sim, 3)
        settings = settings_for(sim, srv, tmp_path, symbols=tickers_symbols(tickers))
        async with running(settings) as conn:
            await until(lambda: streaming(conn, 3))
            sim.inject(Fault(kind, at=0, connection=market_conn(sim, conn)))
            await drive(sim, conn, 2)
        msgs = await stream_messages(srv.url)
    check_exactly_once(sim, msgs)
    sub = "malformed" if kind is FaultKind.MALFORMED_FRAME else "unknown"
    assert [m for m in msgs if m.subject.endswith(f".raw.{sub}")]
    problem = "malformed" if kind is FaultKind.MALFORMED_FRAME else "unknown_type"
    assert errors(conn, problem) == 1
    assert received(conn, sub) == 1


async def test_a_frame_too_big_for_nats_is_a_recorded_disconnect_not_a_crash(
    tmp_path: Path,
) -> None:
    """A frame no NATS message can carry closes its connection (WebSocket 1009) before it
    is buffered: the disconnect is an event with the reason, the shard reconnects, and the
    connection to NATS is never closed by an oversized publish."""
    sim, _ = manual_sim(seed=9)
    async with nats_server(tmp_path / "nats") as srv, sim:
        tickers = open_markets(sim, 3)
        settings = settings_for(
            sim, srv, tmp_path, symbols=tickers_symbols(tickers), max_frame_bytes=64 * 1024
        )
        async with running(settings) as conn:
            await until(lambda: streaming(conn, 3))
            shard = conn.shards.shards[1]
            old_conn = shard.conn_id
            n = market_conn(sim, conn)
            sim.inject(Fault(FaultKind.OVERSIZE_FRAME, at=0, connection=n, size=100 * 1024))
            await until(lambda: shard.conn_id != old_conn and streaming(conn, 3), 20, "reconnect")
            await drive(sim, conn, 2, unread=1)
            assert conn.nc is not None and conn.nc.is_connected
        msgs = await stream_messages(srv.url)
    (gone,) = [e for e in events(msgs, "disconnected") if e["conn_id"] == old_conn]
    assert "1009" in gone["reason"] and "65,536 bytes" in gone["reason"]
    assert max(len(m.data) for m in msgs) < 64 * 1024
    check_books(sim, msgs, tickers)


async def test_a_nats_server_that_cannot_carry_the_largest_frame_is_refused_at_start() -> None:
    with pytest.raises(ConfigError, match=r"127\.0\.0\.1:4222.*max_payload") as refused:
        check_frame_room(1024 * 1024, 512 * 1024, "nats://user:secret@127.0.0.1:4222")
    assert "secret" not in str(refused.value)
    check_frame_room(1024 * 1024 - 8192, 1024 * 1024, "nats://127.0.0.1:4222")


async def test_buffer_overflow_error_resubscribes_the_channel(tmp_path: Path) -> None:
    sim, _ = manual_sim(seed=4)
    async with nats_server(tmp_path / "nats") as srv, sim:
        tickers = open_markets(sim, 4)
        settings = settings_for(sim, srv, tmp_path, symbols=tickers_symbols(tickers))
        async with running(settings) as conn:
            await until(lambda: streaming(conn, 4))
            n = market_conn(sim, conn)
            old = sim.connections[n].by_channel["trade"].sid
            sim.inject(Fault(FaultKind.BUFFER_OVERFLOW, at=0, connection=n, channel="trade"))
            await until(
                lambda: (
                    "trade" in sim.connections[n].by_channel
                    and sim.connections[n].by_channel["trade"].sid != old
                ),
                10,
                "trade resubscribed",
            )
            await drive(sim, conn, 2)
        msgs = await stream_messages(srv.url)
    check_exactly_once(sim, msgs)
    assert any("error 25" in e["reason"] for e in events(msgs, "error"))


async def test_withheld_pongs_with_data_and_quiet_markets_with_pongs_stay_connected(
    tmp_path: Path,
) -> None:
    sim, clock = manual_sim(seed=2)
    async with nats_server(tmp_path / "nats") as srv, sim:
        tickers = open_markets(sim, 3)
        settings = settings_for(sim, srv, tmp_path, symbols=tickers_symbols(tickers))
        async with running(settings) as conn:
            await until(lambda: streaming(conn, 3))
            # Quiet: no market data at all for longer than stale_after (3 s); pongs keep it alive.
            await asyncio.sleep(4.0)
            assert all(s.reconnects == 0 for s in conn.shards.shards.values())
            # Pongs withheld but data flowing: frames keep it alive.
            n = market_conn(sim, conn)
            sim.inject(Fault(FaultKind.WITHHOLD_PONGS, at=0, connection=n))
            for _ in range(40):
                clock.advance(0.5)
                await sim.wait_idle()
                await asyncio.sleep(0.1)
            assert conn.shards.shards[1].reconnects == 0


async def test_auth_rejections_are_retried_then_fatal(tmp_path: Path) -> None:
    scenario = Scenario(faults=[Fault(FaultKind.REJECT_AUTH, connection=2, count=2)])
    sim, _ = manual_sim(seed=1, scenario=scenario)
    async with nats_server(tmp_path / "nats") as srv, sim:
        tickers = open_markets(sim, 2)
        settings = settings_for(sim, srv, tmp_path, symbols=tickers_symbols(tickers))
        async with running(settings) as conn:
            await until(lambda: streaming(conn, 2), 20)
            assert sum(1 for e in conn.events.recent if "authentication failed" in e[2]) == 2
    bad = Scenario(faults=[Fault(FaultKind.REJECT_AUTH, connection=1, count=100)])
    sim2, _ = manual_sim(seed=1, scenario=bad)
    async with nats_server(tmp_path / "nats2") as srv2, sim2:
        settings = settings_for(sim2, srv2, tmp_path / "b", max_auth_failures=3)
        with pytest.raises(AuthenticationError, match="401"):
            await asyncio.wait_for(Connector(settings).run(), 20)


@pytest.mark.parametrize("kind", [FaultKind.SEQ_GAP, FaultKind.SEQ_DUPLICATE])
async def test_trade_channel_seq_faults_are_detected(tmp_path: Path, kind: FaultKind) -> None:
    sim, _ = manual_sim(seed=8)
    async with nats_server(tmp_path / "nats") as srv, sim:
        tickers = open_markets(sim, 6)
        settings = settings_for(sim, srv, tmp_path, symbols=tickers_symbols(tickers))
        async with running(settings) as conn:
            await until(lambda: streaming(conn, 6))
            await drive(sim, conn, 2)
            n = market_conn(sim, conn)
            trade_sid = sim.connections[n].by_channel["trade"].sid
            sim.inject(Fault(kind, at=0, connection=n, channel="trade", count=2))
            await drive(sim, conn, 6)
            faults = [f for f in sim.truth.faults if f.kind == kind]
            assert len(faults) == 1, sim.truth.faults
        msgs = await stream_messages(srv.url)
    check_exactly_once(sim, msgs)
    check_books(sim, msgs, tickers)
    assert not events(msgs, "resync")  # trades cannot be re-fetched: no snapshot, no resync
    if kind is FaultKind.SEQ_DUPLICATE:
        assert not events(msgs, "gap")
        assert errors(conn, "seq_duplicate") == 1
    else:
        # count=2: the next two trade frames each skip one number -> two gaps, two events.
        gaps = events(msgs, "gap")
        assert len(gaps) == 2
        for gap in gaps:
            assert gap["sid"] == trade_sid
            assert gap["received_seq"] == gap["expected_seq"] + 1
            assert gap["tickers"] == sorted(tickers)
            assert "(trade)" in gap["reason"]
        assert errors(conn, "seq_gap_lost") == 2
        # The holes in the stream's trade records are exactly the ones the events report.
        cid = gaps[0]["conn_id"]
        seqs = sorted(
            r["seq"]
            for m in msgs
            if m.subject.startswith("kalshi-sim.kalshi.trade.")
            for r in core.decode_records(m.data)
            if r["sid"] == trade_sid and r["conn_id"] == cid
        )
        holes = [(a, b) for a, b in itertools.pairwise(seqs) if b != a + 1]
        assert holes == [(g["expected_seq"] - 1, g["received_seq"]) for g in gaps]


@pytest.mark.parametrize("channel", ["trade", "orderbook_delta"])
async def test_a_frame_without_a_readable_market_still_takes_its_seq(
    tmp_path: Path, channel: str
) -> None:
    """A frame whose market_ticker is "" is published raw and counted; the frame after
    it on the sid is in order: no gap event, no lost trades. A delta like that changed a
    book nobody can name, so the sid's books are fetched again (an error event, then
    resync) and end exact."""
    sim, _ = manual_sim(seed=12)
    async with nats_server(tmp_path / "nats") as srv, sim:
        tickers = open_markets(sim, 6)
        settings = settings_for(sim, srv, tmp_path, symbols=tickers_symbols(tickers))
        async with running(settings) as conn:
            await until(lambda: streaming(conn, 6))
            await drive(sim, conn, 2)
            n = market_conn(sim, conn)
            sid = sim.connections[n].by_channel[channel].sid
            sim.inject(Fault(FaultKind.EMPTY_TICKER, at=0, connection=n, channel=channel))
            await drive(sim, conn, 4)
            if channel == "orderbook_delta":
                await until(lambda: any(e[0] == "resync" for e in conn.events.recent), 10, "resync")
                await drive(sim, conn, 2)
        msgs = await stream_messages(srv.url)
    check_exactly_once(sim, msgs)
    check_books(sim, msgs, tickers)
    (blank,) = [m for m in msgs if ".raw." in m.subject and b'"market_ticker":""' in m.data]
    assert orjson.loads(blank.data)["sid"] == sid
    assert errors(conn, "no_record") == 1
    assert not events(msgs, "gap")
    assert errors(conn, "seq_gap_lost") == 0
    assert errors(conn, "seq_duplicate") == 0
    # The sid's records run on across the blank frame's seq: exactly that one is missing.
    seqs = sorted(
        r["seq"]
        for m in msgs
        if m.subject.startswith(("kalshi-sim.kalshi.trade.", "kalshi-sim.kalshi.orderbook."))
        for r in core.decode_records(m.data)
        if r["sid"] == sid and r["conn_id"] == int(blank.headers["Ssmd-Conn-Id"])
    )
    missing = sorted(set(range(seqs[0], seqs[-1] + 1)) - set(seqs))
    assert missing == [orjson.loads(blank.data)["seq"]]
    if channel == "trade":
        assert not events(msgs, "resync") and not events(msgs, "error")
    else:
        (error,) = events(msgs, "error")
        assert error["sid"] == sid and "no readable market" in error["reason"]
        assert error["tickers"] == sorted(tickers)
        assert len(events(msgs, "resync")) == 1


@pytest.mark.parametrize("lost", [1, 2])
async def test_resync_timeout_retries_then_resubscribes(tmp_path: Path, lost: int) -> None:
    """The snapshots asked for after a gap do not come (the request is lost on the way):
    one lost -> asked again; both lost (resync_retries=1) -> the channel is resubscribed."""
    sim, _ = manual_sim(seed=7)
    async with nats_server(tmp_path / "nats") as srv, sim:
        tickers = open_markets(sim, 6)
        settings = settings_for(
            sim, srv, tmp_path, symbols=tickers_symbols(tickers), resync_timeout=0.5
        )
        async with running(settings) as conn:
            await until(lambda: streaming(conn, 6))
            await drive(sim, conn, 2)
            shard = conn.shards.shards[1]
            real = shard.snapshot
            asked: list[list[str]] = []

            async def lossy(sid: int, tickers: list[str]) -> None:
                asked.append(tickers)
                if len(asked) > lost:
                    await real(sid, tickers)

            shard.snapshot = lossy  # type: ignore[method-assign]
            n = market_conn(sim, conn)
            old_sid = sim.connections[n].by_channel["orderbook_delta"].sid
            sim.inject(Fault(FaultKind.SEQ_GAP, at=0, connection=n))
            await drive(sim, conn, 2)
            await until(lambda: any(e[0] == "resync" for e in conn.events.recent), 10, "resync")
            await drive(sim, conn, 2)
            new_sub = sim.connections[n].by_channel["orderbook_delta"]
            new_sid, book_tickers = new_sub.sid, set(new_sub.tickers or ())
        msgs = await stream_messages(srv.url)
    check_exactly_once(sim, msgs)
    check_books(sim, msgs, tickers)
    assert len(events(msgs, "gap")) == 1
    assert len(events(msgs, "resync")) == 1
    assert errors(conn, "resync_timeout") == lost
    assert shard.reconnects == 0
    if lost == 1:
        assert len(asked) == 2 and asked[1] == asked[0]  # asked again for the same markets
        assert new_sid == old_sid
    else:
        assert len(asked) == 2  # no third get_snapshot: resubscribed instead
        assert new_sid != old_sid
        assert book_tickers == set(tickers)
        assert any("resubscribing" in e["reason"] for e in events(msgs, "error"))
