"""Clocks the simulator runs on: real time, accelerated time, or a manual clock for tests."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol

__all__ = ["AcceleratedClock", "Clock", "ManualClock", "RealClock"]


class Clock(Protocol):
    """Unix time in seconds, and a way to wait until a given time."""

    def now(self) -> float: ...

    async def wait_until(self, t: float) -> None: ...


class RealClock:
    """Wall-clock time."""

    def now(self) -> float:
        return time.time()

    async def wait_until(self, t: float) -> None:
        delay = t - time.time()
        if delay > 0:
            await asyncio.sleep(delay)


class AcceleratedClock:
    """Time that runs `factor` times faster than the wall clock, from `start` (default now)."""

    def __init__(self, factor: float, start: float | None = None) -> None:
        if factor <= 0:
            raise ValueError("factor must be > 0")
        self.factor = factor
        self._start = time.time() if start is None else start
        self._mono0 = time.monotonic()

    def now(self) -> float:
        return self._start + (time.monotonic() - self._mono0) * self.factor

    async def wait_until(self, t: float) -> None:
        delay = (t - self.now()) / self.factor
        if delay > 0:
            await asyncio.sleep(delay)


class ManualClock:
    """A clock that only moves when told to; waiters wake when it passes their time."""

    def __init__(self, start: float = 1_784_557_800.0) -> None:
        self._now = start
        self._waiters: list[tuple[float, int, asyncio.Future[None]]] = []
        self._ids = itertools.count()

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self.set(self._now + seconds)

    def set(self, t: float) -> None:
        if t < self._now:
            raise ValueError("a ManualClock never goes backwards")
        self._now = t
        while self._waiters and self._waiters[0][0] <= t:
            _, _, fut = heapq.heappop(self._waiters)
            if not fut.done():
                fut.set_result(None)

    async def wait_until(self, t: float) -> None:
        if t <= self._now:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (t, next(self._ids), fut))
        await fut
