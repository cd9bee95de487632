"""Overload: the hub's one writer serves the oldest connections first in rounds of
bounded length, a client that falls `send_timeout` behind is closed with 4408 while one
that keeps up gets everything, and every client's queue keeps its bound and policy."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import cast

from _support.gwfix import gateway_settings, until
from ssmd.gateway import wire
from ssmd.gateway.feed import Feed
from ssmd.gateway.hub import CLOSE_SLOW, Hub
from ssmd.gateway.hub import Client as HubClient
from ssmd.gateway.metrics import GatewayMetrics
from ssmd.gateway.shedding import Shedder

T = "KXOVER-26JUL20-T1"


class Conn:
    """A client connection (hub.Writer) that keeps what it was written; `takes` says
    whether it takes writes (a client that stopped reading does not)."""

    def __init__(self, takes: bool = True) -> None:
        self.takes = takes
        self.writes: list[list[bytes]] = []

    def writable(self) -> bool:
        return self.takes

    def write(self, frames: list[bytes]) -> None:
        assert self.takes, "written while it takes no writes"
        self.writes.append(list(frames))

    def trades(self) -> list[int]:
        out = []
        for w in self.writes:
            for f in w:
                msg = json.loads(wire.payload(f))
                if msg["type"] == "trade":
                    out.append(msg["n"])
        return out


@contextlib.asynccontextmanager
async def hub_running(**settings: float) -> AsyncIterator[Hub]:
    """A hub on its own (no stream: its feed is still replaying, so no books go out) with
    its writer and watchdog running."""
    hub = Hub(gateway_settings("nats://127.0.0.1:1", **settings), GatewayMetrics())
    hub.feeds[hub.symbols.own] = cast(Feed, SimpleNamespace(ready=False))
    hub.start()
    try:
        yield hub
    finally:
        await hub.stop()


async def client_of(hub: Hub, conn: Conn) -> HubClient:
    client = hub.connect(None)
    assert client is not None
    await hub.subscribe(client, [T])
    hub.attach(client, conn)
    return client


async def test_when_writes_outrun_the_round_the_newest_client_falls_behind_and_goes() -> None:
    # A round of zero seconds writes one client: the writer cannot serve both, as under a
    # load the gateway cannot carry. The first connection is served every round.
    # No queue bound in the way: the age of what waits is what gives the client away.
    async with hub_running(write_slice=0.0, send_timeout=0.3, client_queue=10**9) as hub:
        first_conn, second_conn = Conn(), Conn()
        first = await client_of(hub, first_conn)
        second = await client_of(hub, second_conn)
        published = 0

        async def publish() -> None:
            nonlocal published
            while True:
                hub.trade(T, json.dumps({"type": "trade", "n": published}))
                published += 1
                await asyncio.sleep(0)

        source = asyncio.create_task(publish())
        try:
            await until(lambda: second.close_code is not None, 10, "the second client's 4408")
        finally:
            source.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await source
        await until(lambda: first_conn.trades()[-1:] == [published - 1], 10, "the last trade")
        assert second.close_code == CLOSE_SLOW
        assert "waited more than 0.3s" in second.close_reason
        assert hub.metrics.value("ssmd_gateway_slow_disconnects_total", reason="behind") == 1
        # The one that kept up got every trade, in order; nothing is held for the other.
        assert first_conn.trades() == list(range(published))
        assert first.close_code is None
        assert not second.queue and second.queued == 0


async def test_a_client_that_takes_no_writes_keeps_its_queue_bound_then_goes() -> None:
    async with hub_running(client_queue=50) as hub:
        fast_conn, stuck_conn = Conn(), Conn(takes=False)
        fast = await client_of(hub, fast_conn)
        stuck = await client_of(hub, stuck_conn)
        for n in range(49):
            hub.trade(T, json.dumps({"type": "trade", "n": n}))
        # The stuck client holds its reply and 49 trades, the bound: one more and it goes.
        await until(lambda: len(fast_conn.trades()) == 49, 10, "the fast client's trades")
        assert stuck.close_code is None and stuck.queued == 50
        assert stuck.blocked_since > 0, "the writer found it taking no writes"
        hub.trade(T, json.dumps({"type": "trade", "n": 49}))
        assert stuck.close_code == CLOSE_SLOW
        assert "more than 50 messages waiting" in stuck.close_reason
        assert not stuck.queue
        await until(lambda: len(fast_conn.trades()) == 50, 10, "the last trade")
        assert fast_conn.trades() == list(range(50)) and fast.close_code is None
        assert stuck_conn.writes == []


async def test_books_conflate_to_one_pending_per_market_while_a_client_takes_no_writes() -> None:
    async with hub_running() as hub:
        stuck_conn = Conn(takes=False)
        stuck = await client_of(hub, stuck_conn)
        await until(lambda: stuck.blocked_since > 0, 10, "the writer to find it stuck")
        changes = iter(range(1, 1_000))

        def view(_ticker: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]], bool, int]:
            return [(400_000, next(changes))], [], True, 0  # a new book at every look

        hub.feeds[hub.symbols.own] = cast(
            Feed, SimpleNamespace(ready=True, state=SimpleNamespace(view=view))
        )
        for _ in range(100):
            hub.books_changed([T])
        assert [k for k, *_ in stuck.queue].count("orderbook") == 1
        assert hub.metrics.conflated == 99


async def test_a_connection_that_takes_writes_again_gets_what_waited() -> None:
    async with hub_running() as hub:
        conn = Conn(takes=False)
        client = await client_of(hub, conn)
        await until(lambda: client.blocked_since > 0, 10, "the writer to find it stuck")
        for n in range(10):
            hub.trade(T, json.dumps({"type": "trade", "n": n}))
        conn.takes = True
        hub.writable_again(client)
        await until(lambda: len(conn.trades()) == 10, 10, "the trades")
        assert conn.trades() == list(range(10))
        assert client.blocked_since == 0


class Stream:
    """What the hub reads of a feed to decide on shedding, set by the test."""

    def __init__(self) -> None:
        self.ready = True
        self.behind_s = 0.0
        self.waiting = 0
        self.last_seq = 0

    def behind(self) -> float:
        return self.behind_s

    def pending(self) -> int:
        return self.waiting

    def look(self, behind: float, waiting: int, applied: int) -> None:
        self.behind_s, self.waiting = behind, waiting
        self.last_seq += applied


def shedding_hub(shed_after: float = 0.25) -> tuple[Hub, Stream]:
    hub = Hub(gateway_settings("nats://127.0.0.1:1", shed_after=shed_after), GatewayMetrics())
    stream = Stream()
    hub.feeds[hub.symbols.own] = cast(Feed, stream)
    return hub, stream


async def test_a_gateway_falling_behind_the_stream_closes_its_newest_clients_with_1013() -> None:
    hub, stream = shedding_hub(shed_after=0.25)
    clients = [hub.connect(None) for _ in range(10)]
    hub.check_load(100.0)  # the first look only sets the mark
    # Behind, but within the limit: nobody goes, however the backlog grows.
    stream.look(0.2, 5_000, 10_000)
    hub.check_load(101.0)
    assert all(c.close_code is None for c in clients)
    # Over the limit at one look only (a pause): nobody goes.
    stream.look(0.4, 5_100, 10_000)
    hub.check_load(101.1)
    stream.look(0.1, 5_000, 10_000)
    hub.check_load(101.2)
    assert all(c.close_code is None for c in clients)
    stream.look(0.3, 5_000, 0)  # late again: the next look decides
    hub.check_load(101.8)
    # Over the limit and falling further: over the last second (since 101.0) 30,000 were
    # applied while 5,000 more arrived than that, so a seventh of the stream was not kept
    # up with: the 2 newest of 10 clients go.
    stream.look(0.4, 10_000, 0)
    hub.check_load(102.0)
    assert [c.close_code for c in clients] == [None] * 8 + [1013, 1013]
    assert "overloaded" in clients[-1].close_reason
    assert hub.metrics.value("ssmd_gateway_shed_total") == 2
    # Falling further still, but within the cooldown of the last closing: nobody.
    stream.look(0.5, 12_000, 10_000)
    hub.check_load(102.3)
    assert sum(c.close_code is not None for c in clients) == 2
    # Still behind, but catching up: the backlog shrank by 8,000 in the last second and
    # 2,000 are left, gone in a quarter of a second at that pace: nobody goes.
    stream.look(0.6, 2_000, 12_000)
    hub.check_load(103.0)
    assert sum(c.close_code is not None for c in clients) == 2
    # Late and the backlog holds still: every client stays late, so a tenth of those
    # open go (at least one), and again after the cooldown.
    stream.look(0.7, 2_010, 12_000)
    hub.check_load(104.0)
    assert [c.close_code for c in clients] == [None] * 7 + [1013] * 3
    stream.look(0.7, 2_010, 12_000)
    hub.check_load(104.7)
    assert [c.close_code for c in clients] == [None] * 6 + [1013] * 4
    assert hub.metrics.value("ssmd_gateway_shed_total") == 4


def test_one_closing_takes_at_most_half_the_clients() -> None:
    shedder = Shedder(0.25)
    inf = float("inf")
    assert shedder.observe(9.9, 5.0, 1.0, inf, 10) == 0  # late at one look so far
    assert shedder.observe(10.0, 5.0, 1.0, inf, 10) == 5
    assert shedder.observe(10.6, 5.0, 1.0, inf, 5) == 3
    assert shedder.observe(11.2, 5.0, 1.0, inf, 1) == 1


async def test_shedding_waits_for_the_start_up_replay_and_can_be_turned_off() -> None:
    for after, ready in ((0.25, False), (0.0, True)):
        hub, stream = shedding_hub(after)
        stream.ready = ready
        client = hub.connect(None)
        for i, waiting in enumerate((1_000, 50_000, 900_000)):
            stream.look(30.0, waiting, 10)
            hub.check_load(float(i))
        assert client.close_code is None


def test_a_venue_whose_stream_does_not_exist_leaves_shedding_to_the_others() -> None:
    """A further venue that never caught up (its stream does not exist yet) has no pace to
    judge: the venues that did are still shed for."""
    hub, stream = shedding_hub(shed_after=0.25)
    missing = Stream()
    missing.ready = False
    missing.look(60.0, 10**6, 0)  # left out of the looks: not a pace of this gateway
    hub.feeds["kraken"] = cast(Feed, missing)
    clients = [hub.connect(None) for _ in range(10)]
    hub.check_load(100.0)
    stream.look(0.4, 10_000, 10_000)
    hub.check_load(101.0)
    stream.look(0.5, 20_000, 10_000)
    hub.check_load(101.1)
    assert [c.close_code for c in clients] == [None] * 5 + [1013] * 5
