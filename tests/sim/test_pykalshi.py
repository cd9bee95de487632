"""A third-party client reads the simulator: pykalshi's own AsyncFeed streams its WebSocket."""

from __future__ import annotations

import logging

import pytest
from pykalshi.feed import (
    MarketLifecycleMessage,
    OrderbookDeltaMessage,
    OrderbookSnapshotMessage,
    TickerMessage,
    TradeMessage,
)

from _support.pykalshifeed import every_channel, reading
from _support.simhelp import manual_sim, wait_for


async def test_pykalshi_async_feed_streams_every_channel(caplog: pytest.LogCaptureFixture) -> None:
    sim, clock = manual_sim(seed=21, rate=20.0)
    async with sim:
        tickers = sorted(m.ticker for m in sim.universe.active())[:8]
        kalshi, feed = every_channel(sim.rest_url, sim.ws_url, tickers)

        with caplog.at_level(logging.WARNING, logger="pykalshi"):
            async with reading(kalshi, feed) as got:
                await wait_for(lambda: len(sim.truth.connections) == 1)
                rec = sim.truth.connections[1]
                await wait_for(lambda: rec.commands == 4)
                for _ in range(13):  # 130 s of clock: flow, and a market paused at +123 s
                    clock.advance(10.0)
                    await sim.wait_idle()
                    await wait_for(lambda: feed.messages_received >= rec.frames_sent)
    assert feed.reconnect_count == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert feed.messages_received == rec.frames_sent
    kinds = {
        OrderbookSnapshotMessage,
        OrderbookDeltaMessage,
        TradeMessage,
        TickerMessage,
        MarketLifecycleMessage,
    }
    seen = {type(m) for m in got if type(m) in kinds}
    assert seen == kinds
    # frames of a type pykalshi models all arrive typed, never as raw dicts
    raw = [m for m in got if isinstance(m, dict)]
    assert all("event_ticker" in m and "market_ticker" not in m for m in raw)  # event_lifecycle
    assert len(got) - len(raw) > 100
