"""Current market state in Redis, for readers that should not query SQL.

Keys (`{env}:{feed}:` prefix, tickers verbatim):
    {env}:{feed}:market:{ticker}               hash of the market's reference fields
    {env}:{feed}:markets:status:{status}       set of tickers (ssmd status)
    {env}:{feed}:markets:category:{category}   set of tickers
    {env}:{feed}:secmaster:built               when the cache was last rebuilt from the store
The cache follows the store change by change (`apply`); `ensure` rebuilds it from the
store when the marker is missing (a new or flushed Redis).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Final

import redis.asyncio as aioredis

from ssmd.secmaster.db import Change, Store
from ssmd.secmaster.model import MARKET_FIELDS, Row, now_iso

__all__ = ["Cache"]

log = logging.getLogger(__name__)

PIPELINE: Final = 1000


def _s(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


class Cache:
    def __init__(self, client: aioredis.Redis, env: str, feed: str) -> None:
        self.r = client
        self.feed = feed
        self.prefix = f"{env}:{feed}"
        self.writes = 0

    @classmethod
    def from_url(cls, url: str, env: str, feed: str) -> Cache:
        return cls(aioredis.Redis.from_url(url), env, feed)

    async def aclose(self) -> None:
        await self.r.aclose()

    def market_key(self, ticker: str) -> str:
        return f"{self.prefix}:market:{ticker}"

    def status_key(self, status: str) -> str:
        return f"{self.prefix}:markets:status:{status}"

    def category_key(self, category: str) -> str:
        return f"{self.prefix}:markets:category:{category}"

    @property
    def marker(self) -> str:
        return f"{self.prefix}:secmaster:built"

    def _write(self, pipe: Any, ticker: str, state: Row, old: Row | None) -> None:
        values = {k: str(state[k]) for k in ("ticker", *MARKET_FIELDS) if state.get(k) is not None}
        values["ticker"] = ticker
        pipe.hset(self.market_key(ticker), mapping=values)
        gone = [k for k in MARKET_FIELDS if k in state and state[k] is None]
        if gone:
            pipe.hdel(self.market_key(ticker), *gone)
        for field, keyf in (("status", self.status_key), ("category", self.category_key)):
            before = old.get(field) if old else None
            after = state.get(field)
            if before is not None and before != after:
                pipe.srem(keyf(str(before)), ticker)
            if after is not None:
                pipe.sadd(keyf(str(after)), ticker)

    async def apply(self, changes: Iterable[Change]) -> None:
        pipe = self.r.pipeline(transaction=False)
        n = 0
        for c in changes:
            if c.kind != "market":
                continue
            old = {f: o for f, (o, _) in c.fields.items()}
            self._write(pipe, c.key, c.state, old)
            n += 1
            if n % PIPELINE == 0:
                await pipe.execute()
        await pipe.execute()
        self.writes += n

    async def rebuild(self, store: Store) -> int:
        """Replace the cache with the store's current state (streamed)."""
        async for key in self.r.scan_iter(match=f"{self.prefix}:market*", count=1000):
            await self.r.unlink(key)
        pipe = self.r.pipeline(transaction=False)
        n = 0
        for row in store.markets(venue=self.feed):
            self._write(pipe, str(row["ticker"]), row, None)
            n += 1
            if n % PIPELINE == 0:
                await pipe.execute()
        await pipe.execute()
        await self.r.set(self.marker, now_iso())
        log.info("rebuilt the Redis market cache: %d markets", n)
        return n

    async def ensure(self, store: Store) -> bool:
        """Rebuild when the marker is missing; True when it rebuilt."""
        if await self.r.exists(self.marker):
            return False
        await self.rebuild(store)
        return True

    async def market(self, ticker: str) -> dict[str, str]:
        raw = await self.r.hgetall(self.market_key(ticker))
        return {_s(k): _s(v) for k, v in raw.items()}

    async def tickers(self, *, status: str | None = None, category: str | None = None) -> set[str]:
        keys = []
        if status is not None:
            keys.append(self.status_key(status))
        if category is not None:
            keys.append(self.category_key(category))
        if not keys:
            raise ValueError("give a status or a category")
        got = await self.r.sinter(keys)
        return {_s(t) for t in got}
