"""Which markets the shards hold: the venue's selection (ssmd.venues.base.Selector),
applied to the shard set at start, after every lifecycle record that changed it (new and
closing markets), every sweep interval (markets the clock opened or closed) and, with a
fresh read of the venue's listing, every sync interval.

Each sweep also compares the selection with what the exchange acknowledged (not with
what was asked of it): a market refused or asked with no reply is asked again, each shard
after its own backoff (ssmd.connector.shards).

A read of the listing that fails (the venue unreachable, a 401, the store gone) is
counted and read again after a backoff, not a whole sync interval later; the selection
keeps what it knew. Until one read succeeds the connector has no selection of its own
(`selected` is false): /health says so, with the reason.

A process of shard group 0 reads the lifecycle records from its own batches; the other
groups read the ones group 0 published (`follow`), so each group takes up new markets as
fast as group 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from ssmd import core
from ssmd.connector.shards import ShardSet
from ssmd.venues.base import Selector

__all__ = ["Tracking"]

log = logging.getLogger(__name__)


class Tracking:
    def __init__(
        self,
        selection: Selector,
        shards: ShardSet,
        *,
        sync_interval: float,
        sweep_interval: float,
        on_refresh_error: Callable[[], None],
        retry_base: float = 1.0,
        retry_cap: float = 60.0,
    ) -> None:
        self.selection = selection
        self.shards = shards
        self.sync_interval = sync_interval
        self.sweep_interval = sweep_interval
        self.on_refresh_error = on_refresh_error
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self.desired: set[str] = set()  # what the selection asked for at the last sweep
        self.selected = False  # a read of the listing has succeeded
        self.refresh_error = ""  # why the last read failed ("" when it did not)
        self.refresh_failures = 0  # reads in a row that failed
        self._next_refresh = 0.0  # monotonic time of the next read
        self._changed = asyncio.Event()

    def lifecycle(self, recs: Iterable[dict[str, Any]]) -> None:
        """Lifecycle records of a batch: the shards follow at once when they changed the
        selection."""
        if any([self.selection.on_lifecycle(rec) for rec in recs]):  # every record is read
            self._changed.set()

    async def follow(self, msg: Any) -> None:
        """A lifecycle record group 0 published (a NATS message)."""
        try:
            decoded = core.decode_records(msg.data)
        except ValueError as exc:
            log.warning("unreadable lifecycle record on %s: %s", msg.subject, exc)
            return
        self.lifecycle(decoded)

    async def refresh(self) -> None:
        """Read the listing again and plan the next read: a sync interval after a success,
        a backoff after a failure (counted; the selection keeps what it knew)."""
        errors = self.selection.refresh_errors
        await self.selection.refresh()
        if self.selection.refresh_errors == errors:
            self.selected, self.refresh_error, self.refresh_failures = True, "", 0
            self._next_refresh = time.monotonic() + self.sync_interval
            return
        self.refresh_failures += 1
        self.refresh_error = self.selection.last_error or "the selection could not be read"
        self.on_refresh_error()
        delay = min(
            self.sync_interval, self.retry_cap, self.retry_base * 2 ** (self.refresh_failures - 1)
        )
        self._next_refresh = time.monotonic() + delay
        log.log(
            logging.WARNING if self.selected else logging.ERROR,
            "%s market selection (%d failed reads in a row): %s; reading it again in %.1fs",
            "keeping the last" if self.selected else "no",
            self.refresh_failures,
            self.refresh_error,
            delay,
        )

    def health(self) -> dict[str, object]:
        return {
            "selected": self.selected,
            "desired": len(self.desired),
            "error": self.refresh_error,
            "failed_reads": self.refresh_failures,
        }

    async def start(self) -> None:
        await self.refresh()
        await self.apply()

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.sweep_interval):
                    await self._changed.wait()
            self._changed.clear()
            if time.monotonic() >= self._next_refresh:
                await self.refresh()
            await self.apply()

    async def apply(self) -> None:
        desired = self.desired = self.selection.desired()
        current = self.shards.markets
        if desired - current:
            await self.shards.add(desired - current)
        if current - desired:
            await self.shards.remove(current - desired)
        # Against what the exchange acknowledged: what it refused, or never answered, is
        # asked again.
        unacknowledged = desired - self.shards.subscribed
        if unacknowledged:
            await self.shards.catch_up(unacknowledged)

    async def aclose(self) -> None:
        await self.selection.aclose()
