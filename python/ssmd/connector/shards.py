"""Shards: WebSocket connections of at most N markets each, reconnected one at a time.

A `Shard` owns a desired set of markets and keeps one `Session` subscribed to exactly
that set: on every (re)connect it subscribes the whole set; while connected, changes go
out as update_subscription add_markets / delete_markets on each channel's sid, so the
other markets of the shard are not disturbed. A dead shard reconnects with capped,
jittered exponential backoff under a new connection id; other shards never notice.

`ShardSet` places markets: first shard with room, else a new shard. Shard 0 carries
the global channels (market_lifecycle_v2, and ticker/trade when configured global).
Error 26 (subscription market limit exceeded) on a subscribe or add_markets: the shard
keeps what the exchange took (a refused batch is halved until one market is refused),
the limit becomes every shard's cap, and the refused markets go to the next shard
with room or a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from ssmd.exceptions import AuthenticationError
from ssmd.venues.kalshi.ws import (
    MAX_FRAME_BYTES,
    Credentials,
    Liveness,
    Reply,
    Session,
    SessionError,
)

__all__ = ["Shard", "ShardConfig", "ShardHooks", "ShardSet", "next_conn_id"]

log = logging.getLogger(__name__)

_last_conn_id = 0

MARKET_LIMIT = 26  # error code: subscription market limit exceeded


def next_conn_id() -> int:
    """Unique per connection and never reused: time_ns at connect, strictly increasing."""
    global _last_conn_id
    _last_conn_id = max(time.time_ns(), _last_conn_id + 1)
    return _last_conn_id


@dataclass(frozen=True)
class ShardConfig:
    url: str
    credentials: Credentials | None
    market_channels: tuple[str, ...] = ("orderbook_delta", "trade", "ticker")
    global_channels: tuple[str, ...] = ("market_lifecycle_v2",)
    markets_per_connection: int = 200
    subscribe_batch: int = 200
    liveness: Liveness = field(default_factory=Liveness)
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    max_auth_failures: int = 5
    max_frame_bytes: int = MAX_FRAME_BYTES


class ShardHooks(Protocol):
    def frame(self, shard: Shard, data: bytes, receive_ns: int) -> None: ...

    def event(
        self,
        kind: str,
        shard: Shard,
        reason: str = "",
        *,
        duration_ns: int = 0,
        tickers: Iterable[str] = (),
        conn_id: int | None = None,
    ) -> None: ...


class Shard:
    def __init__(self, number: int, config: ShardConfig, hooks: ShardHooks) -> None:
        self.number = number
        self.config = config
        self.hooks = hooks
        self.markets: set[str] = set()  # desired: what the shard subscribes on every connect
        self.subscribed: set[str] = set()  # acknowledged on the current connection
        self.sids: dict[str, int] = {}  # channel -> sid on the current connection
        self.conn_id = 0
        self.frame_no = 0
        self.state = "new"
        self.session: Session | None = None
        self.reconnects = 0
        self.auth_failures = 0
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._opened_at: float | None = None  # monotonic time of `connected`, while open
        self.cap: int | None = None  # markets per subscription the exchange allows (error 26)
        self.on_full: Callable[[Shard, list[str]], None] | None = None

    @property
    def is_global(self) -> bool:
        return self.number == 0

    @property
    def channels(self) -> tuple[str, ...]:
        return self.config.global_channels if self.is_global else self.config.market_channels

    def room(self) -> int:
        limit = self.config.markets_per_connection
        if self.cap is not None:
            limit = min(limit, self.cap)
        return limit - len(self.markets)

    def health(self) -> dict[str, object]:
        s = self.session
        now = time.monotonic()
        return {
            "shard": self.number,
            "state": self.state,
            "conn_id": self.conn_id,
            "markets": len(self.markets),
            "subscribed": len(self.subscribed),
            "frames": s.frames if s else 0,
            "last_frame_age_s": round(now - s.last_frame, 3) if s and s.last_frame else None,
            "last_pong_age_s": round(now - s.last_pong, 3) if s and s.last_pong else None,
            "reconnects": self.reconnects,
        }

    # ---- lifecycle ------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self._run(), name=f"shard-{self.number}")
        return self._task

    async def stop(self) -> None:
        self._stopping = True
        if self.session is not None:
            await self.session.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._opened_at is not None:
            # Closed like any lost connection, so that stream readers (the gateway's
            # books) learn it from the same event.
            self._disconnected("connector stopping", self._opened_at)
        self.state = "stopped"

    def _disconnected(self, reason: str, opened_at: float) -> None:
        self._opened_at = None
        self.hooks.event(
            "disconnected",
            self,
            reason,
            duration_ns=int((time.monotonic() - opened_at) * 1e9),
            tickers=sorted(self.markets),
        )

    def kill(self, reason: str) -> None:
        """Drop the connection now (tests, and a sid that cannot be recovered)."""
        s = self.session
        if s is not None and s.ws is not None:
            s.close_reason = s.close_reason or reason
            s.ws.transport.abort()

    def _on_frame(self, data: bytes, receive_ns: int) -> None:
        self.frame_no += 1
        self.hooks.frame(self, data, receive_ns)

    def _on_sid_error(self, sid: int, code: int, text: str) -> None:
        channel = next((c for c, s in self.sids.items() if s == sid), None)
        self.hooks.event("error", self, f"sid {sid} ({channel}): error {code} {text}")
        if channel is not None:
            # The sid is dead (e.g. error 25, buffer overflow): subscribe the channel again.
            del self.sids[channel]
            asyncio.get_running_loop().create_task(self._resubscribe_channel(channel))

    async def _run(self) -> None:
        attempt = 0
        cfg = self.config
        while not self._stopping:
            self.conn_id = next_conn_id()
            self.frame_no = 0
            self.sids = {}
            self.subscribed = set()
            self.state = "connecting"
            session = Session(
                cfg.url,
                cfg.credentials,
                self._on_frame,
                liveness=cfg.liveness,
                on_sid_error=self._on_sid_error,
                max_frame_bytes=cfg.max_frame_bytes,
            )
            self.session = session
            started = time.monotonic()
            reason = ""
            try:
                await session.open()
                self.auth_failures = 0
                self.hooks.event("connected", self, cfg.url)
                self._opened_at = started
                reader = asyncio.create_task(session.run())
                try:
                    self.state = "subscribing"
                    async with self._lock:
                        await self._subscribe_all()
                    self.state = "streaming"
                    attempt = 0
                    reason = await reader
                finally:
                    if not reader.done():
                        session.close_reason = session.close_reason or "subscribe failed"
                        if session.ws is not None:
                            session.ws.transport.abort()
                        with contextlib.suppress(Exception):
                            reason = await reader
            except AuthenticationError as exc:
                self.auth_failures += 1
                self.hooks.event("error", self, f"authentication failed: {exc}")
                if self.auth_failures >= cfg.max_auth_failures:
                    self.state = "failed"
                    raise
                reason = "authentication failed"
            except SessionError as exc:
                reason = str(exc)
                if session.ws is not None:
                    session.ws.transport.abort()
            if self._stopping:
                break  # stop() says `disconnected`
            if session.ws is not None:
                self._disconnected(reason or session.close_reason, started)
            self.state = "backoff"
            self.reconnects += 1
            delay = min(cfg.backoff_cap, cfg.backoff_base * 2**attempt) * random.uniform(0.5, 1.0)
            attempt = min(attempt + 1, 16)
            log.warning("shard %d: %s; reconnecting in %.2fs", self.number, reason, delay)
            await asyncio.sleep(delay)

    # ---- subscriptions ----------------------------------------------------------------

    def _batches(self, tickers: list[str]) -> list[list[str]]:
        n = self.config.subscribe_batch
        return [tickers[i : i + n] for i in range(0, len(tickers), n)]

    def _check(self, replies: list[Reply], what: str) -> list[Reply]:
        errors = [r for r in replies if r.type == "error"]
        for r in errors:
            self.hooks.event("error", self, f"{what}: error {r.code} {r.body.get('msg')}")
        return [r for r in replies if r.type != "error"]

    async def _subscribe_all(self) -> None:
        s = self.session
        assert s is not None
        if self.is_global:
            for ch in self.channels:
                replies = self._check(await s.command("subscribe", {"channels": [ch]}), ch)
                for r in replies:
                    if r.sid is not None:
                        self.sids[ch] = r.sid
            self.hooks.event("subscribed", self, "global: " + ",".join(self.channels))
            return
        tickers = sorted(self.markets)
        if not tickers:
            return
        await self._add(tickers)

    async def _try(self, channel: str, tickers: list[str]) -> bool:
        """Subscribe `tickers` on `channel` (subscribe, or add_markets on its sid); False
        when the exchange answers error 26 (subscription market limit exceeded)."""
        s = self.session
        assert s is not None
        sid = self.sids.get(channel)
        params: dict[str, object]
        if sid is None:
            cmd, params = "subscribe", {"channels": [channel], "market_tickers": tickers}
        else:
            cmd = "update_subscription"
            params = {"sids": [sid], "market_tickers": tickers, "action": "add_markets"}
        replies = await s.command(cmd, params)
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

    async def _subscribe_channel(self, channel: str, tickers: list[str]) -> None:
        await self._place(channel, tickers)

    async def _update(self, channel: str, action: str, tickers: list[str]) -> None:
        s = self.session
        sid = self.sids.get(channel)
        if s is None or sid is None:
            return
        for batch in self._batches(tickers):
            self._check(
                await s.command(
                    "update_subscription",
                    {"sids": [sid], "market_tickers": batch, "action": action},
                ),
                f"{action} {channel}",
            )

    async def _add(self, tickers: list[str]) -> None:
        accepted = list(tickers)
        done: list[str] = []
        for ch in self.channels:
            got = await self._place(ch, accepted)
            if len(got) < len(accepted):
                # Keep every channel on the same set: take the refused markets off the
                # channels that did take them.
                refused = sorted(set(accepted) - set(got))
                for prev in done:
                    await self._update(prev, "delete_markets", refused)
                accepted = got
            done.append(ch)
        self.subscribed.update(accepted)
        if accepted:
            self.hooks.event("subscribed", self, f"{len(accepted)} markets", tickers=accepted)
        refused = sorted(set(tickers) - set(accepted))
        if refused:
            self._full(refused)

    def _full(self, refused: list[str]) -> None:
        """Error 26: the shard holds what it has; the refused markets go elsewhere."""
        n = len(self.subscribed)
        self.hooks.event(
            "error",
            self,
            f"error 26 (subscription market limit) at {n} markets: "
            f"{len(refused)} markets move to another shard",
            tickers=refused,
        )
        if n == 0 or self.on_full is None:
            return  # not even one market fits: keep them and retry at the next connect
        self.markets.difference_update(refused)
        self.on_full(self, refused)

    async def _resubscribe_channel(self, channel: str) -> None:
        async with self._lock:
            if self.session is None or self.state != "streaming":
                return
            with contextlib.suppress(SessionError):
                await self._subscribe_channel(channel, sorted(self.markets))

    async def add(self, tickers: Iterable[str]) -> None:
        new = sorted(set(tickers) - self.markets)
        if not new:
            return
        self.markets.update(new)
        async with self._lock:
            if self.state == "streaming" and self.session is not None:
                try:
                    await self._add(new)
                except SessionError as exc:
                    log.info("shard %d: add deferred to reconnect: %s", self.number, exc)

    async def remove(self, tickers: Iterable[str]) -> None:
        gone = sorted(set(tickers) & self.markets)
        if not gone:
            return
        self.markets.difference_update(gone)
        async with self._lock:
            if self.state == "streaming" and self.session is not None:
                try:
                    for ch in self.channels:
                        await self._update(ch, "delete_markets", gone)
                except SessionError as exc:
                    log.info("shard %d: delete deferred to reconnect: %s", self.number, exc)
            self.subscribed.difference_update(gone)
        self.hooks.event("unsubscribed", self, f"{len(gone)} markets", tickers=gone)

    async def snapshot(self, sid: int, tickers: list[str]) -> None:
        """Ask for fresh order-book snapshots on `sid` (gap recovery)."""
        async with self._lock:
            s = self.session
            if s is None or self.state != "streaming" or sid not in self.sids.values():
                return
            try:
                for batch in self._batches(tickers):
                    self._check(
                        await s.command(
                            "update_subscription",
                            {"sids": [sid], "market_tickers": batch, "action": "get_snapshot"},
                        ),
                        "get_snapshot",
                    )
            except SessionError as exc:
                log.info("shard %d: snapshot request failed: %s", self.number, exc)

    async def resubscribe(self, sid: int) -> bool:
        """Unsubscribe `sid` and subscribe its channel again with the shard's markets (fresh
        snapshots under a new sid). False if the sid is not live here or the link failed."""
        async with self._lock:
            s = self.session
            channel = next((c for c, x in self.sids.items() if x == sid), None)
            if s is None or self.state != "streaming" or channel is None:
                return False
            try:
                self._check(await s.command("unsubscribe", {"sids": [sid]}), "unsubscribe")
                del self.sids[channel]
                await self._place(channel, sorted(self.subscribed))
            except SessionError as exc:
                log.info("shard %d: resubscribe of sid %d failed: %s", self.number, sid, exc)
                return False
            return True


class ShardSet:
    """Places markets on shards; creates shards as needed. Empty shards stay (cheap)."""

    def __init__(self, config: ShardConfig, hooks: ShardHooks) -> None:
        self.config = config
        self.hooks = hooks
        self.shards: dict[int, Shard] = {}
        self.owner: dict[str, Shard] = {}
        self.on_task: Callable[[asyncio.Task[None]], None] | None = None
        self.cap: int | None = None  # learned from error 26; applies to every shard
        self._moves: set[asyncio.Task[None]] = set()

    def _new(self, number: int) -> Shard:
        shard = Shard(number, self.config, self.hooks)
        shard.cap = self.cap
        shard.on_full = self._on_full
        self.shards[number] = shard
        task = shard.start()
        if self.on_task is not None:
            self.on_task(task)
        return shard

    def _on_full(self, shard: Shard, refused: list[str]) -> None:
        """A shard hit the exchange's per-subscription market limit: remember the limit for
        every shard and place the refused markets on shards with room (or new ones)."""
        n = len(shard.subscribed)
        if self.cap is None or n < self.cap:
            self.cap = n
            log.warning("subscription market limit is %d markets: shards hold at most that", n)
            for sh in self.shards.values():
                sh.cap = n
        moved = [t for t in refused if self.owner.get(t) is shard]
        for t in moved:
            del self.owner[t]
        task = asyncio.get_running_loop().create_task(self.add(moved), name="shard-move")
        self._moves.add(task)
        task.add_done_callback(self._moves.discard)
        if self.on_task is not None:
            self.on_task(task)

    def start_global(self) -> None:
        if self.config.global_channels and 0 not in self.shards:
            self._new(0)

    def by_conn(self, conn_id: int) -> Shard | None:
        return next((s for s in self.shards.values() if s.conn_id == conn_id), None)

    @property
    def markets(self) -> set[str]:
        return set(self.owner)

    async def add(self, tickers: Iterable[str]) -> None:
        todo = sorted(set(tickers) - self.owner.keys())
        plan: dict[int, list[str]] = {}
        for t in todo:
            shard = next(
                (
                    s
                    for n, s in sorted(self.shards.items())
                    if n > 0 and s.room() - len(plan.get(n, [])) > 0
                ),
                None,
            )
            if shard is None:
                shard = self._new(max(self.shards, default=0) + 1)
            plan.setdefault(shard.number, []).append(t)
            self.owner[t] = shard
        await asyncio.gather(*(self.shards[n].add(ts) for n, ts in plan.items()))

    async def remove(self, tickers: Iterable[str]) -> None:
        plan: dict[int, list[str]] = {}
        for t in set(tickers):
            shard = self.owner.pop(t, None)
            if shard is not None:
                plan.setdefault(shard.number, []).append(t)
        await asyncio.gather(*(self.shards[n].remove(ts) for n, ts in plan.items()))

    async def stop(self) -> None:
        for t in list(self._moves):
            t.cancel()
        await asyncio.gather(*(s.stop() for s in self.shards.values()))
