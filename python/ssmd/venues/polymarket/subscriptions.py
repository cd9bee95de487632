"""Polymarket's subscription protocol on one connection of a shard.

The first subscription of a connection is the initial form
`{"type": "market", "assets_ids": [...]}` (sent once: a second one is refused with
`INVALID OPERATION`); later changes are `{"operation": "subscribe"|"unsubscribe",
"assets_ids": [...]}`. A connection carries at most `ASSET_CAP` tokens (the venue sends
no initial book beyond 500). There is one stream per connection (the market channel).

Recovery: a token's fresh book is asked by unsubscribing and subscribing it again (the
subscribe is answered by its `book`); `resubscribe` does that for every token of the
connection.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ssmd.venues.polymarket.ws import STREAM, PolymarketSession

if TYPE_CHECKING:
    from ssmd.connector.shards import Shard

__all__ = ["ASSET_CAP", "PolymarketSubscriptions"]

log = logging.getLogger(__name__)

ASSET_CAP = 500
CHANNEL = "market"


class PolymarketSubscriptions:
    def __init__(self, shard: Shard, session: PolymarketSession) -> None:
        self.shard = shard
        self.session = session
        self.opened = False

    @property
    def streams(self) -> dict[str, int]:
        return {CHANNEL: STREAM} if self.opened else {}

    def _event(self, kind: str, reason: str, tickers: list[str] | None = None) -> None:
        self.shard.hooks.event(kind, self.shard, reason, tickers=tickers or ())

    def stream_error(self, stream: int, code: int, text: str) -> None:
        self._event("error", f"venue error on the market channel: {text}")

    async def open(self) -> None:
        tickers = sorted(self.shard.markets)
        if tickers:
            await self.add(tickers)

    async def add(self, symbols: list[str]) -> None:
        shard = self.shard
        room = max(0, ASSET_CAP - len(shard.subscribed))
        wanted = [s for s in symbols if s not in shard.subscribed]
        accepted, refused = wanted[:room], wanted[room:]
        if accepted:
            if not self.opened:
                await self.session.send({"type": CHANNEL, "assets_ids": accepted})
                self.opened = True
            else:
                await self.session.send({"operation": "subscribe", "assets_ids": accepted})
            shard.subscribed.update(accepted)
            self._event("subscribed", f"{len(accepted)} tokens", accepted)
        if refused:
            self._event(
                "error",
                f"{ASSET_CAP} tokens per connection: {len(refused)} tokens move to another shard",
                refused,
            )
            shard.refused(refused)

    async def remove(self, symbols: list[str]) -> None:
        if self.opened and symbols:
            await self.session.send({"operation": "unsubscribe", "assets_ids": symbols})

    async def snapshot(self, stream: int, symbols: list[str]) -> None:
        if not self.opened or not symbols:
            return
        await self.session.send({"operation": "unsubscribe", "assets_ids": symbols})
        await self.session.send({"operation": "subscribe", "assets_ids": symbols})

    async def resubscribe(self, stream: int) -> bool:
        if not self.opened:
            return False
        await self.snapshot(stream, sorted(self.shard.subscribed))
        return True
