"""asyncio helpers the components share."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

__all__ = ["cancel_and_wait"]


async def cancel_and_wait(task: asyncio.Task[Any], every: float = 1.0) -> None:
    """Cancel `task` and wait until it is done, cancelling it again every `every` seconds
    while it runs. One cancellation can be lost: on Python 3.11 `asyncio.wait_for` returns
    the result of a future that completed as the cancellation came, and a loop that
    retries on errors then runs on, so a stop that cancels once waits forever. What the
    task raised or returned is dropped: it is being stopped."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=every)
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
