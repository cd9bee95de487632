"""Shards: WebSocket connections of at most N markets each, reconnected one at a time.

A `Shard` owns a desired set of markets and keeps one session subscribed to exactly
that set. The venue (ssmd.venues.base.Venue) provides the session (connect, keep-alive)
and the subscription protocol on it (`Subscriptions`: subscribe everything on every
(re)connect, add and remove markets while connected, fresh snapshots after a loss). A
dead shard reconnects with capped, jittered exponential backoff under a new connection
id; other shards never notice.

A market counts as subscribed only once the exchange acknowledged it (`subscribed`).
One the exchange refused, or asked for with no reply, stays in `markets` and is asked
again on the same connection (`catch_up`, which the tracking loop calls every sweep)
after the same kind of backoff, growing with every try in a row that leaves markets
unacknowledged; after `MAX_UNANSWERED` tries in a row with no reply at all the
connection is dropped, and the reconnect subscribes everything.

`ShardSet` places markets: first shard with room, else a new shard. Shard 0 carries
the venue's global channels (Kalshi's market_lifecycle_v2, and ticker/trade when
configured global). When the exchange refuses markets for lack of room (Kalshi's error
26, subscription market limit exceeded), the shard keeps what the exchange took, the
number it holds becomes every shard's cap, and the refused markets go to the next shard
with room or a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ssmd.aio import cancel_and_wait
from ssmd.exceptions import AuthenticationError, NoReply, SessionError
from ssmd.venues.base import (
    MAX_FRAME_BYTES,
    Liveness,
    Session,
    Subscriptions,
    Venue,
)

__all__ = ["Shard", "ShardConfig", "ShardHooks", "ShardSet", "next_conn_id"]

log = logging.getLogger(__name__)

# Subscribe tries in a row that got no reply before the connection is dropped: one that
# answers nothing it is asked is of no use, and the reconnect subscribes everything.
MAX_UNANSWERED = 3

_last_conn_id = 0


def next_conn_id(residue: int = 0, stride: int = 1) -> int:
    """Unique per connection and never reused: time_ns at connect, strictly increasing,
    and `residue` modulo `stride` (a shard group's ids never meet another group's)."""
    global _last_conn_id
    value = max(time.time_ns(), _last_conn_id + 1)
    _last_conn_id = value + (residue - value) % stride
    return _last_conn_id


def _kalshi() -> Venue:
    from ssmd.venues import venue

    return venue("kalshi")


@dataclass(frozen=True)
class ShardConfig:
    url: str
    credentials: Any
    market_channels: tuple[str, ...] = ("orderbook_delta", "trade", "ticker")
    global_channels: tuple[str, ...] = ("market_lifecycle_v2",)
    markets_per_connection: int = 200
    subscribe_batch: int = 200
    liveness: Liveness = field(default_factory=Liveness)
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    max_auth_failures: int = 5
    max_frame_bytes: int = MAX_FRAME_BYTES
    # A shard group's numbers and ids (ssmd.connector.groups); 0, 0, 1 without groups.
    first_number: int = 0
    id_residue: int = 0
    id_stride: int = 1
    venue: Venue = field(default_factory=_kalshi)

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before try `attempt` + 1: doubling from backoff_base up to
        backoff_cap, jittered."""
        delay = min(self.backoff_cap, self.backoff_base * 2.0 ** min(attempt, 16))
        return delay * random.uniform(0.5, 1.0)


