"""Order-book resyncs: after a sequence gap, fresh snapshots until the books are exact.

A gap on a book subscription (one `sid` of one connection) leaves the books of the
markets it named unknown until each has a new snapshot. `Resyncs` keeps, per
(conn_id, sid), the markets still waiting, and escalates for each:

1. ask for snapshots of the waiting markets; if they are not all in within `timeout`,
   ask again for the missing ones (`retries` times);
2. unsubscribe the channel and subscribe it again (a subscription starts with
   snapshots);
3. drop the connection: the reconnect subscribes everything afresh.

A newer connection ends the escalation (its subscriptions start with snapshots); the
markets stay waiting until those snapshots arrive, so the subscription that had the gap
is still reported exact again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from ssmd.connector.shards import Shard

__all__ = ["Key", "Resyncs"]

log = logging.getLogger(__name__)

Key = tuple[int, int]  # (conn_id, sid)
# (shard, key, reason, waiting markets): an escalation went past a step's last try.
Escalated = Callable[[Shard, Key, str, list[str]], None]


class Resyncs:
    def __init__(
        self,
        *,
        timeout: float,
        retries: int,
        spawn: Callable[[Coroutine[Any, Any, None]], None],
        on_escalate: Escalated,
        on_timeout: Callable[[], None],
    ) -> None:
        self.timeout = timeout
        self.retries = retries
        self._spawn = spawn
        self._on_escalate = on_escalate
        self._on_timeout = on_timeout
        self._waiting: dict[Key, set[str]] = {}
        self._done: dict[Key, asyncio.Event] = {}

    def __len__(self) -> int:
        """Subscriptions whose books await snapshots right now."""
        return len(self._waiting)

    def gap(self, shard: Shard, key: Key, tickers: list[str]) -> None:
        """The books of `tickers` on `key` are unknown: start (or widen) its resync."""
        fresh = key not in self._waiting
        self._waiting.setdefault(key, set()).update(tickers)
        if fresh:
            self._done[key] = asyncio.Event()
            self._spawn(self._escalate(shard, key))

    def snapshot(self, ticker: str) -> list[Key]:
        """A snapshot of `ticker` arrived; returns the subscriptions it made exact."""
        exact = []
        for key, waiting in list(self._waiting.items()):
            waiting.discard(ticker)
            if not waiting:
                del self._waiting[key]
                self._done.pop(key).set()
                exact.append(key)
        return exact

    async def _exact_within_timeout(self, done: asyncio.Event) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.timeout):
                await done.wait()
                return True
        return False

    def _current(self, shard: Shard, key: Key) -> bool:
        """Still waiting, on the connection that had the gap."""
        return key in self._waiting and shard.conn_id == key[0]

    async def _escalate(self, shard: Shard, key: Key) -> None:
        sid, done = key[1], self._done[key]
        for attempt in range(self.retries + 1):
            if not self._current(shard, key):
                return
            await shard.snapshot(sid, sorted(self._waiting[key]))
            if await self._exact_within_timeout(done):
                return
            self._on_timeout()
            log.warning("no snapshot within %ss after get_snapshot %d", self.timeout, attempt)
        if not self._current(shard, key):
            return
        self._on_escalate(
            shard,
            key,
            f"sid {sid}: no snapshot after {self.retries + 1} get_snapshot; resubscribing",
            sorted(self._waiting[key]),
        )
        if await shard.resubscribe(sid) and await self._exact_within_timeout(done):
            return
        if self._current(shard, key):
            shard.kill(f"sid {sid}: no snapshot after resubscribing")
