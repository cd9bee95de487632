"""Kalshi's subscription protocol on one connection of a shard.

On every (re)connect the shard's whole set is subscribed; while connected, changes go
out as update_subscription add_markets / delete_markets on each channel's sid, so the
other markets of the shard are not disturbed. The global shard subscribes its global
channels (market_lifecycle_v2) without tickers.

Error 26 (subscription market limit exceeded) on a subscribe or add_markets: the shard
keeps what the exchange took (a refused batch is halved until one market is refused)
and hands the refused markets to `shard.refused`, which moves them to another shard.
Gap recovery: get_snapshot on the sid for the markets of the gap; resubscribe is
unsubscribe + subscribe of the sid's channel (fresh snapshots under a new sid).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import TYPE_CHECKING

from ssmd.exceptions import SessionError
from ssmd.venues.kalshi.ws import Reply, Session

if TYPE_CHECKING:
    from ssmd.connector.shards import Shard

__all__ = ["MARKET_LIMIT", "KalshiSubscriptions"]

log = logging.getLogger(__name__)

MARKET_LIMIT = 26  # error code: subscription market limit exceeded


class KalshiSubscriptions:
    def __init__(self, shard: Shard, session: Session) -> None:
        self.shard = shard
        self.session = session
        self.sids: dict[str, int] = {}  # channel -> sid on this connection

    @property
    def streams(self) -> dict[str, int]:
        return self.sids

    def _event(self, kind: str, reason: str, tickers: list[str] | None = None) -> None:
        self.shard.hooks.event(kind, self.shard, reason, tickers=tickers or ())

    def stream_error(self, stream: int, code: int, text: str) -> None:
        channel = next((c for c, s in self.sids.items() if s == stream), None)
        self._event("error", f"sid {stream} ({channel}): error {code} {text}")
        if channel is not None:
            # The sid is dead (e.g. error 25, buffer overflow): subscribe the channel again.
            del self.sids[channel]
            asyncio.get_running_loop().create_task(self._resubscribe_channel(channel))

    def _batches(self, tickers: list[str]) -> list[list[str]]:
        n = self.shard.config.subscribe_batch
        return [tickers[i : i + n] for i in range(0, len(tickers), n)]

    def _check(self, replies: list[Reply], what: str) -> list[Reply]:
        errors = [r for r in replies if r.type == "error"]
        for r in errors:
            self._event("error", f"{what}: error {r.code} {r.body.get('msg')}")
        return [r for r in replies if r.type != "error"]

    async def open(self) -> None:
        shard = self.shard
        if shard.is_global:
            for ch in shard.channels:
                replies = self._check(
                    await self.session.command("subscribe", {"channels": [ch]}), ch
                )
                for r in replies:
                    if r.sid is not None:
                        self.sids[ch] = r.sid
            self._event("subscribed", "global: " + ",".join(shard.channels))
            return
        tickers = sorted(shard.markets)
        if tickers:
            await self.add(tickers)

    async def _try(self, channel: str, tickers: list[str]) -> bool:
        """Subscribe `tickers` on `channel` (subscribe, or add_markets on its sid); False
        when the exchange answers error 26 (subscription market limit exceeded)."""
        sid = self.sids.get(channel)
        params: dict[str, object]
        if sid is None:
            cmd, params = "subscribe", {"channels": [channel], "market_tickers": tickers}
        else:
            cmd = "update_subscription"
            params = {"sids": [sid], "market_tickers": tickers, "action": "add_markets"}
        replies = await self.session.command(cmd, params)
        if any(r.type == "error" and r.code == MARKET_LIMIT for r in replies):
            return False
        for r in self._check(replies, f"{cmd} {channel}"):
            if r.sid is not None and sid is None:
                self.sids[channel] = r.sid
        return True

    async def _place(self, channel: str, tickers: list[str]) -> list[str]:
        """Subscribe as many of `tickers` as the channel takes, in order; returns those.

        A batch refused with error 26 is halved and retried, down to one market: once a
        single market is refused the subscription is full and the rest are not tried."""
        accepted: list[str] = []
        todo = deque(self._batches(tickers))
        while todo:
            batch = todo.popleft()
            if await self._try(channel, batch):
                accepted.extend(batch)
            elif len(batch) > 1:
                half = len(batch) // 2
                todo.appendleft(batch[half:])
                todo.appendleft(batch[:half])
            else:
                break
        return accepted

    async def _update(self, channel: str, action: str, tickers: list[str]) -> None:
        sid = self.sids.get(channel)
        if sid is None:
            return
        for batch in self._batches(tickers):
            self._check(
                await self.session.command(
                    "update_subscription",
                    {"sids": [sid], "market_tickers": batch, "action": action},
                ),
                f"{action} {channel}",
            )

    async def add(self, symbols: list[str]) -> None:
        shard = self.shard
        accepted = list(symbols)
        done: list[str] = []
        for ch in shard.channels:
            got = await self._place(ch, accepted)
            if len(got) < len(accepted):
                # Keep every channel on the same set: take the refused markets off the
                # channels that did take them.
                refused = sorted(set(accepted) - set(got))
                for prev in done:
                    await self._update(prev, "delete_markets", refused)
                accepted = got
            done.append(ch)
        shard.subscribed.update(accepted)
        if accepted:
            self._event("subscribed", f"{len(accepted)} markets", accepted)
        refused = sorted(set(symbols) - set(accepted))
        if refused:
            self._event(
                "error",
                f"error 26 (subscription market limit) at {len(shard.subscribed)} markets: "
                f"{len(refused)} markets move to another shard",
                refused,
            )
            shard.refused(refused)

    async def remove(self, symbols: list[str]) -> None:
        for ch in self.shard.channels:
            await self._update(ch, "delete_markets", symbols)

    async def _resubscribe_channel(self, channel: str) -> None:
        shard = self.shard
        async with shard.lock:
            if shard.subs is not self or shard.state != "streaming":
                return
            with contextlib.suppress(SessionError):
                await self._place(channel, sorted(shard.markets))

    async def snapshot(self, stream: int, symbols: list[str]) -> None:
        if stream not in self.sids.values():
            return
        for batch in self._batches(symbols):
            self._check(
                await self.session.command(
                    "update_subscription",
                    {"sids": [stream], "market_tickers": batch, "action": "get_snapshot"},
                ),
                "get_snapshot",
            )

    async def resubscribe(self, stream: int) -> bool:
        channel = next((c for c, x in self.sids.items() if x == stream), None)
        if channel is None:
            return False
        self._check(await self.session.command("unsubscribe", {"sids": [stream]}), "unsubscribe")
        del self.sids[channel]
        await self._place(channel, sorted(self.shard.subscribed))
        return True
