"""Gateway test helpers: a stream fed with records, a gateway served in-process on a free
port, WebSocket clients, and an independent BookSet as the truth for books."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import httpx
import websockets
from websockets.asyncio.client import ClientConnection

from _support.connfix import drive, manual_sim, open_markets, running, settings_for
from ssmd import core
from ssmd.bus import subjects
from ssmd.bus.connection import connect
from ssmd.bus.stream import ensure_stream
from ssmd.config import NatsSettings
from ssmd.gateway import Gateway, GatewaySettings, render
from ssmd.gateway.listener import GatewayServer
from ssmd.testing import until
from ssmd.testing.connector import streaming, tickers_symbols
from ssmd.testing.nats import NatsServer, free_port, nats_server

__all__ = [
    "ENV",
    "FEED",
    "PREFIX",
    "Client",
    "Publisher",
    "Running",
    "Truth",
    "expected_book",
    "gateway_settings",
    "nats_server",
    "running_gateway",
    "until",
]

ENV, FEED = "gwtest", "kalshi"
PREFIX = f"{ENV}.{FEED}"
STREAM = "SSMD_GWTEST"
E6 = 1_000_000
CENT = 10_000


def gateway_settings(url: str, feed: str = FEED, **changes: Any) -> GatewaySettings:
    """Settings of a gateway of `feed` (another one than FEED has a stream of its own, as
    a further venue of an environment)."""
    nats = NatsSettings(
        url=url,
        stream=STREAM if feed == FEED else f"{STREAM}_{feed.upper()}",
        subject_prefix=f"{ENV}.{feed}",
        retention=timedelta(hours=48),
        duplicate_window=timedelta(minutes=2),
        replicas=1,
    )
    changes.setdefault("idle_heartbeat", 0.5)
    changes.setdefault("stream_wait", 0.1)
    return GatewaySettings(env=ENV, feed=feed, nats=nats, **changes)


# ---- records ------------------------------------------------------------------------------


def snapshot(
    ticker: str,
    yes: list[tuple[int, int]],
    no: list[tuple[int, int]],
    *,
    conn: int = 1,
    sid: int = 1,
    seq: int = 1,
) -> dict[str, Any]:
    return {
        "kind": "book_snapshot",
        "ticker": ticker,
        "yes": yes,
        "no": no,
        "conn_id": conn,
        "sid": sid,
        "seq": seq,
    }


def delta(
    ticker: str, side: str, price: int, change: int, *, conn: int = 1, sid: int = 1, seq: int
) -> dict[str, Any]:
    return {
        "kind": "book_delta",
        "ticker": ticker,
        "side": side,
        "price_e6": price,
        "delta_e6": change,
        "conn_id": conn,
        "sid": sid,
        "seq": seq,
    }


def trade(
    ticker: str, price: int, size: int, taker: str = "yes", *, trade_id: str = "", seq: int = 0
) -> dict[str, Any]:
    return {
        "kind": "trade",
        "ticker": ticker,
        "trade_id": trade_id or f"t{seq}",
        "price_e6": price,
        "no_price_e6": E6 - price,
        "size_e6": size,
        "taker_outcome": taker,
        "conn_id": 1,
        "sid": 9,
        "seq": seq,
    }


def status(ticker: str, value: str) -> dict[str, Any]:
    return {"kind": "status", "ticker": ticker, "status": value, "status_text": value}


def connector_event(kind: str, conn: int, tickers: list[str] | None = None) -> dict[str, Any]:
    return {"kind": "connector_event", "event": kind, "conn_id": conn, "tickers": tickers or []}


def checkpoint(
    ticker: str,
    bids: list[tuple[int, int]],
    asks: list[tuple[int, int]],
    valid: bool,
    *,
    conn: int,
    sid: int,
    seq: int,
) -> dict[str, Any]:
    return {
        "kind": "book",
        "ticker": ticker,
        "bids": bids,
        "asks": asks,
        "valid": valid,
        "conn_id": conn,
        "sid": sid,
        "seq": seq,
    }


_SUBJECT_TYPE = {
    "book_snapshot": "orderbook",
    "book_delta": "orderbook",
    "spot_book": "orderbook",
    "book": "book",
    "trade": "trade",
    "status": "status",
    "lifecycle": "lifecycle",
}


class Truth:
    """An independent BookSet fed every order-book record published (the expected books)."""

    def __init__(self) -> None:
        self.books = core.BookSet()

    def apply(self, rec: dict[str, Any]) -> None:
        if rec["kind"] in ("book_snapshot", "book_delta", "spot_book"):
            self.books.apply(core.encode_records([rec]))
        elif rec["kind"] == "connector_event" and rec["event"] == "disconnected":
            self.books.close_connection(rec["conn_id"])

    def book(self, ticker: str) -> dict[str, Any]:
        v = self.books.view(ticker)
        assert v is not None, ticker
        return expected_book(ticker, v.bids, v.asks, v.valid)


def expected_book(
    ticker: str, bids: list[tuple[int, int]], asks: list[tuple[int, int]], valid: bool
) -> dict[str, Any]:
    """The orderbook message for a view, without its ts."""
    msg: dict[str, Any] = json.loads(render.orderbook(ticker, bids, asks, valid, 0))
    del msg["ts"]
    return msg


@dataclass
class Publisher:
    """Publishes records to the test stream (one record per message, as the connector)."""

    url: str
    feed: str = FEED
    truth: Truth = field(default_factory=Truth)
    nc: Any = None
    receive_ns: Callable[[], int] = field(default=time.time_ns)
    count: int = 0

    async def start(self) -> Publisher:
        self.nc = await connect(self.url, "gateway-test-publisher")
        await ensure_stream(self.nc.jetstream(), gateway_settings(self.url, self.feed).nats)
        return self

    async def close(self) -> None:
        if self.nc is not None:
            await self.nc.close()

    def subject(self, rec: dict[str, Any]) -> str:
        if rec["kind"] == "connector_event":
            return subjects.event(ENV, self.feed, rec["event"])
        return subjects.record(ENV, self.feed, _SUBJECT_TYPE[rec["kind"]], rec["ticker"])

    async def publish(self, *records: dict[str, Any]) -> None:
        js = self.nc.jetstream()
        for rec in records:
            rec = {"receive_ts": self.receive_ns(), **rec}
            self.count += 1
            await js.publish(self.subject(rec), core.encode_records([rec]))
            self.truth.apply(rec)

    async def publish_fast(self, records: list[dict[str, Any]], window: int = 256) -> None:
        """Many records: acks awaited in windows, order kept (one subject order per stream)."""
        js = self.nc.jetstream()
        pending: list[asyncio.Future[Any]] = []
        for rec in records:
            rec = {"receive_ts": self.receive_ns(), **rec}
            self.count += 1
            pending.append(await js.publish_async(self.subject(rec), core.encode_records([rec])))
            self.truth.apply(rec)
            if len(pending) >= window:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)


@contextlib.asynccontextmanager
async def publisher(url: str, feed: str = FEED) -> AsyncIterator[Publisher]:
    pub = await Publisher(url, feed).start()
    try:
        yield pub
    finally:
        await pub.close()


# ---- the gateway --------------------------------------------------------------------------


@dataclass
class Running:
    gw: Gateway
    port: int
    server: GatewayServer | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/stream"

    async def aget(self, path: str, **kw: Any) -> httpx.Response:
        async with httpx.AsyncClient(timeout=10) as c:
            return await c.get(self.http + path, **kw)


@contextlib.asynccontextmanager
async def running_gateway(
    settings: GatewaySettings, ready: bool = True, stream: bool = True
) -> AsyncIterator[Running]:
    """A gateway served by its listener in this event loop on a free port (`stream=False`:
    the stream on uvicorn's stock WebSocket protocol instead of the gateway's own)."""
    gw = Gateway(replace(settings, port=0))
    server = gw.server(port=0, stream=stream)
    task = asyncio.create_task(server.serve())
    try:
        await until(lambda: server.started or task.done(), 20, "the gateway to listen")
        if task.done():
            task.result()
            raise AssertionError("the gateway stopped at start")
        port = server.port
        if ready:
            feeds = gw.feeds.values()
            await until(lambda: all(f.ready for f in feeds), 20, "the gateway to catch up")
        yield Running(gw, port, server)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 20)


# ---- WebSocket clients --------------------------------------------------------------------


class Client:
    """A WebSocket client that keeps what it received, by type."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.messages: list[dict[str, Any]] = []

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, url: str, **kw: Any) -> AsyncIterator[Client]:
        async with websockets.connect(url, max_size=None, **kw) as conn:
            yield cls(conn)

    async def send(self, obj: Any) -> None:
        await self.conn.send(obj if isinstance(obj, str) else json.dumps(obj))

    async def recv(self, timeout: float = 10.0) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.conn.recv(), timeout)
        msg: dict[str, Any] = json.loads(raw)
        self.messages.append(msg)
        return msg

    async def recv_until(
        self, pred: Callable[[dict[str, Any]], bool], timeout: float = 15.0
    ) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                msg = await self.recv(timeout)
                if pred(msg):
                    return msg

    def of(self, kind: str, ticker: str | None = None) -> list[dict[str, Any]]:
        return [
            m
            for m in self.messages
            if m["type"] == kind and (ticker is None or m.get("ticker") == ticker)
        ]

    def book(self, ticker: str) -> dict[str, Any] | None:
        books = self.of("orderbook", ticker)
        if not books:
            return None
        last = dict(books[-1])
        last.pop("ts")
        return last


def tickers(n: int, prefix: str = "KXTEST-26JUL20-T") -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


__all__ += ["NatsServer", "checkpoint", "connector_event", "delta", "publisher", "snapshot"]
__all__ += ["status", "tickers", "trade"]
__all__ += ["drive", "free_port", "manual_sim", "open_markets", "running", "settings_for"]
__all__ += ["streaming", "tickers_symbols"]
