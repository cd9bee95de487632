"""Helpers for tests and benchmarks of ssmd and of programs built on it: a real
nats-server with JetStream in a temporary directory (`ssmd.testing.nats`), a connector
run against the simulator (`ssmd.testing.connector`), synthetic Kalshi frames
(`ssmd.testing.frames`) and a plain-Python reference normalizer
(`ssmd.testing.reference_kalshi`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["until"]


async def until(pred: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    """Poll `pred` every 10 ms until it holds; AssertionError naming `what` after `timeout`."""
    try:
        async with asyncio.timeout(timeout):
            while not pred():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None
