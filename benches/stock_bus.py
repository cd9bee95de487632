"""The baselines of the component benchmarks: the connector's publisher and the
archiver's puller written on nats-py's public API, each a drop-in for the component's own
(ssmd.bus.publisher.Publisher, ssmd.bus.puller.Puller) so that a benchmark can run the
same component on either bus in the same run.

- `StockPublisher`: `publish` per message with its headers and a reply subject, one
  wildcard subscription for the PubAcks, at most `max_inflight` unacked (the connector's
  window).
- `StockPuller`: `pull_subscribe_bind` on the archiver's durable consumer, `fetch` of a
  batch, `ack` per message (the last one `ack_sync`, so that the batch is known taken).

Used by benches/connector_capture.py and benches/archiver_throughput.py (`--baseline`).
What they leave out (a publisher's replay after a reconnect, a puller's heartbeat
watch) does not run in those benchmarks either.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from typing import Any

import nats

from ssmd import core
from ssmd.archiver import Archiver
from ssmd.bus.publisher import MSG_ID
from ssmd.connector.runner import Connector


@dataclass
class StockAcked:
    """What one PubAck acked, in the shape the connector's `on_ack` reads."""

    frames: int
    newest_frame_ns: int
    frame_times: list[int] = field(default_factory=list)


def headers_of(batch: core.OutBatch, i: int) -> dict[str, str]:
    """Message i's headers as nats-py takes them: the id, then the lines as sent."""
    headers = {MSG_ID: batch.msg_id(i)}
    for line in batch.header_lines(i).split(b"\r\n"):
        if line:
            key, _, value = line.decode().partition(": ")
            headers[key] = value
    return headers


class StockPublisher:
    def __init__(
        self,
        url: str,
        name: str,
        *,
        max_inflight: int = 4096,
        on_ack: Any = None,
        keep_frame_times: bool = False,
    ) -> None:
        self.url, self.name = url, name
        self.max_inflight = max_inflight
        self._on_ack = on_ack
        self._keep_frame_times = keep_frame_times
        self._prefix = f"_INBOX.{secrets.token_hex(11)}."
        self._unacked: dict[str, int] = {}  # token -> receive ns of a raw frame, else -1
        self._room = asyncio.Event()
        self._room.set()
        self._empty = asyncio.Event()
        self._empty.set()
        self._next = 0
        self.nc: Any = None
        self.published = self.acked = self.refused = self.reordered = 0
        self.recovering = False

    @property
    def inflight(self) -> int:
        return len(self._unacked)

    async def start(self) -> None:
        self.nc = await nats.connect(self.url, name=self.name)
        await self.nc.subscribe(self._prefix + "*", cb=self._pub_ack)

    async def close(self) -> None:
        await self.nc.close()

    async def publish_many(self, batch: core.OutBatch) -> None:
        for i in range(len(batch)):
            await self._room.wait()
            token = str(self._next)
            self._next += 1
            self._unacked[token] = batch.receive_ns(i) if batch.is_frame(i) else -1
            self._empty.clear()
            if len(self._unacked) >= self.max_inflight:
                self._room.clear()
            await self.nc.publish(
                batch.subject(i), batch.payload(i), self._prefix + token, headers_of(batch, i)
            )
            self.published += 1

    async def _pub_ack(self, msg: Any) -> None:
        receive_ns = self._unacked.pop(msg.subject[len(self._prefix) :], None)
        if receive_ns is None:
            return
        if b'"error"' in msg.data:
            self.refused += 1  # counted: the benchmark's zero-loss check catches the loss
        self.acked += 1
        if len(self._unacked) < self.max_inflight // 2:
            self._room.set()
        if not self._unacked:
            self._empty.set()
        if receive_ns >= 0 and self._on_ack is not None:
            times = [receive_ns] if self._keep_frame_times else []
            self._on_ack(StockAcked(1, receive_ns, times))

    async def flush(self, timeout: float | None = None) -> bool:
        try:
            async with asyncio.timeout(timeout):
                await self._empty.wait()
        except TimeoutError:
            return False
        return True


class StockConnector(Connector):
    """The connector with its publisher on nats-py's public API."""

    def new_publisher(self, name: str) -> Any:
        s = self.settings
        return StockPublisher(
            s.nats.url,
            name,
            max_inflight=s.max_inflight,
            on_ack=self._acked,
            keep_frame_times=self._record_latency,
        )


class StockPuller:
    def __init__(self, url: str, name: str, stream: str, durable: str, batch: int) -> None:
        self.url, self.name, self.stream, self.durable = url, name, stream, durable
        self.batch = batch
        self.nc: Any = None
        self.sub: Any = None
        self._msgs: dict[int, Any] = {}  # stream seq -> its Msg, until acked
        self.held = 0

    async def start(self) -> None:
        self.nc = await nats.connect(self.url, name=self.name)
        self.sub = await self.nc.jetstream().pull_subscribe_bind(self.durable, self.stream)

    async def stop(self) -> None:
        await self.nc.close()

    async def wait_connected(self) -> None:
        return None

    @property
    def is_connected(self) -> bool:
        return bool(self.nc.is_connected)

    async def fetch(self) -> core.Deliveries:
        try:
            msgs = await self.sub.fetch(self.batch, timeout=1.0)
        except nats.errors.TimeoutError:
            return core.Deliveries([])
        rows = []
        for m in msgs:
            meta = m.metadata
            seq = meta.sequence.stream
            self._msgs[seq] = m
            stored_ns = round(meta.timestamp.timestamp() * 1e9)
            rows.append((m.subject, seq, stored_ns, m.headers, m.data))
        return core.Deliveries(rows)

    async def ack(self, got: core.Deliveries) -> None:
        seqs = got.seqs
        for seq in seqs[:-1]:
            await self._msgs.pop(seq).ack()
        if seqs:
            await self._msgs.pop(seqs[-1]).ack_sync()

    async def finish(self) -> core.Deliveries:
        return core.Deliveries([])


class StockArchiver(Archiver):
    """The archiver with its puller on nats-py's public API."""

    def new_puller(self) -> Any:
        s = self.s
        name = f"ssmd-archiver-{s.env}-pull"
        return StockPuller(s.nats_url, name, s.stream, s.consumer.durable, s.consumer.batch)
