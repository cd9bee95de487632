"""A market counts as subscribed only once the exchange acknowledged it: subscribe errors
other than 26 (27, one naming a market, 6, 7) and commands with no reply leave it
unacknowledged, counted, reported and asked again on the same connection until it is;
the stream then holds everything the simulator sent and the books are exact."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from _support.connfix import (
    check_books,
    check_exactly_once,
    drive,
    errors,
    events,
    manual_sim,
    open_in_series,
    open_markets,
    reselect,
    running,
    settings_for,
    stream_messages,
)
from ssmd.config.models.environment import Symbols
from ssmd.connector.runner import Connector
from ssmd.sim import CommandRate, Fault, FaultKind, ManualClock, Scenario, Simulator
from ssmd.testing import until
from ssmd.testing.connector import streaming, tickers_symbols
from ssmd.testing.nats import nats_server
from ssmd.venues.kalshi.ws import Liveness

LIFECYCLE = "market_lifecycle_v2"

# Quick liveness, and a command unanswered for half a second counts as lost.
QUICK_REPLY = Liveness(ping_interval=0.5, ping_timeout=1.0, stale_after=3.0, reply_timeout=0.5)


def gauge(conn: Connector, name: str) -> float:
    value = conn.metrics.registry.get_sample_value(name, {"feed": "kalshi"})
    assert value is not None, name
    return value


def market_conn(sim: Simulator) -> int:
    """The simulator's connection number of the (one) market shard."""
    (n,) = [n for n, c in sim.connections.items() if "orderbook_delta" in c.by_channel]
    return n


async def open_a_window_with(
    sim: Simulator, clock: ManualClock, fault: Fault, open_now: Callable[[], list[str]]
) -> str:
    """Arm `fault`, then open the next 15-minute window while the connection lives: the
    market it opens, whose add_markets meets the fault."""
    before = open_now()
    clock.set(sim.started_at + 894.0)  # 14:44:59, a second before the next window
    await sim.wait_idle(20)
    assert open_now() == before
    sim.inject(fault)
    clock.advance(1.0)
    await sim.wait_idle(20)
    (new,) = set(open_now()) - set(before)
    return new


def sim_tickers(sim: Simulator, n: int, channel: str) -> set[str]:
    """Ground truth: the markets connection `n` streams on `channel`."""
    sub = sim.connections[n].by_channel.get(channel)
    return set(sub.tickers or ()) if sub is not None else set()


async def test_error_27_is_not_success_the_markets_are_asked_again(tmp_path: Path) -> None:
    """Two commands a second per connection: orderbook_delta and trade are taken, the
    ticker subscribe gets error 27 on every try until a second of clock has passed."""
    scenario = Scenario(command_rate=CommandRate(max_commands=2, per_seconds=1.0))
    sim, clock = manual_sim(seed=31, scenario=scenario)
    async with nats_server(tmp_path / "nats") as srv, sim:
        tickers = open_markets(sim, 4)
        settings = settings_for(sim, srv, tmp_path, symbols=tickers_symbols(tickers))
        async with running(settings) as conn:
            await until(lambda: errors(conn, "subscribe_refused") >= 3, 20, "error 27 retried")
            shard = conn.shards.shards[1]
            n = market_conn(sim)
            assert sim_tickers(sim, n, "orderbook_delta") == set(tickers)
            assert sim_tickers(sim, n, "ticker") == set()
            assert shard.state == "streaming" and shard.subscribed == set()
            assert gauge(conn, "ssmd_connector_markets_desired") == 4
            assert gauge(conn, "ssmd_connector_markets_subscribed") == 0
            clock.advance(1.0)  # the command window moves on
            await until(lambda: streaming(conn, 4), 20, "ticker subscribed")
            assert sim_tickers(sim, n, "ticker") == set(tickers)
            assert gauge(conn, "ssmd_connector_markets_subscribed") == 4
            # Each refusal counted once, and only the ticker channel was asked again: the
            # other two held the markets.
            refused = [f for f in sim.truth.faults if f.kind == "command_rate_limited"]
            assert errors(conn, "subscribe_refused") == len(refused)
            assert sim.truth.connections[n].commands == 2 + len(refused) + 1
            assert shard.reconnects == 0
            await drive(sim, conn, 2)
        msgs = await stream_messages(srv.url)
    check_exactly_once(sim, msgs)
    check_books(sim, msgs, tickers)
    refusals = [e for e in events(msgs, "error") if "error 27" in e["reason"]]
    assert len(refusals) == len(refused)
    assert all(e["tickers"] == tickers and "subscribe ticker" in e["reason"] for e in refusals)
    (subscribed,) = [e for e in events(msgs, "subscribed") if e["shard"] == 1]
    assert subscribed["tickers"] == tickers  # once, when every channel had them


