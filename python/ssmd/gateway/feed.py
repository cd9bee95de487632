"""The stream -> market state (ssmd.gateway.state): the consumers, the start-up reads,
and how far the gateway is behind the stream.

Start-up, so that a gateway started (or restarted) at any moment serves exact books
(the one-shot reads and the choice of checkpoints: ssmd.gateway.startup):
  1. Read the last message of every `{prefix}.book.*` (the connector's book
     checkpoints), `status.*` and `lifecycle.*` subject (DeliverPolicy.LAST_PER_SUBJECT):
     statuses are applied, and each book is restored from its latest checkpoint
     (levels, valid flag, and its (conn_id, sid) with that stream's last seq).
  2. Read the trades of the last `trade_window` up to the connector's latest
     checkpoint round, for the REST trade rings.
  3. Consume the live subjects (orderbook, book, trade, status, lifecycle, events) from
     the first checkpoint of that round (or from the start of the stream when there is
     no checkpoint): deltas at or below a restored seq are duplicates, the ones after
     apply on top. Records are applied in stream order.
  4. Once the live consumer has delivered what was pending when it was created, the
     feed is ready: books go out to clients from then on.
The live consumer is an ephemeral pull consumer without acks, read on a connection of
its own (ssmd.bus.puller): each batch of deliveries is applied in one call in Rust
(BookSet.apply_deliveries), which renders the trades and hands back only what changed.
When the connection is lost, the consumer is gone, or a delivery is missing (its
consumer sequence skips), a new consumer is made from the stream sequence after the
last one applied; a stream sequence already applied is skipped.

Connector `disconnected` events invalidate the books of that connection
(BookSet.close_connection); gaps, resyncs and invalid records are found by the
BookSet from the records themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import secrets
import time
from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import Final

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from ssmd import core
from ssmd.aio import cancel_and_wait
from ssmd.bus import subjects
from ssmd.bus.connection import NatsClient, connect
from ssmd.bus.puller import Puller
from ssmd.bus.stream import check_stream
from ssmd.exceptions import ConfigError, DecodeError
from ssmd.gateway.metrics import GatewayMetrics
from ssmd.gateway.settings import GatewaySettings
from ssmd.gateway.startup import (
    Checkpoint,
    as_deliveries,
    latest_checkpoints,
    read_once,
    replay_start,
    stream_meta,
)
from ssmd.gateway.state import MarketState, Sink

__all__ = ["LIVE_TYPES", "Feed", "live_subjects"]

log = logging.getLogger(__name__)

Reads = AsyncGenerator[list[Msg], None]

_FETCH: Final = 1000
_LIVE_BATCH: Final = 2000  # deliveries a pull request asks for (at most two held)
_LIVE_EXPIRES: Final = 5.0  # seconds a live pull request waits


# The record types the feed applies (the subject's type token).
LIVE_TYPES: Final = ["orderbook", subjects.BOOK, "trade", "status", "lifecycle", subjects.EVENTS]


def live_subjects(prefix: str) -> list[str]:
    """What the feed applies (tickers are one escaped token)."""
    return [subjects.every_ticker(prefix, t) for t in LIVE_TYPES]


class Feed:
    def __init__(
        self,
        settings: GatewaySettings,
        metrics: GatewayMetrics,
        sink: Sink | None = None,
        symbol_prefix: str = "",
    ) -> None:
        """`symbol_prefix`: before each ticker in what clients see (a further venue's
        markets in a gateway serving several, ssmd.gateway.symbols)."""
        self.settings = settings
        self.metrics = metrics
        self.state = MarketState(settings, metrics, sink, symbol_prefix)
        self.venue = settings.feed
        self.prefix = settings.nats.subject_prefix
        self.ready = False
        self.stream_found = False
        self.last_seq = 0
        self.lag = 0
        self.last_stored_ns = 0  # when the stream stored the newest live message applied
        self.fatal: str | None = None  # why consuming stopped for good
        self.nc: NatsClient | None = None
        self._puller: Puller | None = None
        self._consumer: str | None = None  # the live consumer's name
        # When the stream read was created: one created again starts its sequences over.
        self._stream_created: datetime | None = None
        self._task: asyncio.Task[None] | None = None
        self._received = 0
        self._target: int | None = None
        self._at_end = False

    # ---- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, check the stream when it exists (ConfigError on a subject mismatch), and
        consume in the background; a stream that does not exist yet is waited for."""
        s = self.settings
        self.nc = await connect(s.nats.url, f"ssmd-gateway-{s.env}-{s.feed}")
        js = self.nc.jetstream()
        await self._check(js)
        self._task = asyncio.create_task(self._run(js), name=f"gateway-feed-{self.venue}")
        self._task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        self.fatal = str(exc) if isinstance(exc, ConfigError) else f"feed failed: {exc!r}"
        log.error("gateway feed of %s stopped: %s", self.venue, self.fatal)

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
        await self._drop_consumer()
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.close()

    async def _check(self, js: JetStreamContext) -> bool:
        stream = self.settings.nats.stream
        try:
            info = await js.stream_info(stream)
        except NotFoundError:
            return False
        await check_stream(js, stream, live_subjects(self.prefix))
        self.stream_found = True
        self._stream_created = info.created
        return True

    async def _run(self, js: JetStreamContext) -> None:
        while True:
            try:
                if not self.stream_found:
                    log.warning(
                        "stream %s does not exist yet; waiting for the connector to create it",
                        self.settings.nats.stream,
                    )
                    while not await self._check(js):
                        await asyncio.sleep(self.settings.stream_wait)
                await self._start_consuming(js)
                return
            except ConfigError:
                raise
            except Exception as exc:  # NATS down or restarting during start-up: start over
                log.warning("gateway start-up read failed (%s); retrying", type(exc).__name__)
                await self._reset()
                await asyncio.sleep(self.settings.stream_wait)

    async def _reset(self) -> None:
        await self._drop_consumer()
        self._received, self._target, self._at_end = 0, None, False
        self.state.reset()
        self.last_seq = 0

    # ---- start-up reads -----------------------------------------------------------------

    def _read(self, js: JetStreamContext, name: str, config: ConsumerConfig) -> Reads:
        self.metrics.consumer_resets.labels(name).inc()
        return read_once(js, self.settings.nats.stream, config, _FETCH)

    async def _restore(self, js: JetStreamContext) -> int | None:
        """Step 1: the last status/lifecycle of every market, and the books from their latest
        checkpoints. Returns the stream sequence to consume from (None: from the start)."""
        p = self.prefix
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
            filter_subjects=[
                subjects.every_ticker(p, t) for t in (subjects.BOOK, "status", "lifecycle")
            ],
        )
        book_type = subjects.type_prefix(p, subjects.BOOK)
        checkpoints: list[Checkpoint] = []
        async with contextlib.aclosing(self._read(js, "last_per_subject", config)) as reads:
            async for msgs in reads:
                others = []
                for m in msgs:
                    if m.subject.startswith(book_type):
                        seq, ts, _ = stream_meta(m.reply)
                        checkpoints.append((seq, ts, m.data))
                    else:
                        others.append(m)
                self._apply(as_deliveries(others))
        return self._restore_books(checkpoints)

    def _restore_books(self, checkpoints: list[Checkpoint]) -> int | None:
        """Apply the latest checkpoint of each book (in stream order, so each
        (conn_id, sid) ends with the seq of its newest checkpoint) and return where to
        replay from (startup.replay_start). Books whose latest checkpoint is more than
        `checkpoint_horizon` older than the newest are no longer held by the connector
        and are left out."""
        if not checkpoints:
            return None
        kept = latest_checkpoints(checkpoints, self.settings.checkpoint_horizon)
        data = b"".join(payload for _, _, payload in kept)
        try:
            recs = core.decode_records(data)
        except DecodeError:
            self.metrics.decode_errors.inc()
            log.warning("unreadable book checkpoints; replaying the stream instead")
            return None
        if len(recs) != len(kept):
            log.warning("book checkpoints hold more than one record each; replaying the stream")
            return None
        self.state.restore(data, recs)
        start = replay_start(kept, recs)
        log.info(
            "restored %d books from checkpoints (%d older ones left out); replaying from "
            "stream sequence %d",
            len(kept),
            len(checkpoints) - len(kept),
            start,
        )
        return start

    async def _backfill_trades(self, js: JetStreamContext, before: int) -> None:
        """Trades of the last `trade_window` up to stream sequence `before` (the live
        consumer reads from there)."""
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_TIME,
            opt_start_time=datetime.fromtimestamp(self.state.trade_floor_ns / 1e9, UTC),
            filter_subjects=[subjects.every_ticker(self.prefix, "trade")],
        )
        async with contextlib.aclosing(self._read(js, "trade_backfill", config)) as reads:
            async for msgs in reads:
                keep = [m for m in msgs if stream_meta(m.reply)[0] < before]
                self._apply(as_deliveries(keep))
                if len(keep) < len(msgs):
                    return

    async def _start_consuming(self, js: JetStreamContext) -> None:
        s = self.settings
        self.state.trade_floor_ns = time.time_ns() - int(s.trade_window * 1e9)
        start = await self._restore(js)
        if start is not None:
            await self._backfill_trades(js, start)
            self.last_seq = start - 1
        first = True
        while True:  # each pass: one live consumer, until it must be made again
            try:
                await self._consume(js, from_start=first and start is None)
            except (OSError, TimeoutError, nats.errors.Error) as exc:
                log.warning(
                    "gateway live consumer failed (%s); making a new one from stream sequence %d",
                    exc or type(exc).__name__,
                    self.last_seq + 1,
                )
                await asyncio.sleep(self.settings.stream_wait)
            finally:
                await self._drop_consumer()
            first = False

    async def _consume(self, js: JetStreamContext, from_start: bool) -> None:
        """Read the live subjects from `last_seq` + 1 (or from the start of the stream)
        until the connection is lost, the consumer is gone, or a delivery is missing."""
        s = self.settings
        name = f"ssmd-gateway-{secrets.token_hex(6)}"
        # One filter for the whole feed, the types not applied skipped in Rust unread: a
        # consumer with several filters costs nats-server about 100 us a message while it
        # reads a backlog (10,000 messages/s, against 460,000 with one filter), so a
        # gateway that fell behind would never catch up.
        config = ConsumerConfig(
            name=name,
            filter_subject=subjects.under(self.prefix),
            ack_policy=AckPolicy.NONE,
            mem_storage=True,
            num_replicas=1,
            inactive_threshold=max(30.0, 4 * s.idle_heartbeat),
        )
        created = (await js.stream_info(s.nats.stream)).created
        known = self._stream_created
        if not from_start and None not in (created, known) and created != known:
            # Deleted and made again: reading on from `last_seq` would skip its messages
            # until the new sequences passed the old ones.
            log.warning("stream %s was created again; reading it from its start", s.nats.stream)
            self.last_seq = 0
            from_start = True
        self._stream_created = created
        if from_start:
            config.deliver_policy = DeliverPolicy.ALL
        else:
            config.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
            config.opt_start_seq = self.last_seq + 1
        info = await js.add_consumer(s.nats.stream, config)
        self._consumer = name
        puller = self._puller = Puller(
            s.nats.url,
            f"ssmd-gateway-{s.env}-{s.feed}-live",
            s.nats.stream,
            name,
            batch=_LIVE_BATCH,
            expires=_LIVE_EXPIRES,
            heartbeat=min(s.idle_heartbeat, _LIVE_EXPIRES / 2),
            linger=0.0,
        )
        await puller.start()
        self.metrics.consumer_resets.labels("live").inc()
        if self._target is None:
            self._target = self._received + (info.num_pending or 0)
            log.info(
                "consuming %s from %s: %d messages to replay",
                s.nats.stream,
                "the start" if from_start else f"sequence {self.last_seq + 1}",
                info.num_pending,
            )
            self._maybe_ready()
        interruptions = puller.interruptions
        consumer_seq = 0
        state = self.state
        while puller.interruptions == interruptions:
            got = await puller.fetch()
            if not len(got):
                continue
            batch = state.books.apply_deliveries(
                got, self.last_seq, consumer_seq, self.prefix, LIVE_TYPES, state.symbol_prefix
            )
            consumer_seq = batch.consumer_seq
            self.last_seq = batch.last_seq
            self.last_stored_ns = batch.last_stored_ns
            self.lag = batch.pending
            self._received += batch.received
            self.state.take(batch)
            if batch.pending == 0:
                self._at_end = True
            if not self.ready:
                self._maybe_ready()
            if batch.broken:
                log.warning("a live delivery went missing; reading again from %d", self.last_seq)
                return
            await asyncio.sleep(0)  # clients' writers run between two batches

    async def _drop_consumer(self) -> None:
        puller, self._puller = self._puller, None
        name, self._consumer = self._consumer, None
        if puller is not None:
            await puller.stop()
        if name is not None and self.nc is not None and self.nc.is_connected:
            with contextlib.suppress(Exception):
                await self.nc.jetstream().delete_consumer(self.settings.nats.stream, name)

    def _maybe_ready(self) -> None:
        """Ready once a delivered message said nothing was pending after it, or once as
        many messages arrived as were pending when the consumer was created."""
        if self.ready or self._target is None:
            return
        if self._at_end or self._received >= self._target:
            self.ready = True
            state = self.state
            log.info(
                "gateway caught up: %d books, %d markets, %d trades held",
                len(state.books),
                len(state.markets),
                len(state.trades),
            )
            # What exists now (the code, the app, the restored books) lives as long as the
            # process: out of the collector's way, a full collection stays short and so do
            # the latency spikes it would cause.
            gc.freeze()
            state.go_live()

    # ---- applying records ---------------------------------------------------------------

    def _apply(self, deliveries: core.Deliveries) -> None:
        """A start-up read's messages, applied in order (stream sequences as they come)."""
        state = self.state
        state.take(
            state.books.apply_deliveries(
                deliveries, 0, 0, self.prefix, LIVE_TYPES, state.symbol_prefix
            )
        )

    # ---- how the feed is doing ----------------------------------------------------------

    def pending(self) -> int:
        """Messages not applied yet: still on the server, or received and queued here."""
        held = self._puller.held if self._puller is not None else 0
        return self.lag + held

    def behind(self) -> float:
        """Seconds since the stream stored the newest live message applied, while messages
        wait to be applied; 0 when none does."""
        if not self.last_stored_ns or not self.pending():
            return 0.0
        return max(0.0, (time.time_ns() - self.last_stored_ns) / 1e9)

    def nats_connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    def last_message_age(self) -> float | None:
        received = self.state.last_receive_ns
        if not received:
            return None
        return max(0.0, (time.time_ns() - received) / 1e9)

    def gauges(self) -> dict[str, float]:
        age = self.last_message_age()
        out = {
            "lag": float(self.pending()),
            "nats": 1.0 if self.nats_connected() else 0.0,
            "ready": 1.0 if self.ready else 0.0,
            "books": float(len(self.state.books)),
            "trades": float(len(self.state.trades)),
        }
        if age is not None:
            out["age"] = age
        return out
