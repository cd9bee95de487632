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
    hub.feed = cast(Feed, SimpleNamespace(ready=False))
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

        hub.feed = cast(Feed, SimpleNamespace(ready=True, view=view))
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
