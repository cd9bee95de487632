"""Helpers for connector tests: settings pointed at a simulator and a test nats-server,
a running connector, waiting for conditions, and ground-truth comparisons."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

from ssmd import core
from ssmd.connector.runner import Connector, Settings
from ssmd.sim import ManualClock, Simulator
from ssmd.testing import connector, until
from ssmd.testing.connector import PREFIX, STREAM
from ssmd.testing.nats import NatsServer, client, read_stream

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_784_557_805.0  # 2026-07-20 14:30:05 UTC, inside a 15-minute window


async def reselect(conn: Connector, *, add: Iterable[str] = (), drop: Iterable[str] = ()) -> None:
    """Change the tickers the connector selects, as a listing read would, and read the
    selection again: the tracking loop's next sweep subscribes and unsubscribes. (A market
    put on the shards, or taken off, behind the selection's back is undone by that sweep.)"""
    assert conn.tracking is not None
    tickers = conn.tracking.selection.tickers
    tickers.update(add)
    tickers.difference_update(drop)
    await conn.tracking.refresh()


def manual_sim(**kw: Any) -> tuple[Simulator, ManualClock]:
    clock = ManualClock(T0)
    kw.setdefault("rate", 100.0)
    kw.setdefault("markets", 40)
    return Simulator(clock=clock, **kw), clock


def settings_for(sim: Simulator, nats: NatsServer, tmp: Path, **changes: Any) -> Settings:
    return connector.settings_for(sim, nats.url, tmp, ROOT / "exchanges", **changes)


def open_in_series(sim: Simulator, series: str) -> list[str]:
    """Ground truth: the markets of `series` open now."""
    return sorted(
        t
        for t, m in sim.universe.markets.items()
        if m.series_ticker == series and m.status == "active" and not m.paused
    )


def errors(conn: Connector, kind: str) -> float:
    """The connector's error counter of one kind, as a scrape would read it."""
    labels = {"feed": "kalshi", "error_type": kind}
    return conn.metrics.registry.get_sample_value("ssmd_connector_errors_total", labels) or 0.0


def open_markets(sim: Simulator, n: int, dotted: bool = False) -> list[str]:
    ts = sorted(
        t
        for t, m in sim.universe.markets.items()
        if m.status == "active" and not m.paused and (("." in t) or not dotted)
    )
    return ts[:n]


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Connector]:
    conn = Connector(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(conn.run(stop))
    try:
        yield conn
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def sent(sim: Simulator) -> int:
    return sum(r.frames_sent for r in sim.truth.connections.values())


def settled(conn: Connector, sim: Simulator, unread: int = 0) -> bool:
    p = conn.publisher
    return (
        conn.frames_in >= sent(sim) - unread
        and conn.queue.empty()
        and p is not None
        and p.inflight == 0
        and not p.recovering
    )


async def drive(
    sim: Simulator, conn: Connector, seconds: float, step: float = 0.5, unread: int = 0
) -> None:
    """Advance the clock, then wait until the connector published all the simulator sent
    but `unread` frames (sent, and refused by the connector as over its frame limit)."""
    clock = sim.clock
    t = 0.0
    while t < seconds:
        clock.advance(step)  # type: ignore[attr-defined]
        await sim.wait_idle(20)
        t += step
    try:
        await until(lambda: settled(conn, sim, unread), 30, "connector to publish everything sent")
    except AssertionError as exc:
        p = conn.publisher
        raise AssertionError(
            f"{exc}: read {conn.frames_in} of {sent(sim)} sent ({unread} unread), queue "
            f"{len(conn.queue)}, publisher "
            f"{p and (p.inflight, p.recovering, p.published, p.acked, p.republished)}"
        ) from None


async def stream_messages(url: str) -> list[Any]:
    async with client(url) as nc:
        return await read_stream(nc, STREAM)


def raw_by_conn(msgs: list[Any]) -> dict[int, list[bytes]]:
    """The raw frames of the stream per connection, in order; each message id once."""
    by_conn: dict[int, list[bytes]] = defaultdict(list)
    ids: set[str] = set()
    for m in msgs:
        if ".raw." in m.subject:
            assert m.headers["Nats-Msg-Id"] not in ids
            ids.add(m.headers["Nats-Msg-Id"])
            by_conn[int(m.headers["Ssmd-Conn-Id"])].append(m.data)
    return by_conn


def check_exactly_once(sim: Simulator, msgs: list[Any]) -> dict[int, list[bytes]]:
    """Every frame the simulator sent is in the stream exactly once, per connection in order."""
    by_conn = raw_by_conn(msgs)
    truth = {r.digest: r.frames_sent for r in sim.truth.connections.values() if r.frames_sent}
    got = {}
    for frames in by_conn.values():
        h = hashlib.sha256()
        for f in frames:
            h.update(f)
            h.update(b"\n")
        got[h.hexdigest()] = len(frames)
    assert got == truth, (sorted(got.values()), sorted(truth.values()))
    return by_conn


def _e6(text: str) -> int:
    return int(Decimal(text) * 1_000_000)


def check_books(sim: Simulator, msgs: list[Any], tickers: list[str]) -> None:
    """Books rebuilt from the stream's normalized records equal the simulator's final books."""
    books = core.BookSet()
    for m in msgs:
        if m.subject.startswith(f"{PREFIX}.orderbook."):
            books.apply(m.data)
    final = sim.truth.books
    for t in tickers:
        view = books.view(t)
        assert view is not None, t
        assert view.valid, t
        state = final[t]
        bids = sorted(((_e6(p), _e6(s)) for p, s in state.yes), reverse=True)
        asks = sorted((1_000_000 - _e6(p), _e6(s)) for p, s in state.no)
        assert view.bids == bids, t
        assert view.asks == asks, t


def events(msgs: list[Any], kind: str | None = None) -> list[dict[str, Any]]:
    out = []
    for m in msgs:
        if m.subject.startswith(f"{PREFIX}.events."):
            (rec,) = core.decode_records(m.data)
            if kind is None or rec["event"] == kind:
                out.append(rec)
    return out
