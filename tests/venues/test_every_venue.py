"""Every venue through the same pipeline, by one parametrized fixture: the connector
captures the venue's simulator (every frame once, the books equal the simulator's), the
archiver archives that stream (raw frames and normalized records, as the stream holds
them), and a gateway on it serves the simulator's books. Nothing here names a venue
but the fixture's cases: an assumption that only holds for Kalshi fails for the others.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import ssmd.data
from _support import connfix, venuefix
from _support.archfix import ack_floor
from _support.archfix import running as archiving
from _support.archfix import settings as archiver_settings
from _support.gwfix import Client, running_gateway
from ssmd import core
from ssmd.config import Overrides, ResolvedEnvironment, load_environment
from ssmd.connector.runner import Connector
from ssmd.data.source import Dataset
from ssmd.gateway.settings import GatewaySettings
from ssmd.sim.kraken import KrakenSimulator
from ssmd.sim.polymarket import PolymarketSimulator
from ssmd.sim.venue_server import VenueServer
from ssmd.testing import until
from ssmd.testing.connector import streaming, tickers_symbols
from ssmd.testing.nats import NatsServer, client, nats_server, read_stream

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
E6 = 1_000_000
Book = tuple[list[tuple[int, int]], list[tuple[int, int]]]  # bids, asks as (price, size) e6


@dataclass
class Capture:
    """A venue's capture: its environment and nats-server, the simulator's books once
    the flow stopped, and (when the connector has stopped) the stream's messages."""

    env: ResolvedEnvironment
    nats: NatsServer
    books: dict[str, Book]
    check_exactly_once: Callable[[list[Any]], None]
    msgs: list[Any] = field(default_factory=list)

    @property
    def prefix(self) -> str:
        return self.env.nats.subject_prefix


# ---- the cases: how each venue's simulator is run and read --------------------------


def _environment(name: str, sim: Any, nats: NatsServer, tmp: Path) -> ResolvedEnvironment:
    return load_environment(
        name,
        ROOT / "exchanges",
        Overrides(ws_url=sim.ws_url, rest_url=sim.rest_url, nats_url=nats.url, data_dir=str(tmp)),
        environ={},
    )


async def _published_all(conn: Connector, sent: Callable[[], int]) -> None:
    p = conn.publisher
    await until(
        lambda: (
            conn.frames_in >= sent()
            and conn.queue.empty()
            and p is not None
            and p.inflight == 0
            and not p.recovering
        ),
        30,
        "the connector to publish everything sent",
    )


@contextlib.asynccontextmanager
async def kalshi(tmp: Path, nats: NatsServer) -> AsyncIterator[Capture]:
    sim, _clock = connfix.manual_sim(seed=3)
    async with sim:
        tickers = connfix.open_markets(sim, 8)
        settings = connfix.settings_for(sim, nats, tmp, symbols=tickers_symbols(tickers))
        async with connfix.running(settings) as conn:
            await until(lambda: streaming(conn, len(tickers)), what="every market subscribed")
            await connfix.drive(sim, conn, 10)
            books = {}
            for t in tickers:
                state = sim.book(t)
                bids = sorted(((_e6(p), _e6(s)) for p, s in state.yes), reverse=True)
                asks = sorted((E6 - _e6(p), _e6(s)) for p, s in state.no)
                books[t] = (bids, asks)
            env = _environment("kalshi-sim", sim, nats, tmp)
            yield Capture(env, nats, books, lambda msgs: connfix.check_exactly_once(sim, msgs))


def kraken(tmp: Path, nats: NatsServer) -> contextlib.AbstractAsyncContextManager[Capture]:
    sim = KrakenSimulator(pairs=4, rate=100.0, seed=7)

    def book_of(symbol: str) -> Book:
        pair = sim.pair(symbol)
        bids, asks = sim.levels(symbol, 10)
        pd, qd = pair.price_decimals, pair.qty_decimals
        return (
            [(_units_e6(p, pd), _units_e6(q, qd)) for p, q in bids],
            [(_units_e6(p, pd), _units_e6(q, qd)) for p, q in asks],
        )

    return _realtime("kraken-sim", sim, sim.symbols(), book_of, tmp, nats)


def polymarket(tmp: Path, nats: NatsServer) -> contextlib.AbstractAsyncContextManager[Capture]:
    sim = PolymarketSimulator(markets=4, rate=100.0, seed=7)

    def book_of(token: str) -> Book:
        bids, asks = sim.levels(token)
        return [(_e6(p), _e6(s)) for p, s in bids], [(_e6(p), _e6(s)) for p, s in asks]

    return _realtime("polymarket-sim", sim, sim.tokens(), book_of, tmp, nats)


@contextlib.asynccontextmanager
async def _realtime(
    env_name: str,
    sim: VenueServer,
    symbols: list[str],
    book_of: Callable[[str], Book],
    tmp: Path,
    nats: NatsServer,
) -> AsyncIterator[Capture]:
    """A simulator with real-time order flow (the venues other than Kalshi's)."""
    async with sim:
        settings = venuefix.settings_for(env_name, sim, nats, tmp)
        async with connfix.running(settings) as conn:
            await _flow(conn, sim, symbols)
            books = {symbol: book_of(symbol) for symbol in symbols}
            env = _environment(env_name, sim, nats, tmp)
            yield Capture(env, nats, books, lambda msgs: venuefix.check_exactly_once(sim, msgs))


