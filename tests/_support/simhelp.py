"""Helpers for simulator tests: a raw WebSocket client that waits for conditions, never sleeps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import orjson
from websockets.frames import Frame, Opcode

from ssmd.sim import ConnectionRecord, ManualClock, Simulator
from ssmd.sim.wsshell import SimSocket, connect
from ssmd.testing import until

T0 = 1_784_557_805.0  # 2026-07-20 14:30:05 UTC, inside a 15-minute window


async def wait_for(pred: Callable[[], bool], timeout: float = 10.0) -> None:
    """Yield to the event loop until `pred()` holds (a condition, not a time): the
    simulator's manual clock moves only when a test moves it, so nothing is gained by
    waiting longer between polls."""
    await until(pred, timeout, "the simulator's condition", every=0.0)


class Closed(Exception):
    """The connection closed; `code` is that of the server's close frame, None when the
    socket was dropped without one."""

    def __init__(self, code: int | None) -> None:
        super().__init__(f"connection closed (code {code})")
        self.code = code


class Client:
    """Keeps every frame received (raw text) and can wait for a predicate over them.

    It also records the control frames it gets: the payloads of server pings (with the
    simulator clock time they were seen at) and of pongs; `answer_pings=False` makes it
    stop answering server pings."""

    def __init__(self, ws: SimSocket, sim: Simulator | None = None) -> None:
        self.ws = ws
        self.sim = sim
        self.raw: list[str] = []
        self.frames: list[dict[str, Any]] = []
        self.bad: list[str] = []
        self._next_id = 1
        self.commands_sent = 0
        self.server_pings: list[tuple[float, bytes]] = []
        self.pongs: list[bytes] = []
        ws.on_control = self._control

    @property
    def answer_pings(self) -> bool:
        return self.ws.answer_pings

    @answer_pings.setter
    def answer_pings(self, answer: bool) -> None:
        self.ws.answer_pings = answer

    def _control(self, frame: Frame) -> None:
        if frame.opcode is Opcode.PING:
            now = self.sim.clock.now() if self.sim else 0.0
            self.server_pings.append((now, bytes(frame.data)))
        elif frame.opcode is Opcode.PONG:
            self.pongs.append(bytes(frame.data))

    async def send(
        self, cmd: str, params: dict[str, Any] | None = None, cid: int | None = None
    ) -> int:
        if cid is None:
            cid = self._next_id
            self._next_id += 1
        body: dict[str, Any] = {"id": cid, "cmd": cmd}
        if params is not None:
            body["params"] = params
        await self.send_raw(orjson.dumps(body).decode())
        return cid

    async def send_raw(self, text: str) -> None:
        if not await self.ws.send(text):
            raise Closed(self.ws.close_code)
        self.commands_sent += 1

    def record(self, sim: Simulator) -> ConnectionRecord:
        """The simulator's record of this connection (matched by socket address)."""
        for rec in sim.truth.connections.values():
            if rec.peer is not None and rec.peer == self.ws.local:
                return rec
        raise LookupError("connection not known to the simulator")

    async def settle(self, sim: Simulator, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The server read every command sent, the flow caught up with the clock, and every
        frame the server wrote on this connection has been received."""
        rec = self.record(sim)
        await wait_for(
            lambda: rec.commands >= self.commands_sent or rec.closed_at is not None, timeout
        )
        await sim.wait_idle(timeout)
        return await self.until(lambda fs: len(self.raw) >= rec.frames_sent, timeout)

    async def until(
        self, pred: Callable[[list[dict[str, Any]]], bool], timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        async with asyncio.timeout(timeout):
            while not pred(self.frames):
                raw = await self.ws.recv()
                if raw is None:
                    raise Closed(self.ws.close_code)
                assert isinstance(raw, str)
                self.raw.append(raw)
                try:
                    self.frames.append(orjson.loads(raw))
                except orjson.JSONDecodeError:
                    self.bad.append(raw)
        return self.frames

    async def count(self, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        return await self.until(lambda fs: len(fs) + len(self.bad) >= n, timeout)

    async def drain(self, sim: Simulator, timeout: float = 10.0) -> list[dict[str, Any]]:
        return await self.settle(sim, timeout)

    def of(self, typ: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f.get("type") == typ]

    async def subscribe_all(self, sim: Simulator) -> list[str]:
        """Subscribes the book, trade and ticker channels of every active market and waits
        for the three acks and every snapshot; the tickers."""
        tickers = sorted(m.ticker for m in sim.universe.active())
        channels = ["orderbook_delta", "trade", "ticker"]
        await self.send("subscribe", {"channels": channels, "market_tickers": tickers})
        await self.until(
            lambda fs: (
                len(self.of("subscribed")) == 3
                and len(self.of("orderbook_snapshot")) == len(tickers)
            )
        )
        return tickers


@asynccontextmanager
async def client(sim: Simulator, headers: dict[str, str] | None = None) -> AsyncIterator[Client]:
    """A connected `Client`; closed (1000) on exit."""
    async with asyncio.timeout(5):
        ws = await connect(sim.ws_url, sim.auth_headers() if headers is None else headers)
    try:
        yield Client(ws, sim)
    finally:
        await ws.close(1000, "")


def manual_sim(**kw: Any) -> tuple[Simulator, ManualClock]:
    clock = ManualClock(T0)
    kw.setdefault("rate", 100.0)
    kw.setdefault("markets", 40)
    return Simulator(clock=clock, **kw), clock


def apply_book(frames: list[dict[str, Any]]) -> dict[str, dict[str, dict[Decimal, Decimal]]]:
    """Rebuild books from era-C orderbook frames (default use_yes_price=false)."""
    books: dict[str, dict[str, dict[Decimal, Decimal]]] = {}
    for f in frames:
        if f.get("type") == "orderbook_snapshot":
            m = f["msg"]
            books[m["market_ticker"]] = {
                side: {Decimal(p): Decimal(s) for p, s in m.get(f"{side}_dollars_fp", [])}
                for side in ("yes", "no")
            }
        elif f.get("type") == "orderbook_delta":
            m = f["msg"]
            side = books[m["market_ticker"]][m["side"]]
            p = Decimal(m["price_dollars"])
            side[p] = side.get(p, Decimal(0)) + Decimal(m["delta_fp"])
            assert side[p] >= 0
            if side[p] == 0:
                del side[p]
    return books


def as_decimal(levels: tuple[tuple[str, str], ...]) -> dict[Decimal, Decimal]:
    return {Decimal(p): Decimal(s) for p, s in levels}
