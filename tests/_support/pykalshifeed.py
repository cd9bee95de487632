"""pykalshi's own AsyncFeed as a third-party client of ssmd's Kalshi-protocol servers
(the simulator, the replay's kalshi target)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from pykalshi import AsyncKalshiClient
from pykalshi.afeed import AsyncFeed

from ssmd.sim import DEMO_KEY_ID, DEMO_PRIVATE_KEY_PATH

__all__ = ["FeedAt", "every_channel", "reading"]


class FeedAt(AsyncFeed):
    """pykalshi's AsyncFeed, pointed at `ws_url`: pykalshi takes its WebSocket host from
    the client's api_base, which can only name Kalshi's, and has no setting for another."""

    def __init__(self, client: AsyncKalshiClient, ws_url: str) -> None:
        super().__init__(client)
        self._ws_url = ws_url


def every_channel(
    rest_url: str, ws_url: str, tickers: list[str]
) -> tuple[AsyncKalshiClient, FeedAt]:
    """A pykalshi client signing with the simulator's demo key, and its feed subscribed
    to trades and lifecycle (global channels first: a replay's clock starts at the first
    subscription naming markets), then to the books and tickers of `tickers`."""
    client = AsyncKalshiClient(
        api_key_id=DEMO_KEY_ID, private_key_path=str(DEMO_PRIVATE_KEY_PATH), api_base=rest_url
    )
    feed = FeedAt(client, ws_url)
    feed.subscribe("trade")
    feed.subscribe("market_lifecycle_v2")
    feed.subscribe("orderbook_delta", market_tickers=tickers)
    feed.subscribe("ticker", market_tickers=tickers)
    return client, feed


@contextlib.asynccontextmanager
async def reading(client: AsyncKalshiClient, feed: FeedAt) -> AsyncIterator[list[Any]]:
    """The feed connected and read, in the background, into the list given; on exit the
    reading is cancelled (the feed handles that itself: it disconnects and ends)."""
    got: list[Any] = []

    async def consume() -> None:
        async for msg in feed:
            got.append(msg)

    async with client, feed:
        task = asyncio.create_task(consume())
        try:
            yield got
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