async def _flow(conn: Connector, sim: VenueServer, symbols: list[str]) -> None:
    """Order flow on every symbol of a real-time simulator, then the flow stopped and
    everything it sent published."""
    await until(
        lambda: sum(len(s.subscribed) for s in conn.shards.shards.values()) == len(symbols),
        15,
        "every symbol subscribed",
    )
    await until(lambda: sim.events > 300, 15, "order flow")
    await sim.pause()
    await _published_all(conn, lambda: sum(sim.frames_sent.values()))


def _e6(value: Any) -> int:
    return int(Decimal(str(value)) * E6)


def _units_e6(units: int, decimals: int) -> int:
    """Units of 10^-decimals as the nearest 1e-6 (half away from zero), as records do."""
    if decimals <= 6:
        return units * 10 ** (6 - decimals)
    div = 10 ** (decimals - 6)
    return (units + div // 2) // div


CASES = {"kalshi": kalshi, "kraken": kraken, "polymarket": polymarket}


Step = Callable[[Capture], Awaitable[None]]


@pytest.fixture(params=sorted(CASES))
def venue(request: pytest.FixtureRequest) -> Callable[..., Coroutine[Any, Any, Capture]]:
    """Runs the venue's capture on a fresh nats-server: `live` while the connector still
    runs (the flow stopped, everything sent published), then the connector stopped and
    the stream read into `msgs`, then `after` with that server still up."""
    case = CASES[request.param]

    async def run(tmp: Path, live: Step | None = None, after: Step | None = None) -> Capture:
        async with nats_server(tmp / "nats") as nats:
            async with case(tmp, nats) as cap:
                if live is not None:
                    await live(cap)
            async with client(nats.url) as nc:
                cap.msgs = await read_stream(nc, cap.env.nats.stream)
            if after is not None:
                await after(cap)
        return cap

    return run


# ---- the suites ---------------------------------------------------------------------


def test_the_connector_captures_every_frame_once_and_exact_books(
    venue: Callable[..., Coroutine[Any, Any, Capture]], tmp_path: Path
) -> None:
    cap = asyncio.run(venue(tmp_path))
    cap.check_exactly_once(cap.msgs)
    books = core.BookSet()
    for m in cap.msgs:
        if m.subject.startswith(f"{cap.prefix}.orderbook."):
            books.apply(m.data)
    assert cap.books
    for symbol, (bids, asks) in cap.books.items():
        view = books.view(symbol)
        assert view is not None and view.valid, symbol
        assert (view.bids, view.asks) == (bids, asks), symbol
    assert venuefix.events(cap.msgs, cap.prefix, "gap") == []


def test_the_archive_holds_what_the_stream_holds(
    venue: Callable[..., Coroutine[Any, Any, Capture]], tmp_path: Path
) -> None:
    started = datetime.now(UTC).date()

    async def archive(cap: Capture) -> None:
        last = cap.msgs[-1].metadata.sequence.stream
        settings = archiver_settings(cap.env)
        async with archiving(settings):
            await until(lambda: _acked(cap, settings.consumer.durable, last), 60, "the acks")

    cap = asyncio.run(venue(tmp_path, after=archive))
    ended = datetime.now(UTC).date()
    ds = Dataset.open(cap.env.name, data_dir=cap.env.data_dir, config_dir=ROOT / "exchanges")
    raw = ssmd.data.raw(started, ended, dataset=ds).collect().sort("stream_seq")
    archived: dict[int, list[bytes]] = {}
    for conn, frame in zip(raw["conn_id"], raw["frame"], strict=True):
        archived.setdefault(int(conn), []).append(frame)
    assert archived == connfix.raw_by_conn(cap.msgs)

    streamed: Counter[bytes] = Counter()
    types = set()
    for m in cap.msgs:
        record_type = m.subject.split(".")[2]
        if record_type not in ("raw", "events", "book"):  # checkpoints are not archived
            streamed[m.data] += 1
            types.add(record_type)
    stored: Counter[bytes] = Counter()
    for record_type in types:
        for day in {started, ended}:
            for file in ds.normalized_files(record_type, day):
                data = core.read_archive(file.load()).data
                stored.update(data[a:b] for a, b in core.record_spans(data))
    assert streamed and stored == streamed


def test_a_gateway_on_the_stream_serves_the_venues_books(
    venue: Callable[..., Coroutine[Any, Any, Capture]], tmp_path: Path
) -> None:
    served: dict[str, dict[str, Any]] = {}

    async def serve(cap: Capture) -> None:
        settings = GatewaySettings.from_environment(cap.env, insecure_no_auth=True)
        async with running_gateway(settings) as gw, Client.connect(gw.ws) as ws:
            await ws.send({"action": "subscribe", "symbols": sorted(cap.books)})
            others: list[dict[str, Any]] = []
            try:
                # One deadline for the whole exchange: the books come once the gateway has
                # read the stream up to its end, which takes longer on a loaded machine.
                async with asyncio.timeout(60):
                    while len(served) < len(cap.books):
                        msg = await ws.recv(timeout=60)
                        if msg["type"] == "orderbook":
                            served[msg["ticker"]] = msg
                        else:
                            others.append(msg)
            except TimeoutError:
                missing = sorted(set(cap.books) - set(served))
                pytest.fail(f"no book for {missing} within 60 s; other messages: {others}")

    cap = asyncio.run(venue(tmp_path, live=serve))
    for symbol, (bids, asks) in cap.books.items():
        book = served[symbol]
        assert book["valid"], symbol
        assert [(_e6(p), _e6(s)) for p, s in book["bids"]] == bids, symbol
        assert [(_e6(p), _e6(s)) for p, s in book["asks"]] == asks, symbol


async def _acked(cap: Capture, durable: str, last_seq: int) -> bool:
    return await ack_floor(cap.nats.url, durable, cap.env.nats.stream) >= last_seq
