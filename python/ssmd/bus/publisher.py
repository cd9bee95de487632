"""JetStream publishing with PubAcks, message ids and a bounded window of unacked messages.

`Publisher.publish_many(msgs)` writes its messages to NATS and returns; the PubAcks
arrive later on a private inbox (the reply subject of each message names its token).
At most `max_inflight` messages and `max_inflight_bytes` of payload (or one message, if
it alone is bigger) are unacked at any time. When the window is full, `publish_many`
waits until it is half empty, so batches stay large (policy: block; the caller's own
bounded queue decides what happens upstream).

Nothing is dropped. When the connection is lost, an ack times out, or the server
answers an error, the publisher stops taking new messages, waits for the connection,
and republishes every unacked message *in the original order* with the same
`Nats-Msg-Id`; JetStream's duplicate window turns the ones it already stored into
no-ops. Only then does it take new messages again, so the stream keeps the order in
which frames were received.

A replay starts with its first message alone and goes on in batches only once that one
is stored. A stream that refuses writes (no leader while a cluster elects one) refuses
the probe, which is sent again after a pause growing to a second; had the whole replay
gone at once, the election could end halfway through it and store the later messages
ahead of the refused ones.

What no client can prevent: a refusal in the middle of a batch (a leader lost between
two of its messages) lets the messages after it be stored first. Those stay unacked and
are replayed behind the refused one, and the replay tells: a message the stream already
had, after one it stored anew, went ahead of it. Such messages are counted in
`reordered` and logged, so a loss of order is never silent.

The connection is the publisher's own (ssmd.bus.wire) and the window lives in the Rust
core (`ssmd._core.PublishWindow`): messages come as an `OutBatch` (a whole batch of
frames and records is one object, built in one call), a run of it is encoded and
written in one go, and the PubAcks of a read are matched in one call that hands back
counts. Nothing written to a socket that died is sent again by anything but the
replay, and nothing new is written until the replay is acked, so nothing can overtake
it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ssmd import core
from ssmd.bus.wire import Wire

__all__ = ["OutMsg", "Publisher"]

log = logging.getLogger(__name__)

MSG_ID = "Nats-Msg-Id"


@dataclass(slots=True)
class OutMsg:
    """One message outside the hot path (connector events, book checkpoints): an
    OutBatch takes it with `append`."""

    subject: str
    payload: bytes
    msg_id: str
    headers: dict[str, str] | None = None
    receive_ns: int = 0  # local receive time of the frame behind it; 0 = not a frame


AckCallback = Callable[[core.Acked], None]


class Publisher:
    def __init__(
        self,
        url: str,
        name: str,
        *,
        max_inflight: int = 4096,
        max_inflight_bytes: int = 8 * 1024 * 1024,
        ack_timeout: float = 5.0,
        on_ack: AckCallback | None = None,
        on_error: Callable[[str], None] | None = None,
        keep_frame_times: bool = False,
    ) -> None:
        """`on_ack` is called once per read that acked messages, with what it acked
        (`keep_frame_times`: with the receive time of each raw frame acked)."""
        reply_prefix = f"_INBOX.{secrets.token_hex(11)}."
        self._wire = Wire(
            url, name, reply_prefix, on_received=self._on_received, on_lost=self._fail
        )
        self._window = core.PublishWindow(reply_prefix, keep_frame_times)
        self.max_inflight = max_inflight
        self.max_inflight_bytes = max_inflight_bytes
        self.ack_timeout = ack_timeout
        self._on_ack = on_ack
        self._on_error = on_error
        self._empty = asyncio.Event()  # nothing unacked
        self._empty.set()
        self._room = asyncio.Event()  # the window half empty and no replay running
        self._room.set()
        self._idle = asyncio.Event()  # nothing unacked and no replay running
        self._idle.set()
        self._recovering = False
        self._failed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.published = 0
        self.acked = 0
        self.duplicates = 0
        self.republished = 0
        self.reordered = 0  # stored ahead of a message published before them

    @property
    def inflight(self) -> int:
        return len(self._window)

    @property
    def recovering(self) -> bool:
        return self._recovering

    @property
    def max_payload(self) -> int:
        """The server's limit on a message's size (known once started)."""
        return self._wire.max_payload

    async def start(self) -> None:
        """Connect (raises when no server answers); reconnects on its own after that."""
        await self._wire.start()
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
        await self._wire.close()

    async def publish(self, msg: OutMsg) -> None:
        """Send `msg`; waits while the window is full or a replay is running."""
        await self.publish_many([msg])

    async def publish_many(self, msgs: core.OutBatch | Sequence[OutMsg]) -> None:
        """Send `msgs` in order, each run as much as the window holds; waits while
        it is full or a replay is running."""
        batch = msgs if isinstance(msgs, core.OutBatch) else core.OutBatch(msgs)
        i, n = 0, len(batch)
        while i < n:
            while self._recovering or not self._has_room():
                self._room.clear()
                await self._room.wait()
            j = self._run_end(batch, i)
            await self._send(batch, i, j)
            i = j

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until every message published so far is acked; False on timeout."""
        try:
            async with asyncio.timeout(timeout):
                while self._recovering or len(self._window):
                    self._idle.clear()
                    await self._idle.wait()
        except TimeoutError:
            return False
        return True

    # ---- internals ------------------------------------------------------------------

    def _has_room(self) -> bool:
        return (
            len(self._window) <= self.max_inflight // 2
            and self._window.payload_bytes <= self.max_inflight_bytes // 2
        )

    def _run_end(self, batch: core.OutBatch, i: int) -> int:
        """The end of the run from `i` that the window takes (one message at least)."""
        window = self._window
        return batch.end_within(
            i,
            max(1, self.max_inflight - len(window)),
            max(0, self.max_inflight_bytes - window.payload_bytes),
        )

    async def _send(self, batch: core.OutBatch, i: int, j: int) -> None:
        """Takes messages i..j of `batch` as unacked and writes them in one go; a
        connection that is lost takes none of them for sure (the replay sends them)."""
        data = self._window.send(batch, i, j, time.monotonic())
        self.published += j - i
        self._empty.clear()
        self._idle.clear()
        try:
            await self._wire.write(data)
        except ConnectionError as exc:
            self._fail(f"publish failed: {exc}")

    def _on_received(self, got: core.Received) -> None:
        """PubAcks (and refusals) read from the connection."""
        if not got.replies:
            return
        acked = self._window.ack(got)
        for why in acked.refused:
            self._fail(f"publish rejected: {why}")
        for msg_id, subject in acked.reordered:
            log.error(
                "publisher: message %s (%s) was stored ahead of a message published before it",
                msg_id,
                subject,
            )
        self.reordered += len(acked.reordered)
        self.acked += acked.acked
        self.duplicates += acked.duplicates
        if acked.acked and self._on_ack is not None:
            self._on_ack(acked)
        empty = not len(self._window)
        if empty:
            self._empty.set()
        if not self._recovering:
            if empty:
                self._idle.set()
            if self._has_room():
                self._room.set()

    def _fail(self, why: str) -> None:
        if not self._recovering:
            log.warning("publisher: %s; replaying %d unacked messages", why, len(self._window))
        if self._on_error is not None and not self._failed.is_set():
            self._on_error(why)
        self._recovering = True
        self._failed.set()

    async def _watch_timeouts(self) -> None:
        while True:
            await asyncio.sleep(min(0.25, self.ack_timeout / 4))
            sent = self._window.oldest_sent
            if sent is not None and time.monotonic() - sent > self.ack_timeout:
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
            pause = 0.0
            while True:
                self._failed.clear()
                await self._wire.wait_connected()
                replay = self._window.take_unacked()
                self._empty.set()
                self.republished += len(replay)
                i = 0
                while i < len(replay) and not self._failed.is_set():
                    # The first message alone: see the module's docstring.
                    j = i + 1 if i == 0 else self._run_end(replay, i)
                    await self._send(replay, i, j)
                    await self._acked_or_failed()
                    i = j
                if i < len(replay):
                    # Failed again mid-replay: keep the unsent rest, in order, behind it.
                    self._window.hold(replay, i, len(replay), time.monotonic())
                if not self._failed.is_set():
                    break
                # A server that refuses at once (no stream leader yet) is asked again
                # after a pause, not in a tight loop.
                await asyncio.sleep(pause)
                pause = min(1.0, max(0.05, 2 * pause))
            self._window.end_replay()
            self._recovering = False
            self._room.set()
            if not len(self._window):
                self._idle.set()
