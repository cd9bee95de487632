"""Helpers for tests and benchmarks of ssmd and of programs built on it: a real
nats-server with JetStream in a temporary directory (`ssmd.testing.nats`), a connector
run against the simulator (`ssmd.testing.connector`), synthetic Kalshi frames
(`ssmd.testing.frames`) and a plain-Python reference normalizer
(`ssmd.testing.reference_kalshi`)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

__all__ = ["until"]


async def until(
    pred: Callable[[], Any],
    timeout: float = 30.0,
    what: str = "condition",
    alive: Callable[[], object] | None = None,
    *,
    every: float = 0.01,
) -> Any:
    """Poll `pred` every `every` seconds until it returns something true, and return
    that (a coroutine it returns is awaited). `alive`, called before each poll, raises
    when something the wait depends on has died. AssertionError naming `what` after
    `timeout`."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                if alive is not None:
                    alive()
                result = pred()
                if inspect.isawaitable(result):
                    result = await result
                if result:
                    return result
                await asyncio.sleep(every)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None
