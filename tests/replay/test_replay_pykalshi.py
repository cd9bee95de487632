"""A third-party client on the kalshi target: pykalshi's own AsyncFeed streams a replayed
day as it would stream Kalshi, with every archived trade arriving typed."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from pykalshi.feed import (
    MarketLifecycleMessage,
    OrderbookDeltaMessage,
    OrderbookSnapshotMessage,
    TickerMessage,
    TradeMessage,
)
from replayfix import replay_plan

import ssmd.data
from _support.datafix import DAY1, Capture
from _support.pykalshifeed import every_channel, reading
from ssmd.replay.kalshi import KalshiTarget
from ssmd.replay.runner import Replay
from ssmd.testing import until

pytestmark = pytest.mark.xdist_group("replay")

UNUSED_NATS = "nats://127.0.0.1:9"  # the kalshi target publishes nothing


def test_pykalshi_async_feed_streams_a_replayed_day(
    captured: Capture, caplog: pytest.LogCaptureFixture
) -> None:
    ds = replay_plan(captured, DAY1.isoformat(), UNUSED_NATS).ds
    trades = ssmd.data.raw(DAY1.isoformat(), msgtypes=["trade"], dataset=ds).collect().height

    async def main() -> tuple[KalshiTarget, int, list[Any]]:
        p = replay_plan(captured, DAY1.isoformat(), UNUSED_NATS, speed=None)
        target = KalshiTarget(p, port=0)
        replay = Replay(p, target)
        stop = asyncio.Event()
        task = asyncio.create_task(replay.run(stop, linger=True))
        await until(lambda: target.state()["ws_url"] is not None, what="the replay's socket")
        kalshi, feed = every_channel(target.rest_url, target.ws_url, sorted(target.markets))

        with caplog.at_level(logging.WARNING, logger="pykalshi"):
            async with reading(kalshi, feed) as got:
                await asyncio.wait_for(replay.done.wait(), 120)
                (client,) = target.clients
                await until(
                    lambda: not client.out and feed.messages_received == client.sent,
                    timeout=60,
                    what="every frame sent to reach the feed",
                )
        stop.set()
        await asyncio.wait_for(task, 30)
        assert feed.reconnect_count == 0
        return target, client.sent, got

    target, sent, got = asyncio.run(main())
    assert target.dropped == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(got) > 1000
    seen = {type(m) for m in got}
    for kind in (
        OrderbookSnapshotMessage,
        OrderbookDeltaMessage,
        TradeMessage,
        TickerMessage,
        MarketLifecycleMessage,
    ):
        assert kind in seen, kind
    # Subscribed before the clock started: every archived trade of the day, typed.
    assert trades > 0
    assert sum(isinstance(m, TradeMessage) for m in got) == trades
    assert sent >= len(got)
