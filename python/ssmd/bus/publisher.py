"""JetStream publishing with PubAcks, message ids and a bounded window of unacked messages.

`Publisher.publish(msg)` sends at once and returns; the PubAck arrives later on a
private inbox. At most `max_inflight` messages are unacked at a time: `publish` waits
for room (policy: block; the caller's own bounded queue decides what happens upstream).

Nothing is dropped. When NATS goes away (disconnect callback), an ack times out, or the
server answers an error, the publisher stops taking new messages, waits for the
connection, and republishes every unacked message *in the original order* with the same
`Nats-Msg-Id`; JetStream's duplicate window turns the ones it already stored into
no-ops. Only then does it take new messages again, so the stream keeps the order in
which frames were received. The client's own reconnect buffer is cleared on disconnect
so that nothing older can overtake the ordered replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

__all__ = ["OutMsg", "Publisher"]

log = logging.getLogger(__name__)

MSG_ID = "Nats-Msg-Id"


@dataclass(slots=True)
class OutMsg:
    subject: str
    payload: bytes
    msg_id: str
    headers: dict[str, str] | None = None
    receive_ns: int = 0  # local receive time of the frame behind it; 0 = not a frame


AckCallback = Callable[[OutMsg, int, bool], None]  # (message, stream seq, duplicate)


class Publisher:
    def __init__(
        self,
        nc: NatsClient,
        *,
        max_inflight: int = 4096,
        ack_timeout: float = 5.0,
        on_ack: AckCallback | None = None,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self._nc = nc
        self.max_inflight = max_inflight
        self.ack_timeout = ack_timeout
        self._on_ack = on_ack
        self._on_error = on_error
        self._pending: dict[str, tuple[OutMsg, float]] = {}  # token -> (msg, sent monotonic)
        self._tokens = itertools.count()
        self._prefix = ""
        self._room = asyncio.Event()
        self._room.set()
        self._idle = asyncio.Event()
        self._idle.set()
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
        await self._nc.subscribe(
            self._prefix + "*", cb=self._handle_ack, pending_msgs_limit=1_000_000
        )
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

    def connection_lost(self) -> None:
        """Call from the NATS disconnected callback: hold new messages, replay in order."""
        self._fail("nats disconnected")
        # Whatever the client buffered for the reconnect is also in _pending and will be
        # replayed in order; flushing it first could reorder the stream.
        self._nc._pending.clear()
        self._nc._pending_data_size = 0

    async def publish(self, msg: OutMsg) -> None:
        """Send `msg`; waits while the window is full or a replay is running."""
        while self._recovering or len(self._pending) >= self.max_inflight:
            self._room.clear()
            await self._room.wait()
        await self._send(msg)

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until every message published so far is acked; False on timeout."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    # ---- internals ------------------------------------------------------------------

    async def _send(self, msg: OutMsg) -> None:
        token = str(next(self._tokens))
        headers = {MSG_ID: msg.msg_id}
        if msg.headers:
            headers.update(msg.headers)
        self._pending[token] = (msg, time.monotonic())
        self._idle.clear()
        self.published += 1
        try:
            await self._nc.publish(
                msg.subject, msg.payload, reply=self._prefix + token, headers=headers
            )
        except Exception as exc:  # not connected, buffer full, closed: replay later
            self._fail(f"publish failed: {exc!r}")

    async def _handle_ack(self, m: Msg) -> None:
        token = m.subject[len(self._prefix) :]
        entry = self._pending.get(token)
        if entry is None:
            return  # a late ack of a message already replayed
        try:
            resp = orjson.loads(m.data)
        except orjson.JSONDecodeError:
            resp = {"error": {"description": "unreadable puback"}}
        if m.headers and m.headers.get("Status") == "503":
            resp = {"error": {"description": "no responders (no stream for the subject)"}}
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
            self._idle.set()
        if not self._recovering and len(self._pending) < self.max_inflight:
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

    async def _idle_or_failed(self) -> None:
        waiters = [asyncio.ensure_future(e.wait()) for e in (self._idle, self._failed)]
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
                self.republished += len(replay)
                for i, msg in enumerate(replay):
                    if self._failed.is_set():
                        # Failed again mid-replay: keep the unsent rest, in order, behind it.
                        now = time.monotonic()
                        for rest in replay[i:]:
                            self._pending[str(next(self._tokens))] = (rest, now)
                        break
                    await self._send(msg)
                if self._pending and not self._failed.is_set():
                    await self._idle_or_failed()
                if not self._failed.is_set():
                    break
            self._recovering = False
            self._room.set()
