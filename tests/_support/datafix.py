"""Test data for ssmd.data: the simulator's frames through the normalizer, NATS and the
archiver, captured once per test session.

The simulator runs on a manual clock from 23:58:30 UTC to past midnight, so the
archive holds two sealed days; every second of simulator time its books are kept
(the truth for the point-in-time books). The frames of each second are published as
the connector publishes them (raw frames with their receive-time headers, then their
normalized records), received at that second. A connector `gap` on one market is
published in the middle, and a copy of the first minute received today stays open in
the archiver's spool.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from _support.archfix import (
    Published,
    ack_floor,
    archive_until_acked,
    environment,
    make_stream,
    publish_event,
    publish_frames,
    running,
    settings,
    until,
)
from _support.simhelp import client
from ssmd import core
from ssmd.config import ResolvedEnvironment
from ssmd.sim import BookState, ManualClock, Simulator
from ssmd.testing.nats import nats_server

ENV = "kalshi-sim"
FEED = "kalshi"
START = datetime(2026, 7, 20, 23, 58, 30, tzinfo=UTC).timestamp()
SECONDS = 150  # of simulator time: 90 s on 2026-07-20, 60 s on 2026-07-21
DAY1, DAY2 = date(2026, 7, 20), date(2026, 7, 21)
GAP_AT = 100  # seconds after START: a sequence gap on the first market's book
CHANNELS = ["orderbook_delta", "trade", "ticker", "market_lifecycle_v2"]
SEC = 1_000_000_000


@dataclass
class Capture:
    data_dir: Path
    env: ResolvedEnvironment
    tickers: list[str]
    frames: list[bytes] = field(default_factory=list)
    receive_ns: list[int] = field(default_factory=list)
    # receive time of each second (ns) -> every market's book once that second's frames
    # were sent (the simulator's state at that moment)
    books: dict[int, dict[str, BookState]] = field(default_factory=dict)
    gap_ns: int = 0  # when the gap event was received
    gap_ticker: str = ""
    open_day: date = DAY1  # the day of the spooled (open) copy


async def _simulate(cap: Capture) -> None:
    sim = Simulator(clock=ManualClock(START), seed=11, rate=15.0, markets=10)
    clock = sim.clock
    assert isinstance(clock, ManualClock)
    async with sim:
        cap.tickers = sorted(m.ticker for m in sim.universe.active())
        async with client(sim) as c:
            await c.send("subscribe", {"channels": CHANNELS, "market_tickers": cap.tickers})
            await c.until(
                lambda fs: sum(f["type"] == "orderbook_snapshot" for f in fs) == len(cap.tickers)
            )
            await c.drain(sim)
            for step in range(SECONDS + 1):
                if step:
                    clock.advance(1.0)
                    await c.drain(sim)
                opened = sorted({m.ticker for m in sim.universe.active()} - set(cap.tickers))
                if opened:  # markets of the new day, as the connector subscribes to them
                    cap.tickers += opened
                    await c.send("subscribe", {"channels": CHANNELS, "market_tickers": opened})
                    await c.drain(sim)
                new = c.raw[len(cap.frames) :]
                at = round(clock.now() * SEC)
                cap.frames += [r.encode() for r in new]
                cap.receive_ns += [at + i for i in range(len(new))]  # in order, same second
                cap.books[at] = sim.books()


async def _archive(cap: Capture, tmp: Path) -> None:
    async with nats_server(tmp / "nats") as server:
        cap.env = environment(cap.data_dir, server.url)
        await make_stream(server.url, cap.env)
        pub = Published()
        from _support.archfix import client as nats_client

        gap_index = next(
            i for i, ns in enumerate(cap.receive_ns) if ns >= START * SEC + GAP_AT * SEC
        )
        cap.gap_ns = cap.receive_ns[gap_index] - 1
        cap.gap_ticker = cap.tickers[0]
        async with nats_client(server.url) as nc:
            await publish_frames(nc, cap.frames[:gap_index], cap.receive_ns[:gap_index], pub)
            await publish_event(
                nc,
                pub,
                event="gap",
                receive_ts=cap.gap_ns,
                exchange_ts=cap.gap_ns,
                conn_id=7,
                sid=1,
                reason="seq_gap",
                expected_seq=10,
                received_seq=12,
                tickers=[cap.gap_ticker],
            )
            await publish_frames(
                nc, cap.frames[gap_index:], cap.receive_ns[gap_index:], pub, frame_base=gap_index
            )
        await archive_until_acked(settings(cap.env), server.url, pub.last_seq)
        # The first minute again, received today: it stays in the spool (open).
        # From today's first second (UTC), so that the copy stays within today even when
        # the session runs just after midnight; a receive time ahead of the clock is
        # archived all the same, and today is not over, so nothing is sealed.
        today_ns = time.time_ns() // (86_400 * SEC) * (86_400 * SEC) + SEC
        first = [i for i, ns in enumerate(cap.receive_ns) if ns < START * SEC + 60 * SEC]
        shift = today_ns - cap.receive_ns[0]
        cap.open_day = datetime.fromtimestamp(today_ns // SEC, UTC).date()
        async with nats_client(server.url) as nc:
            await publish_frames(
                nc,
                [cap.frames[i] for i in first],
                [cap.receive_ns[i] + shift for i in first],
                pub,
                conn_id=8,
            )
        async with running(settings(cap.env, seal_grace=3600.0)) as arc:
            await until(lambda: _acked(server.url, pub.last_seq), what="the open copy acked")
            assert arc.spool.files


async def _acked(url: str, last: int) -> bool:
    return await ack_floor(url) >= last


def capture(tmp: Path) -> Capture:
    cap = Capture(tmp / "data", None, [])  # type: ignore[arg-type]
    asyncio.run(_simulate(cap))
    asyncio.run(_archive(cap, tmp))
    assert core.SCALE_E6 == 1_000_000
    return cap
