"""JetStream publishing with PubAcks, message ids and one batch in flight at a time.

`Publisher.publish_many(msgs)` hands a batch to the NATS client and returns; the
PubAcks arrive later on a private inbox (one wildcard subscription, the reply subject
of each message names its token). The next batch goes out once every message before
it is acked, so at most one batch (`max_inflight` messages, `max_batch_bytes` of
payload) is unacked at a time: `publish_many` waits for that (policy: block; the
caller's own bounded queue decides what happens upstream).

Nothing is dropped. When NATS goes away (disconnect callback), an ack times out, or the
server answers an error, the publisher stops taking new messages, waits for the
connection, and republishes every unacked message *in the original order* with the same
`Nats-Msg-Id`; JetStream's duplicate window turns the ones it already stored into
no-ops. Only then does it take new messages again, so the stream keeps the order in
which frames were received.

Why one batch at a time: the client keeps whatever it had not yet written to the
socket when the connection dropped and sends it first after reconnecting, ahead of the
replay, while what it had written may be lost with the socket. With one batch in
flight, what it keeps is part of the batch being replayed and everything older is
already stored, so nothing can overtake the replay. A batch is handed over in one go
(the client buffers it without waiting, as long as it stays under the connection's
`pending_bytes`, see ssmd.bus.connection) and never while disconnected.

Under load the caller's batches grow while the previous one is being acked, so the
cost per message stays the client's own: one `publish` per message, one flush per
batch, one ack callback per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

__all__ = ["OutMsg", "Publisher"]

log = logging.getLogger(__name__)

MSG_ID = "Nats-Msg-Id"
_STATUS = "Status"
_NO_RESPONDERS = "503"


@dataclass(slots=True)
class OutMsg:
    subject: str
    payload: bytes
    msg_id: str
    headers: dict[str, str] | None = None
    receive_ns: int = 0  # local receive time of the frame behind it; 0 = not a frame
    # Further header lines already encoded ("Key: value\r\n" ...), sent after `headers`;
    # for the hot path (raw frames), where building a dict per message costs too much.
    header_lines: bytes = b""


def header_dict(msg: OutMsg) -> dict[str, str]:
    """All of a message's headers as the client takes them: id, `headers`, `header_lines`."""
    out = {MSG_ID: msg.msg_id}
    if msg.headers:
        out.update(msg.headers)
    if msg.header_lines:
        for line in msg.header_lines.decode().split("\r\n"):
            if line:
                key, _, value = line.partition(": ")
                out[key] = value
    return out


AckCallback = Callable[[OutMsg, int, bool], None]  # (message, stream seq, duplicate)


