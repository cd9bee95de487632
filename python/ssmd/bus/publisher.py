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

Cost per message is kept low because the connector publishes every frame twice (raw
and normalized): `publish_many` encodes a whole batch of HPUB commands into one buffer
(ssmd.core.encode_publishes, in Rust) handed to the client's writer at once (one flush
per batch), and PubAcks are taken straight off the wire ahead of the client's protocol
parser for our inbox subscription (ssmd.core.parse_acks: no Msg object, no
per-message task or queue).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.protocol.parser import AWAITING_CONTROL_LINE as _AWAITING_CONTROL_LINE

from ssmd import core

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
    # Further header lines already encoded ("Key: value\r\n" ...), sent after `headers`;
    # for the hot path (raw frames), where building a dict per message costs too much.
    header_lines: bytes = b""


async def _no_parser(data: bytes) -> None:
    raise RuntimeError("publisher not started")


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
        self._pending: dict[int, tuple[OutMsg, float]] = {}  # token -> (msg, sent monotonic)
        self._next_token = 0  # reply token of the next message sent
        self._prefix = ""
        self._prefix_b = b""
        self._prefix_len = 0
        self._sid = -1
        self._dispatch = nc._process_msg
        self._rest = b""  # a split ack kept for the next read
        self._taking_acks = False  # _parse takes our acks off the wire
        self._ack_head = b""
        self._parse_orig: Callable[[bytes], Awaitable[None]] = _no_parser
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
        self._prefix_b = self._prefix.encode()
        self._prefix_len = len(self._prefix_b)
        sub = await self._nc.subscribe(self._prefix + "*", cb=self._unexpected)
        self._sid = sub._id
        self._ack_head = b"MSG " + self._prefix_b
        self._taking_acks = True
        self._dispatch = self._nc._process_msg
        self._nc._process_msg = self._process_msg  # type: ignore[method-assign]
        self._install_parser()
        self._tasks = [
            asyncio.create_task(self._watch_timeouts(), name="publisher-timeouts"),
            asyncio.create_task(self._recover_loop(), name="publisher-recovery"),
        ]

    def _install_parser(self) -> None:
        ps = self._nc._ps
        if ps is not None and ps.parse != self._parse:
            self._parse_orig = ps.parse
            ps.parse = self._parse  # type: ignore[method-assign]

    async def _parse(self, data: bytes = b"") -> None:
        """Takes `MSG <our inbox>.<token> <sid> <n>` acks off each read directly, keeping
        a split one for the next read; anything else (and all that follows it in this
        read) goes to the client's own parser."""
        ps = self._nc._ps
        if self._rest:
            data, self._rest = self._rest + data, b""
        if not self._taking_acks or ps.state != _AWAITING_CONTROL_LINE or ps.buf:
            await self._parse_orig(data)
            return
        acks, pos = core.parse_acks(data, self._prefix_b, self._sid)
        n = len(data)
        if pos < n:
            rest = data[pos:]
            head = self._ack_head
            if rest[: len(head)] == head[: len(rest)] and rest.count(b"\r\n") < 2:
                self._rest = rest  # an ack split across reads
                pos = n
        pending, on_ack = self._pending, self._on_ack
        acked = 0
        for token, seq, dup, refused in acks:
            if refused is not None:
                self._ack(token, refused, None)
                continue
            entry = pending.pop(token, None)
            if entry is None:
                continue  # a late ack of a message already replayed
            acked += 1
            if dup:
                self.duplicates += 1
            if on_ack is not None:
                on_ack(entry[0], seq, dup)
        if acked:
            self.acked += acked
            if not pending:
                self._idle.set()
            if not self._recovering and len(pending) < self.max_inflight:
                self._room.set()
        if pos < n:
            await self._parse_orig(data[pos:] if pos else data)

    async def _unexpected(self, m: Msg) -> None:
        """Never called: the acks are taken before the client's dispatch."""

    async def close(self) -> None:
        if self._sid >= 0:
            self._nc._process_msg = self._dispatch  # type: ignore[method-assign]
            ps = self._nc._ps
            if ps is not None and ps.parse == self._parse:
                ps.parse = self._parse_orig  # type: ignore[method-assign,assignment]
            self._sid = -1
            self._taking_acks = False
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
        self._rest = b""  # the client's parser starts afresh on the new connection

    async def publish(self, msg: OutMsg) -> None:
        """Send `msg`; waits while the window is full or a replay is running."""
        await self.publish_many([msg])

    async def publish_many(self, msgs: list[OutMsg]) -> None:
        """Send `msgs` in order, as many per write as the window allows; waits while the
        window is full or a replay is running."""
        i, n = 0, len(msgs)
        while i < n:
            while self._recovering or len(self._pending) >= self.max_inflight:
                self._room.clear()
                await self._room.wait()
            j = min(n, i + self.max_inflight - len(self._pending))
            await self._send_many(msgs[i:j])
            i = j

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until every message published so far is acked; False on timeout."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    # ---- internals ------------------------------------------------------------------

    async def _send_many(self, msgs: list[OutMsg]) -> None:
        now = time.monotonic()
        pending = self._pending
        first = token = self._next_token
        for msg in msgs:
            pending[token] = (msg, now)
            token += 1
        self._next_token = token
        data = core.encode_publishes(msgs, self._prefix_b, first)
        self._idle.clear()
        self.published += len(msgs)
        nc = self._nc
        self._install_parser()
        if not nc.is_connected or nc.is_draining_pubs:
            self._fail("publish failed: not connected")
            return
        try:
            await nc._send_command(data)
            if nc._flush_queue is not None and nc._flush_queue.empty():
                await nc._flush_pending()
        except Exception as exc:  # not connected, buffer full, closed: replay later
            self._fail(f"publish failed: {exc!r}")

    async def _process_msg(
        self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes
    ) -> None:
        """Replaces the client's message dispatch: our inbox's acks are handled here."""
        if sid != self._sid:
            await self._dispatch(sid, subject, reply, data, headers)
            return
        try:
            token = int(subject[self._prefix_len :])
        except ValueError:
            return
        self._ack(token, data, headers)

    def _ack(self, token: int, data: bytes, headers: bytes | None) -> None:
        entry = self._pending.get(token)
        if entry is None:
            return  # a late ack of a message already replayed
        if headers and b" 503" in headers.split(b"\r\n", 1)[0]:
            self._fail("publish rejected: no responders (no stream for the subject)")
            return
        try:
            resp = orjson.loads(data)
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
                step = 1024
                for i in range(0, len(replay), step):
                    if self._failed.is_set():
                        # Failed again mid-replay: keep the unsent rest, in order, behind it.
                        now = time.monotonic()
                        for rest in replay[i:]:
                            self._pending[self._next_token] = (rest, now)
                            self._next_token += 1
                        break
                    await self._send_many(replay[i : i + step])
                if self._pending and not self._failed.is_set():
                    await self._idle_or_failed()
                if not self._failed.is_set():
                    break
            self._recovering = False
            self._room.set()