async def test_a_market_the_exchange_does_not_know_is_refused_alone(tmp_path: Path) -> None:
    """Error 16 names the market: the rest of its batch is subscribed at once; the unknown
    one stays unacknowledged (desired 4, subscribed 3) and is asked again."""
    sim, _ = manual_sim(seed=32)
    async with nats_server(tmp_path / "nats") as srv, sim:
        tickers = open_markets(sim, 3)
        ghost = tickers[1] + "X"  # sorts between two real ones: in the middle of the batch
        settings = settings_for(sim, srv, tmp_path, symbols=tickers_symbols([*tickers, ghost]))
        async with running(settings) as conn:
            await until(lambda: streaming(conn, 3), 20, "the known markets")
            await until(lambda: errors(conn, "subscribe_refused") >= 2, 20, "the ghost retried")
            shard = conn.shards.shards[1]
            assert shard.unacknowledged() == [ghost]
            assert gauge(conn, "ssmd_connector_markets_desired") == 4
            assert gauge(conn, "ssmd_connector_markets_subscribed") == 3
            for channel in ("orderbook_delta", "trade", "ticker"):
                assert sim_tickers(sim, market_conn(sim), channel) == set(tickers)
            await drive(sim, conn, 2)
        msgs = await stream_messages(srv.url)
    check_exactly_once(sim, msgs)
    check_books(sim, msgs, tickers)
    ghosts = [e for e in events(msgs, "error") if "error 16" in e["reason"]]
    assert ghosts and all(e["tickers"] == [ghost] for e in ghosts)


async def test_error_6_takes_up_the_sid_the_exchange_holds(tmp_path: Path) -> None:
    """The reply to the first orderbook_delta subscribe is lost; asked again, the exchange
    answers error 6 (already subscribed) without the sid. The connector learns it from
    list_subscriptions and adds the markets on it: acknowledged, on the same connection,
    and a gap on that sid is repaired with snapshots like on any other."""
    sim, _ = manual_sim(seed=33)
    async with nats_server(tmp_path / "nats") as srv, sim:
        tickers = open_markets(sim, 4)
        sim.inject(Fault(FaultKind.DROP_REPLY, at=0, channel="orderbook_delta"))
        sim.inject(Fault(FaultKind.ALREADY_SUBSCRIBED, at=0, channel="orderbook_delta"))
        settings = settings_for(
            sim, srv, tmp_path, symbols=tickers_symbols(tickers), liveness=QUICK_REPLY
        )
        async with running(settings) as conn:
            await until(lambda: streaming(conn, 4), 20, "subscribed after error 6")
            shard = conn.shards.shards[1]
            n = market_conn(sim)
            book_sid = sim.connections[n].by_channel["orderbook_delta"].sid
            assert shard.sids["orderbook_delta"] == book_sid
            assert errors(conn, "subscribe_timeout") == 1
            assert errors(conn, "already_subscribed") == 1
            assert shard.reconnects == 0
            await drive(sim, conn, 2)
            sim.inject(Fault(FaultKind.SEQ_GAP, at=0, connection=n))
            await drive(sim, conn, 2)
            await until(lambda: any(e[0] == "resync" for e in conn.events.recent), 10, "resync")
            await drive(sim, conn, 2)
        msgs = await stream_messages(srv.url)
    assert [f.kind for f in sim.truth.faults if not f.kind.endswith("_armed")] == [
        "drop_reply",
        "already_subscribed",
        "seq_gap",
    ]
    check_exactly_once(sim, msgs)
    check_books(sim, msgs, tickers)
    (gap,) = events(msgs, "gap")
    (resync,) = events(msgs, "resync")
    assert gap["sid"] == resync["sid"] == book_sid
    assert any(
        f"sid {book_sid}" in e["reason"] for e in events(msgs, "error") if "error 6" in e["reason"]
    )


