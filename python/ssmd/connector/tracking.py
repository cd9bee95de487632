"""Which markets the shards hold: the venue's selection (ssmd.venues.base.Selector),
applied to the shard set at start, after every lifecycle record that changed it (new and
closing markets), every sweep interval (markets the clock opened or closed) and, with a
fresh read of the venue's listing, every sync interval.

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
    ) -> None:
        self.selection = selection
        self.shards = shards
        self.sync_interval = sync_interval
        self.sweep_interval = sweep_interval
        self.on_refresh_error = on_refresh_error
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

    async def start(self) -> None:
        await self.selection.refresh()
        await self.apply()

    async def run(self) -> None:
        last_sync = time.monotonic()
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.sweep_interval):
                    await self._changed.wait()
            self._changed.clear()
            if time.monotonic() - last_sync >= self.sync_interval:
                last_sync = time.monotonic()
                await self.selection.refresh()
                if self.selection.refresh_errors:
                    self.on_refresh_error()
            await self.apply()

    async def apply(self) -> None:
        desired = self.selection.desired()
        current = self.shards.markets
        if desired - current:
            await self.shards.add(desired - current)
        if current - desired:
            await self.shards.remove(current - desired)

    async def aclose(self) -> None:
        await self.selection.aclose()
