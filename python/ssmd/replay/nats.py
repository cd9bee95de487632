"""The `nats` target: the archived frames published into the replay environment's
stream as the connector publishes them.

Frames go through the connector's own pipeline (ssmd.connector.pipeline: the Rust
normalizer, subjects from ssmd.bus.subjects), so the stream holds the raw frames and
the normalized records a live connector would have published for them, in receive
order, with the original receive time (`Ssmd-Receive-Ns`) and connection
(`Ssmd-Conn-Id`) headers, and the exchange's time (`Ssmd-Exchange-Ns`, of the frame's
first record) as well. Connector events (archived ones and the replay's gap notices)
go on `{env}.{feed}.events.{kind}` unchanged. Book checkpoints are published every
30 s of archive time, as the connector does, so that a gateway started late restores
its books.

Message ids are `{conn}:{n}` with n counting from the replay's start time in
nanoseconds, so a replay never collides with an earlier one in JetStream's duplicate
window.
"""

from __future__ import annotations

import itertools
import logging
import time
from typing import Any

from ssmd import core
from ssmd.bus import subjects
from ssmd.bus.connection import NatsClient, connect
from ssmd.bus.publisher import OutMsg, Publisher
from ssmd.bus.stream import ensure_stream
from ssmd.config import ResolvedEnvironment
from ssmd.connector.capture_queue import Item
from ssmd.connector.pipeline import Pipeline
from ssmd.exceptions import ConfigError
from ssmd.replay.source import Entry

__all__ = ["EXCHANGE_HEADER", "NatsTarget"]

EXCHANGE_HEADER = core.EXCHANGE_HEADER

log = logging.getLogger(__name__)

CHECKPOINT_EVERY_NS = 30 * 1_000_000_000
CHECKPOINT_FULL_EVERY = 120  # rounds, as the connector


class NatsTarget:
    def __init__(self, env: ResolvedEnvironment, *, max_inflight: int = 8192) -> None:
        if env.nats.embedded:
            raise ConfigError(
                f"environment {env.name} uses the embedded NATS server, which `ssmd up` starts. "
                "Fix: pass --nats-url (or set SSMD_NATS_URL) to the server to replay into"
            )
        self.env = env
        self.pipeline = Pipeline(env.name, env.feed.metadata.name, exchange_headers=True)
        self.max_inflight = max_inflight
        self.nc: NatsClient | None = None
        self.publisher: Publisher | None = None
        self._numbers = itertools.count(time.time_ns())
        self._conns: dict[str | None, int] = {}  # archived conn ids as text -> as numbers
        self._next_checkpoint = 0
        self._rounds = 0
        self.published = 0

    async def start(self) -> None:
        name = f"ssmd-replay-{self.env.name}"
        self.nc = nc = await connect(self.env.nats.url, name)
        await ensure_stream(nc.jetstream(), self.env.nats)
        self.publisher = Publisher(
            self.env.nats.url, f"{name}-publisher", max_inflight=self.max_inflight
        )
        await self.publisher.start()

    async def stop(self, timeout: float = 30.0) -> bool:
        """Wait for the acks of everything published (False on timeout), then close."""
        flushed = True
        if self.publisher is not None:
            flushed = await self.publisher.flush(timeout)
            await self.publisher.close()
        if self.nc is not None:
            await self.nc.close()
        return flushed

    def state(self) -> dict[str, Any]:
        p = self.publisher
        return {
            "stream": self.env.nats.stream,
            "subjects": self.env.nats.subjects,
            "published": self.published,
            "acked": p.acked if p else 0,
            "inflight": p.inflight if p else 0,
        }

    async def ready(self) -> None:
        """The clock starts at once."""

    async def books(self, records: list[tuple[str, bytes]]) -> None:
        """Publish the books to start from as `book` checkpoints (the gateway restores
        its books from them), and take them into the pipeline's books."""
        assert self.publisher is not None
        messages = []
        env, feed = self.pipeline.env, self.pipeline.feed
        for ticker, record in records:
            self.pipeline.books.apply(record)
            subject = subjects.record(env, feed, "book", ticker)
            messages.append(OutMsg(subject, record, f"bk:{next(self._numbers)}:{ticker}"))
        await self.publisher.publish_many(messages)
        self.published += len(messages)

    async def send(self, entries: list[Entry]) -> None:
        assert self.publisher is not None
        items = []
        numbers, conns = self._numbers, self._conns
        for e in entries:
            frame = e.frame
            if frame is not None:
                conn = conns.get(frame.conn_id)
                if conn is None:
                    conn = conns[frame.conn_id] = int(frame.conn_id) if frame.conn_id else 0
                items.append(Item(conn, next(numbers), e.receive_ns, frame.frame))
            elif e.event is not None:
                rec = e.event.record
                items.append(
                    Item(
                        int(rec.get("conn_id") or 0),
                        next(numbers),
                        e.receive_ns,
                        e.event.data,
                        str(rec["event"]),
                    )
                )
        if not items:
            return
        messages = self.pipeline.process(items).messages
        last = entries[-1].receive_ns
        if last >= self._next_checkpoint:
            everything = self._rounds % CHECKPOINT_FULL_EVERY == 0
            messages.extend(self.pipeline.checkpoint(last, everything))
            self._rounds += 1
            self._next_checkpoint = last + CHECKPOINT_EVERY_NS
        await self.publisher.publish_many(messages)
        self.published += len(messages)