async def test_a_live_add_whose_reply_is_lost_is_asked_again(tmp_path: Path) -> None:
    """A 15-minute market opens while the connection lives: the reply to its add_markets is
    lost. The add is asked again on the same connection and acknowledged."""
    series = "KXBTC15M"
    sim, clock = manual_sim(seed=21, rate=10.0)

    def open_now() -> list[str]:
        return open_in_series(sim, series)

    async with nats_server(tmp_path / "nats") as srv, sim:
        symbols = Symbols(series=[series], statuses=["open"])
        settings = settings_for(sim, srv, tmp_path, symbols=symbols, liveness=QUICK_REPLY)
        async with running(settings) as conn:
            await until(lambda: streaming(conn, len(open_now())), 20)
            shard = conn.shards.shards[1]
            conn_id = shard.conn_id
            fault = Fault(FaultKind.DROP_REPLY, at=0, channel="orderbook_delta")
            new = await open_a_window_with(sim, clock, fault, open_now)
            await until(lambda: sorted(shard.subscribed) == open_now(), 20, "the new market")
            n = market_conn(sim)
            for channel in ("orderbook_delta", "trade", "ticker"):
                assert sim_tickers(sim, n, channel) == {new}
            assert errors(conn, "subscribe_timeout") == 1
            assert shard.conn_id == conn_id and shard.reconnects == 0
            await drive(sim, conn, 2)
        msgs = await stream_messages(srv.url)
    assert [f.kind for f in sim.truth.faults] == ["drop_reply_armed", "drop_reply"]
    check_exactly_once(sim, msgs)
    check_books(sim, msgs, [new])
    (lost,) = [e for e in events(msgs, "error") if "no reply to update_subscription" in e["reason"]]
    assert lost["tickers"] == [new]
    assert [e["tickers"] for e in events(msgs, "subscribed") if e["shard"] == 1][-1] == [new]


async def test_a_dead_global_channel_is_subscribed_again(tmp_path: Path) -> None:
    """Error 25 kills the lifecycle channel's sid on the global shard: subscribed again on
    the same connection (the global shard holds no markets to catch up with)."""
    sim, _ = manual_sim(seed=34)
    async with nats_server(tmp_path / "nats") as srv, sim:
        tickers = open_markets(sim, 2)
        settings = settings_for(sim, srv, tmp_path, symbols=tickers_symbols(tickers))
        async with running(settings) as conn:
            await until(lambda: streaming(conn, 2), 20)
            (n,) = [n for n, c in sim.connections.items() if LIFECYCLE in c.by_channel]
            old = sim.connections[n].by_channel[LIFECYCLE].sid
            sim.inject(Fault(FaultKind.BUFFER_OVERFLOW, at=0, connection=n, channel=LIFECYCLE))
            shard = conn.shards.shards[0]

            def resubscribed() -> bool:
                sub = sim.connections[n].by_channel.get(LIFECYCLE)
                return sub is not None and sub.sid != old and shard.sids.get(LIFECYCLE) == sub.sid

            await until(resubscribed, 10, "the lifecycle channel subscribed again")
            assert shard.reconnects == 0
            await drive(sim, conn, 2)
        msgs = await stream_messages(srv.url)
    check_exactly_once(sim, msgs)
    assert [e["shard"] for e in events(msgs, "error") if "error 25" in e["reason"]] == [0]


async def test_a_connection_that_answers_no_subscribe_is_dropped_after_three_tries(
    tmp_path: Path,
) -> None:
    """The replies to three orderbook_delta subscribes in a row are lost: after the third
    try the connection is dropped, and the next one subscribes everything."""
    sim, _ = manual_sim(seed=35)
    async with nats_server(tmp_path / "nats") as srv, sim:
        tickers = open_markets(sim, 3)
        sim.inject(Fault(FaultKind.DROP_REPLY, at=0, channel="orderbook_delta", count=3))
        settings = settings_for(
            sim, srv, tmp_path, symbols=tickers_symbols(tickers), liveness=QUICK_REPLY
        )
        async with running(settings) as conn:
            shard = await until(lambda: conn.shards.shards.get(1), 10, "the market shard")
            await until(lambda: shard.reconnects == 1 and streaming(conn, 3), 20, "reconnected")
            assert errors(conn, "subscribe_timeout") == 3
            await drive(sim, conn, 2)
        msgs = await stream_messages(srv.url)
    check_exactly_once(sim, msgs)
    check_books(sim, msgs, tickers)
    first = next(e for e in events(msgs, "disconnected") if e["shard"] == 1)
    assert first["reason"] == "no reply to 3 subscribe tries in a row"
    timeouts = [
        e["reason"] for e in events(msgs, "error") if "no reply to subscribe" in e["reason"]
    ]
    assert len(timeouts) == 3
    assert all(f"({k} of 3 in a row)" in why for k, why in enumerate(timeouts, 1))


