"""Kalshi's subscription protocol on one connection of a shard.

On every (re)connect the shard's whole set is subscribed; while connected, changes go
out as update_subscription add_markets / delete_markets on each channel's sid, so the
other markets of the shard are not disturbed. The global shard subscribes its global
channels (market_lifecycle_v2) without tickers; one it cannot subscribe drops the
connection (the reconnect tries again).

A market is subscribed (`shard.subscribed`) once every channel of the shard has
acknowledged it on this connection (`held`, per channel); a channel that already holds
it is not asked again. What the exchange may answer instead:

- error 26 (subscription market limit exceeded) on a subscribe or add_markets: the
  shard keeps what the exchange took (a refused batch is halved until one market is
  refused) and hands the refused markets to `shard.refused`, which moves them to another
  shard.
- error 6 (already subscribed) on a subscribe: the channel is subscribed on this
  connection under a sid this side never learnt (the reply to an earlier subscribe was
  lost). `list_subscriptions` names the sid; the markets are then added on it
  (add_markets of a market the sid holds changes nothing), so that they are acknowledged
  and the sid's gaps, snapshots and deletes reach it like any other's.
- error 7 (unknown subscription id) on add_markets or delete_markets: the sid is gone;
  the channel is subscribed afresh at the next try.
- any other error (27, too many commands, among them): the markets are not subscribed.
  An `error` event names them, `subscribe_refused` counts it, and the shard asks again
  after a backoff (Shard.catch_up). An error naming one market of the batch
  (`market_ticker`, as error 16, market not found, does) refuses that market only: the
  rest of the batch is asked again at once.
- no reply: NoReply goes up to the shard, which asks again the same way.

Gap recovery: get_snapshot on the sid for the markets of the gap; resubscribe is
unsubscribe + subscribe of the sid's channel (fresh snapshots under a new sid).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ssmd.exceptions import NoReply, SessionError
from ssmd.venues.kalshi.ws import Reply, Session

if TYPE_CHECKING:
    from ssmd.connector.shards import Shard

__all__ = ["ALREADY_SUBSCRIBED", "MARKET_LIMIT", "KalshiSubscriptions"]

log = logging.getLogger(__name__)

# Kalshi's error codes this protocol acts on.
ALREADY_SUBSCRIBED = 6
UNKNOWN_SID = 7
MARKET_LIMIT = 26  # subscription market limit exceeded


@dataclass
class Placed:
    """What one channel did not take of a list of markets (it holds the rest: `held`)."""

    full: list[str] = field(default_factory=list)  # no room: error 26
    failed: list[str] = field(default_factory=list)  # refused otherwise: asked again later


def _detail(error: Reply) -> dict[str, object]:
    """The `msg` object of an error reply (code, text, and what else it names)."""
    msg = error.body.get("msg")
    return msg if isinstance(msg, dict) else {}


def _describe(error: Reply) -> str:
    return f"error {error.code} {_detail(error).get('msg', '')}".strip()


def _listed_sid(reply: Reply, channel: str) -> int | None:
    """The sid a `list_subscriptions` reply gives `channel`, if any."""
    listed = reply.body.get("msg") if reply.type != "error" else None
    for sub in listed if isinstance(listed, list) else []:
        if isinstance(sub, dict) and sub.get("channel") == channel:
            sid = sub.get("sid")
            return sid if isinstance(sid, int) else None
    return None


class KalshiSubscriptions:
    def __init__(self, shard: Shard, session: Session) -> None:
        self.shard = shard
        self.session = session
        self.sids: dict[str, int] = {}  # channel -> sid on this connection
        # channel -> markets the exchange acknowledged on it, on this connection
        self.held: dict[str, set[str]] = {ch: set() for ch in shard.channels}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def streams(self) -> dict[str, int]:
        return self.sids

    def _event(self, kind: str, reason: str, tickers: list[str] | None = None) -> None:
        self.shard.hooks.event(kind, self.shard, reason, tickers=tickers or ())

    def _forget(self, channel: str) -> None:
        """The channel's sid is gone: none of the shard's markets is acknowledged on
        every channel any more, until the channel is subscribed again."""
        self.sids.pop(channel, None)
        self.held[channel].clear()
        self.shard.subscribed.clear()

    def stream_error(self, stream: int, code: int, text: str) -> None:
        channel = next((c for c, s in self.sids.items() if s == stream), None)
        self._event("error", f"sid {stream} ({channel}): error {code} {text}")
        if channel is None:
            return
        # The sid is dead (e.g. error 25, buffer overflow): subscribe the channel again.
        self._forget(channel)
        again = self._resubscribe_global(channel) if self.shard.is_global else self.shard.catch_up()
        task = asyncio.get_running_loop().create_task(again)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resubscribe_global(self, channel: str) -> None:
        shard = self.shard
        async with shard.lock:
            if shard.subs is not self:
                return  # a newer connection subscribed everything
            try:
                await self._subscribe_global(channel)
            except SessionError as exc:
                shard.kill(str(exc))

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
                await self._subscribe_global(ch)
            self._event("subscribed", "global: " + ",".join(shard.channels))
            return
        tickers = sorted(shard.markets)
        if tickers:
            await self.add(tickers)

    async def _subscribe_global(self, channel: str) -> None:
        """Nothing asks for a global channel again while the connection lives, so one the
        exchange does not take (or does not answer) drops the connection: SessionError."""
        try:
            replies = await self.session.command("subscribe", {"channels": [channel]})
        except NoReply as exc:
            raise SessionError(f"global channel {channel}: {exc}") from None
        sid = next((r.sid for r in replies if r.type != "error" and r.sid is not None), None)
        if sid is None:
            error = next((r for r in replies if r.type == "error"), None)
            why = _describe(error) if error is not None else "no sid in the reply"
            self.shard.hooks.count_error("subscribe_refused")
            raise SessionError(f"global channel {channel} not subscribed: {why}")
        self.sids[channel] = sid

    async def _try(self, channel: str, tickers: list[str]) -> Reply | None:
        """Subscribe `tickers` on `channel` (subscribe, or add_markets on its sid): None
        when the exchange took them, else its error reply."""
        sid = self.sids.get(channel)
        params: dict[str, object]
        if sid is None:
            cmd, params = "subscribe", {"channels": [channel], "market_tickers": tickers}
        else:
            cmd = "update_subscription"
            params = {"sids": [sid], "market_tickers": tickers, "action": "add_markets"}
        replies = await self.session.command(cmd, params)
        error = next((r for r in replies if r.type == "error"), None)
        if error is None:
            for r in replies:
                if r.sid is not None and sid is None:
                    self.sids[channel] = r.sid
            return None
        if error.code == ALREADY_SUBSCRIBED and sid is None and await self._learn_sid(channel):
            return await self._try(channel, tickers)
        if sid is not None:
            self._forget_if_lost(channel, error)
        return error

    def _forget_if_lost(self, channel: str, error: Reply) -> bool:
        """Error 7 on a command naming the channel's sid: the exchange no longer holds it,
        nor the frames of its markets. The sid is forgotten, so that the channel is
        subscribed afresh with the shard's markets (Shard.catch_up). True if it was."""
        if error.code != UNKNOWN_SID:
            return False
        self._forget(channel)
        return True

    async def _learn_sid(self, channel: str) -> bool:
        """Error 6 on a subscribe: the channel is subscribed here under a sid this side
        never learnt. True once `list_subscriptions` has named it."""
        self.shard.hooks.count_error("already_subscribed")
        (reply,) = await self.session.command("list_subscriptions")
        sid = _listed_sid(reply, channel)
        if sid is None:
            self._event(
                "error",
                f"subscribe {channel}: error 6 (already subscribed), but list_subscriptions "
                f"names no {channel} subscription ({reply.type})",
            )
            return False
        self.sids[channel] = sid
        self._event(
            "error",
            f"subscribe {channel}: error 6 (already subscribed): sid {sid}, named by "
            "list_subscriptions, taken up",
        )
        return True

    def _refused(self, channel: str, error: Reply, tickers: list[str]) -> None:
        self.shard.hooks.count_error("subscribe_refused")
        self._event(
            "error",
            f"subscribe {channel}: {_describe(error)}: {len(tickers)} markets not subscribed, "
            "asked again later",
            tickers,
        )

    async def _place(self, channel: str, tickers: list[str]) -> Placed:
        """Subscribe as many of `tickers` as the channel takes, in order.

        A batch refused with error 26 is halved and retried, down to one market: once a
        single market is refused the subscription is full and the rest are not tried.
        Another error stops there too (what is left is asked again later), unless it
        names one market of the batch: that one is left out and the rest tried again."""
        placed = Placed()
        todo = deque(self._batches(tickers))
        while todo:
            batch = todo.popleft()
            error = await self._try(channel, batch)
            if error is None:
                self.held[channel].update(batch)
                continue
            named = _detail(error).get("market_ticker")
            if error.code == MARKET_LIMIT and len(batch) > 1:
                half = len(batch) // 2
                todo.extendleft([batch[half:], batch[:half]])
            elif error.code == MARKET_LIMIT:
                placed.full = [*batch, *itertools.chain(*todo)]
                break
            elif isinstance(named, str) and named in batch:
                self._refused(channel, error, [named])
                placed.failed.append(named)
                rest = [t for t in batch if t != named]
                if rest:
                    todo.appendleft(rest)
            else:
                placed.failed = [*batch, *itertools.chain(*todo)]
                self._refused(channel, error, placed.failed)
                break
        return placed

    async def _update(self, channel: str, action: str, tickers: list[str]) -> None:
        sid = self.sids.get(channel)
        if sid is None:
            return
        for batch in self._batches(tickers):
            replies = await self.session.command(
                "update_subscription",
                {"sids": [sid], "market_tickers": batch, "action": action},
            )
            self._check(replies, f"{action} {channel}")
            if any(r.type == "error" and self._forget_if_lost(channel, r) for r in replies):
                return

    async def add(self, symbols: list[str]) -> None:
        shard = self.shard
        wanted = list(symbols)
        full: list[str] = []
        for ch in shard.channels:
            placed = await self._place(ch, [t for t in wanted if t not in self.held[ch]])
            if placed.full:
                # Keep every channel on the same set: take the refused markets off the
                # channels that did take them.
                for other in shard.channels:
                    if other != ch and self.held[other] & set(placed.full):
                        self.held[other].difference_update(placed.full)
                        await self._update(other, "delete_markets", placed.full)
                full.extend(placed.full)
            # What one channel did not take is not asked of the next: a market refused
            # otherwise is asked again later (Shard.catch_up) of the channels lacking it.
            left_out = {*placed.full, *placed.failed}
            wanted = [t for t in wanted if t not in left_out]
        taken = [t for t in wanted if all(t in self.held[ch] for ch in shard.channels)]
        shard.subscribed.update(taken)
        if taken:
            self._event("subscribed", f"{len(taken)} markets", taken)
        if full:
            self._event(
                "error",
                f"error 26 (subscription market limit) at {len(shard.subscribed)} markets: "
                f"{len(full)} markets move to another shard",
                sorted(full),
            )
            shard.refused(sorted(full))

    async def remove(self, symbols: list[str]) -> None:
        for ch in self.shard.channels:
            self.held[ch].difference_update(symbols)
            await self._update(ch, "delete_markets", symbols)

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
        self._forget(channel)
        await self.add(sorted(self.shard.markets))
        return True
