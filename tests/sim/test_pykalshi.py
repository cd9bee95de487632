from __future__ import annotations

import logging

import pytest
from pykalshi.feed import _MESSAGE_MODELS, _parse_message
from simhelp import client, manual_sim


async def test_pykalshi_parses_every_frame(caplog: pytest.LogCaptureFixture) -> None:
    sim, clock = manual_sim(seed=21)
    async with sim:
        tickers = sorted(m.ticker for m in sim.universe.active())
        async with client(sim) as c:
            await c.send(
                "subscribe",
                {
                    "channels": ["orderbook_delta", "trade", "ticker", "market_lifecycle_v2"],
                    "market_tickers": tickers,
                },
            )
            await c.until(
                lambda fs: (
                    len(c.of("orderbook_snapshot")) == len(tickers) and len(c.of("subscribed")) == 4
                )
            )
            clock.advance(3.0)
            await c.drain(sim)
    with caplog.at_level(logging.WARNING, logger="pykalshi"):
        typed = 0
        for raw in c.raw:
            msg_type, _channel, parsed, _data = _parse_message(raw)
            assert msg_type is not None
            if msg_type in _MESSAGE_MODELS:
                assert not isinstance(parsed, dict), raw
                typed += 1
    assert typed > 100
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