async def test_error_7_subscribes_the_channel_afresh(tmp_path: Path) -> None:
    """Three long-lived markets stream, and a 15-minute market opens while the connection
    lives; the exchange has lost the orderbook_delta sid, so the add_markets on it gets
    error 7 (unknown subscription id). The channel is subscribed afresh on the same
    connection, with every market of the shard: a new sid, fresh snapshots, every market
    acknowledged, the books exact and every frame sent in the stream once."""
    series = "KXBTC15M"
    sim, clock = manual_sim(seed=36, rate=10.0)

    def open_now() -> list[str]:
        return sorted([*lasting, *open_in_series(sim, series)])

    async with nats_server(tmp_path / "nats") as srv, sim:
        lasting = [t for t in open_markets(sim, 20) if not t.startswith(series)][:3]
        symbols = Symbols(tickers=lasting, series=[series], statuses=["open"])
        settings = settings_for(sim, srv, tmp_path, symbols=symbols)
        async with running(settings) as conn:
            await until(lambda: streaming(conn, len(open_now())), 20)
            shard = conn.shards.shards[1]
            n = market_conn(sim)
            conn_id, old = shard.conn_id, shard.sids["orderbook_delta"]
            fault = Fault(FaultKind.UNKNOWN_SID, at=0, channel="orderbook_delta")
            new = await open_a_window_with(sim, clock, fault, open_now)

            def afresh() -> bool:
                sub = sim.connections[n].by_channel.get("orderbook_delta")
                return sub is not None and sub.sid != old and shard.sids.get(sub.channel) == sub.sid

            await until(afresh, 20, "orderbook_delta subscribed afresh under a new sid")
            await until(lambda: sorted(shard.subscribed) == open_now(), 20, "every market")
            for channel in ("orderbook_delta", "trade", "ticker"):
                assert sim_tickers(sim, n, channel) == set(open_now())
            assert errors(conn, "subscribe_refused") == 1
            assert shard.conn_id == conn_id and shard.reconnects == 0
            await drive(sim, conn, 2)
        msgs = await stream_messages(srv.url)
    assert [f.kind for f in sim.truth.faults] == ["unknown_sid_armed", "unknown_sid"]
    check_exactly_once(sim, msgs)
    check_books(sim, msgs, open_now())
    (refused,) = [e for e in events(msgs, "error") if "error 7" in e["reason"]]
    assert refused["tickers"] == [new] and "subscribe orderbook_delta" in refused["reason"]
    # The lost sid left no market acknowledged on every channel: all are, once again.
    assert [e["tickers"] for e in events(msgs, "subscribed") if e["shard"] == 1][-1] == open_now()


async def test_error_7_on_a_delete_subscribes_the_channel_afresh(tmp_path: Path) -> None:
    """A market leaves the selection and the delete_markets on the trade channel gets
    error 7: that sid, and every market's trades with it, is gone at the exchange. The
    channel is subscribed afresh with the markets still selected, whose trades flow again,
    where keeping the dead sid would have left them silent."""
    sim, _ = manual_sim(seed=37, rate=10.0)
    async with nats_server(tmp_path / "nats") as srv, sim:
        tickers = open_markets(sim, 4)
        settings = settings_for(sim, srv, tmp_path, symbols=tickers_symbols(tickers))
        async with running(settings) as conn:
            await until(lambda: streaming(conn, 4), 20)
            await drive(sim, conn, 1)
            shard = conn.shards.shards[1]
            n = market_conn(sim)
            old = shard.sids["trade"]
            gone, kept = tickers[0], tickers[1:]
            sim.inject(Fault(FaultKind.UNKNOWN_SID, at=0, channel="trade"))
            await reselect(conn, drop=[gone])

            def afresh() -> bool:
                sub = sim.connections[n].by_channel.get("trade")
                return sub is not None and sub.sid != old and shard.sids.get("trade") == sub.sid

            await until(afresh, 20, "trade subscribed afresh under a new sid")
            await until(lambda: sorted(shard.subscribed) == kept, 20, "the kept markets")
            for channel in ("orderbook_delta", "trade", "ticker"):
                assert sim_tickers(sim, n, channel) == set(kept), channel
            await drive(sim, conn, 2)
        msgs = await stream_messages(srv.url)
    assert [f.kind for f in sim.truth.faults] == ["unknown_sid_armed", "unknown_sid"]
    check_exactly_once(sim, msgs)
    check_books(sim, msgs, kept)
    (refused,) = [e for e in events(msgs, "error") if "error 7" in e["reason"]]
    assert "delete_markets trade" in refused["reason"]
