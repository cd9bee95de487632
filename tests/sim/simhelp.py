"""Helpers for simulator tests: a raw WebSocket client that waits for conditions, never sleeps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

from ssmd.sim import ManualClock, Simulator

T0 = 1_784_557_805.0  # 2026-07-20 14:30:05 UTC, inside a 15-minute window


class Client:
    """Keeps every frame received (raw text) and can wait for a predicate over them."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.raw: list[str] = []
        self.frames: list[dict[str, Any]] = []
        self.bad: list[str] = []
        self._next_id = 1

    async def send(
        self, cmd: str, params: dict[str, Any] | None = None, cid: int | None = None
    ) -> int:
        if cid is None:
            cid = self._next_id
            self._next_id += 1
        body: dict[str, Any] = {"id": cid, "cmd": cmd}
        if params is not None:
            body["params"] = params
        await self.ws.send(orjson.dumps(body).decode())
        return cid

    async def until(
        self, pred: Callable[[list[dict[str, Any]]], bool], timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        async with asyncio.timeout(timeout):
            while not pred(self.frames):
                raw = await self.ws.recv()
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
        """Wait until the simulator is idle and every frame it sent on this connection arrived.

        Only meaningful once the server has answered this client's last command."""
        await sim.wait_idle(timeout)
        rec = next(
            r
            for r in sim.truth.connections.values()
            if r.closed_at is None and r.number == max(sim.connections)
        )
        return await self.until(lambda fs: len(self.raw) >= rec.frames_sent, timeout)

    def of(self, typ: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f.get("type") == typ]


@asynccontextmanager
async def client(sim: Simulator, headers: dict[str, str] | None = None) -> AsyncIterator[Client]:
    async with connect(
        sim.ws_url,
        additional_headers=sim.auth_headers() if headers is None else headers,
        max_size=None,
        compression=None,
        open_timeout=5,
        ping_interval=None,
    ) as ws:
        yield Client(ws)


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