class ShardHooks(Protocol):
    def frames(self, shard: Shard, first_no: int, frames: list[bytes], receive_ns: int) -> None:
        """One read's frames, numbered first_no, first_no + 1, ... on the shard's connection."""

    def count_error(self, error_type: str) -> None:
        """Count an error (ssmd_connector_errors_total{error_type})."""
        ...

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
        self.conn_id = 0
        self.frame_no = 0
        self.state = "new"
        self.session: Session | None = None
        self.subs: Subscriptions | None = None  # the venue's protocol on `session`
        self.reconnects = 0
        self.auth_failures = 0
        self.lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._opened_at: float | None = None  # monotonic time of `connected`, while open
        self.cap: int | None = None  # markets per subscription the exchange allows
        self.on_full: Callable[[Shard, list[str]], None] | None = None
        # Subscribe tries in a row that left markets unacknowledged, and that got no reply
        # at all; the next try of the unacknowledged markets waits until `_retry_at`.
        self.failed_tries = 0
        self.unanswered = 0
        self._retry_at = 0.0

    @property
    def sids(self) -> dict[str, int]:
        """channel -> stream (Kalshi: sid) on the current connection."""
        return self.subs.streams if self.subs is not None else {}

    @property
    def is_global(self) -> bool:
        return self.number == self.config.first_number

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
            await cancel_and_wait(self._task)
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
        """Drop the connection now (tests, and a stream that cannot be recovered)."""
        if self.session is not None:
            self.session.abort(reason)

    def _on_frames(self, frames: list[bytes], receive_ns: int) -> None:
        first = self.frame_no + 1
        self.frame_no += len(frames)
        self.hooks.frames(self, first, frames, receive_ns)

    def _on_stream_error(self, stream: int, code: int, text: str) -> None:
        if self.subs is not None:
            self.subs.stream_error(stream, code, text)

    async def _run(self) -> None:
        attempt = 0
        cfg = self.config
        while not self._stopping:
            self.conn_id = next_conn_id(cfg.id_residue, cfg.id_stride)
            self.frame_no = 0
            self.subscribed = set()
            self.failed_tries = self.unanswered = 0
            self._retry_at = 0.0
            self.state = "connecting"
            session = cfg.venue.session(
                cfg.url,
                cfg.credentials,
                self._on_frames,
                liveness=cfg.liveness,
                on_stream_error=self._on_stream_error,
                max_frame_bytes=cfg.max_frame_bytes,
            )
            self.session = session
            self.subs = cfg.venue.subscriptions(self, session)
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
                    async with self.lock:
                        await self._attempt(self.subs.open(), sorted(self.markets))
                    self.state = "streaming"
                    attempt = 0
                    reason = await reader
                finally:
                    if not reader.done():
                        session.abort("subscribe failed")
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
                session.abort(reason)
            if self._stopping:
                break  # stop() says `disconnected`
            if session.connected:
                self._disconnected(reason or session.close_reason, started)
            self.state = "backoff"
            self.reconnects += 1
            delay = cfg.backoff(attempt)
            attempt = min(attempt + 1, 16)
            log.warning("shard %d: %s; reconnecting in %.2fs", self.number, reason, delay)
            await asyncio.sleep(delay)

    # ---- subscriptions ----------------------------------------------------------------

    def refused(self, symbols: list[str]) -> None:
        """The exchange refused `symbols` for lack of room: the shard holds what it has;
        the refused markets go elsewhere (kept for the next connect when none fit)."""
        if not self.subscribed or self.on_full is None:
            return
        self.markets.difference_update(symbols)
        self.on_full(self, symbols)

    def _live(self) -> Subscriptions | None:
        if self.state == "streaming" and self.session is not None:
            return self.subs
        return None

    async def add(self, tickers: Iterable[str]) -> None:
        new = sorted(set(tickers) - self.markets)
        if not new:
            return
        self.markets.update(new)
        async with self.lock:
            subs = self._live()
            if subs is not None:
                await self._subscribe(subs.add(new), new)

    def unacknowledged(self) -> list[str]:
        """The shard's markets the exchange has not acknowledged on this connection."""
        return sorted(self.markets - self.subscribed)

    async def catch_up(self) -> None:
        """Ask again for the markets the exchange has not acknowledged on this connection
        (refused, or asked with no reply), once the backoff since the last try is over.
        Not while the shard connects or another subscribe step runs: the caller (the
        tracking loop) does not wait for those, it comes again next sweep."""
        if self.markets <= self.subscribed or time.monotonic() < self._retry_at:
            return
        if self._live() is None or self.lock.locked():
            return
        async with self.lock:
            subs = self._live()
            missing = self.unacknowledged()
            if subs is not None and missing:
                await self._subscribe(subs.add(missing), missing)

    async def _subscribe(self, step: Awaitable[None], asked: list[str]) -> None:
        """A subscribe try on the live connection. A link that fails under it is dropped:
        the reconnect subscribes everything."""
        try:
            await self._attempt(step, asked)
        except SessionError as exc:
            self.kill(f"subscribe failed: {exc}")

    async def _attempt(self, step: Awaitable[None], asked: list[str]) -> None:
        """Run a subscribe step of the venue's (open, add) for the markets `asked`; plan
        when those it leaves unacknowledged are asked again (catch_up). No reply counts
        `subscribe_timeout`, and MAX_UNANSWERED of them in a row drop the connection."""
        try:
            await step
            self.unanswered = 0
        except NoReply as exc:
            self.unanswered += 1
            self.hooks.count_error("subscribe_timeout")
            self.hooks.event(
                "error",
                self,
                f"{exc} ({self.unanswered} of {MAX_UNANSWERED} in a row): asked again",
                tickers=self.unacknowledged(),
            )
            if self.unanswered >= MAX_UNANSWERED:
                self.kill(f"no reply to {MAX_UNANSWERED} subscribe tries in a row")
                return
        left = [t for t in asked if t in self.markets and t not in self.subscribed]
        if not left:
            self.failed_tries = 0
            return
        delay = self.config.backoff(self.failed_tries)
        self.failed_tries += 1
        self._retry_at = time.monotonic() + delay
        log.warning(
            "shard %d: %d markets not subscribed (try %d); asking again in %.2fs",
            self.number,
            len(left),
            self.failed_tries,
            delay,
        )

    async def remove(self, tickers: Iterable[str]) -> None:
        gone = sorted(set(tickers) & self.markets)
        if not gone:
            return
        self.markets.difference_update(gone)
        async with self.lock:
            subs = self._live()
            if subs is not None:
                try:
                    await subs.remove(gone)
                except SessionError as exc:
                    log.info("shard %d: delete deferred to reconnect: %s", self.number, exc)
            self.subscribed.difference_update(gone)
        self.hooks.event("unsubscribed", self, f"{len(gone)} markets", tickers=gone)

    async def snapshot(self, sid: int, tickers: list[str]) -> None:
        """Ask for fresh order-book snapshots on stream `sid` (gap recovery)."""
        async with self.lock:
            subs = self._live()
            if subs is None:
                return
            try:
                await subs.snapshot(sid, tickers)
            except SessionError as exc:
                log.info("shard %d: snapshot request failed: %s", self.number, exc)

    async def resubscribe(self, sid: int) -> bool:
        """Unsubscribe stream `sid` and subscribe its channel again with the shard's markets
        (fresh snapshots). False if the stream is not live here or the link failed."""
        async with self.lock:
            subs = self._live()
            if subs is None:
                return False
            try:
                return await subs.resubscribe(sid)
            except SessionError as exc:
                log.info("shard %d: resubscribe of stream %d failed: %s", self.number, sid, exc)
                return False


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
        first = self.config.first_number
        if self.config.global_channels and first not in self.shards:
            self._new(first)

    def by_conn(self, conn_id: int) -> Shard | None:
        return next((s for s in self.shards.values() if s.conn_id == conn_id), None)

    @property
    def markets(self) -> set[str]:
        return set(self.owner)

    @property
    def subscribed(self) -> set[str]:
        """The markets the exchange acknowledged, over every shard."""
        return set().union(*(s.subscribed for s in self.shards.values()))

    async def catch_up(self, tickers: Iterable[str]) -> None:
        """Ask again, each on its shard and after that shard's backoff, for the markets of
        `tickers` the exchange has not acknowledged."""
        shards = {self.owner[t].number: self.owner[t] for t in tickers if t in self.owner}
        await asyncio.gather(*(s.catch_up() for s in shards.values()))

    async def add(self, tickers: Iterable[str]) -> None:
        first = self.config.first_number
        todo = sorted(set(tickers) - self.owner.keys())
        plan: dict[int, list[str]] = {}
        for t in todo:
            shard = next(
                (
                    s
                    for n, s in sorted(self.shards.items())
                    if n > first and s.room() - len(plan.get(n, [])) > 0
                ),
                None,
            )
            if shard is None:
                shard = self._new(max(self.shards, default=first) + 1)
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