class Publisher:
    def __init__(
        self,
        nc: NatsClient,
        *,
        max_inflight: int = 4096,
        max_batch_bytes: int = 8 * 1024 * 1024,
        ack_timeout: float = 5.0,
        on_ack: AckCallback | None = None,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self._nc = nc
        self.max_inflight = max_inflight
        self.max_batch_bytes = max_batch_bytes
        self.ack_timeout = ack_timeout
        self._on_ack = on_ack
        self._on_error = on_error
        self._pending: dict[int, tuple[OutMsg, float]] = {}  # token -> (msg, sent monotonic)
        self._next_token = 0  # reply token of the next message sent
        self._prefix = ""
        self._prefix_len = 0
        self._sub: Subscription | None = None
        self._empty = asyncio.Event()  # nothing unacked
        self._empty.set()
        self._room = asyncio.Event()  # nothing unacked and no replay running
        self._room.set()
        self._recovering = False
        self._failed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.published = 0
        self.acked = 0
        self.duplicates = 0
        self.republished = 0

    @property
    def inflight(self) -> int:
        return len(self._pending)

    @property
    def recovering(self) -> bool:
        return self._recovering

    async def start(self) -> None:
        self._prefix = f"{self._nc.new_inbox()}."
        self._prefix_len = len(self._prefix)
        self._sub = await self._nc.subscribe(self._prefix + "*", cb=self._on_reply)
        self._tasks = [
            asyncio.create_task(self._watch_timeouts(), name="publisher-timeouts"),
            asyncio.create_task(self._recover_loop(), name="publisher-recovery"),
        ]

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks = []
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None

    def connection_lost(self) -> None:
        """Call from the NATS disconnected callback: hold new messages, replay in order."""
        self._fail("nats disconnected")

    async def publish(self, msg: OutMsg) -> None:
        """Send `msg`; waits while a batch is unacked or a replay is running."""
        await self.publish_many([msg])

    async def publish_many(self, msgs: list[OutMsg]) -> None:
        """Send `msgs` in order, in batches of at most `max_inflight` messages and
        `max_batch_bytes` of payload; each waits until the one before is acked and no
        replay is running."""
        i, n = 0, len(msgs)
        while i < n:
            while self._recovering or self._pending:
                self._room.clear()
                await self._room.wait()
            j = self._batch_end(msgs, i)
            await self._send(msgs[i:j])
            i = j

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until every message published so far is acked; False on timeout."""
        try:
            async with asyncio.timeout(timeout):
                while self._recovering or self._pending:
                    self._room.clear()
                    await self._room.wait()
        except TimeoutError:
            return False
        return True

    # ---- internals ------------------------------------------------------------------

    def _batch_end(self, msgs: list[OutMsg], i: int) -> int:
        end = min(len(msgs), i + self.max_inflight)
        size, limit = 0, self.max_batch_bytes
        for j in range(i, end):
            size += len(msgs[j].payload)
            if size > limit and j > i:
                return j
        return end

    async def _send(self, msgs: list[OutMsg]) -> None:
        """Registers `msgs` as unacked and hands them to the client in one go; a client
        that is not connected gets none of them (the replay sends them)."""
        now = time.monotonic()
        pending = self._pending
        first = token = self._next_token
        for msg in msgs:
            pending[token] = (msg, now)
            token += 1
        self._next_token = token
        self.published += len(msgs)
        self._empty.clear()
        nc = self._nc
        if not nc.is_connected or nc.is_draining_pubs:
            self._fail("publish failed: not connected")
            return
        publish, prefix = nc.publish, self._prefix
        try:
            for k, msg in enumerate(msgs, first):
                if not nc.is_connected:
                    raise ConnectionError("disconnected during the batch")
                await publish(msg.subject, msg.payload, f"{prefix}{k}", header_dict(msg))
        except Exception as exc:  # not connected, closed, refused by the client: replay later
            self._fail(f"publish failed: {exc!r}")

    async def _on_reply(self, msg: Msg) -> None:
        """A PubAck (or an error) on our inbox."""
        try:
            token = int(msg.subject[self._prefix_len :])
        except ValueError:
            return
        entry = self._pending.get(token)
        if entry is None:
            return  # a late ack of a message already replayed
        headers = msg.headers
        if headers and headers.get(_STATUS) == _NO_RESPONDERS:
            self._fail("publish rejected: no responders (no stream for the subject)")
            return
        try:
            resp = orjson.loads(msg.data)
        except orjson.JSONDecodeError:
            resp = {"error": {"description": "unreadable puback"}}
        if not isinstance(resp, dict) or "error" in resp:
            self._fail(f"publish rejected: {resp}")
            return
        del self._pending[token]
        self.acked += 1
        dup = bool(resp.get("duplicate"))
        if dup:
            self.duplicates += 1
        if self._on_ack is not None:
            self._on_ack(entry[0], int(resp.get("seq", 0)), dup)
        if not self._pending:
            self._empty.set()
            if not self._recovering:
                self._room.set()

    def _fail(self, why: str) -> None:
        if not self._recovering:
            log.warning("publisher: %s; replaying %d unacked messages", why, len(self._pending))
            if self._on_error is not None:
                self._on_error(why)
        self._recovering = True
        self._failed.set()

    async def _watch_timeouts(self) -> None:
        while True:
            await asyncio.sleep(min(0.25, self.ack_timeout / 4))
            if self._pending:
                _, sent = next(iter(self._pending.values()))
                if time.monotonic() - sent > self.ack_timeout:
                    self._fail(f"no PubAck within {self.ack_timeout}s")

    async def _acked_or_failed(self) -> None:
        """Until the batch in flight is acked or something fails again."""
        waiters = [asyncio.ensure_future(e.wait()) for e in (self._empty, self._failed)]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()

    async def _recover_loop(self) -> None:
        while True:
            await self._failed.wait()
            while True:
                self._failed.clear()
                while not self._nc.is_connected:
                    await asyncio.sleep(0.05)
                replay = [msg for msg, _ in self._pending.values()]
                self._pending.clear()
                self._empty.set()
                self.republished += len(replay)
                i = 0
                while i < len(replay) and not self._failed.is_set():
                    j = self._batch_end(replay, i)
                    await self._send(replay[i:j])
                    i = j
                    await self._acked_or_failed()
                if i < len(replay):
                    # Failed again mid-replay: keep the unsent rest, in order, behind it.
                    now = time.monotonic()
                    for rest in replay[i:]:
                        self._pending[self._next_token] = (rest, now)
                        self._next_token += 1
                if not self._failed.is_set():
                    break
            self._recovering = False
            self._room.set()
