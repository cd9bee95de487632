"""The archiver's durable JetStream pull consumer: declared, created or checked at start.

Declared configuration: deliver policy All (an archive needs every
message from the start of the stream), ack policy explicit, filter
`{env}.{feed}.>` (checked against the stream's subjects), pull
fetches with `expires` and a heartbeat shorter than it. An existing durable with
a different deliver policy, ack policy or filter is an error, never silently used.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, ConsumerInfo, DeliverPolicy
from nats.js.errors import NotFoundError
from nats.protocol.parser import AWAITING_CONTROL_LINE as _AWAITING_CONTROL_LINE

from ssmd import core
from ssmd.exceptions import ConfigError

__all__ = ["ConsumerSettings", "Delivery", "Puller", "consumer_config", "ensure_consumer"]


@dataclass(frozen=True)
class ConsumerSettings:
    durable: str = "archiver"
    batch: int = 5000
    expires: float = 1.0  # seconds a fetch waits for messages
    heartbeat: float = 0.25  # must be shorter than expires
    ack_wait: float = 30.0
    max_ack_pending: int = 50_000

    def __post_init__(self) -> None:
        if not 0 < self.heartbeat < self.expires:
            raise ConfigError(
                f"archiver fetch heartbeat {self.heartbeat}s must be > 0 and shorter than "
                f"expires {self.expires}s. Fix: lower the heartbeat"
            )
        if self.batch > self.max_ack_pending:
            raise ConfigError("archiver batch must not exceed max_ack_pending")


def consumer_config(settings: ConsumerSettings, filter_subject: str) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=settings.durable,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        filter_subject=filter_subject,
        ack_wait=settings.ack_wait,
        max_ack_pending=settings.max_ack_pending,
        max_deliver=-1,
    )


async def ensure_consumer(
    js: JetStreamContext, stream: str, settings: ConsumerSettings, filter_subject: str
) -> ConsumerInfo:
    """Create the durable consumer, or check that the existing one is the one declared."""
    wanted = consumer_config(settings, filter_subject)
    try:
        info: ConsumerInfo = await js.consumer_info(stream, settings.durable)
    except NotFoundError:
        created: ConsumerInfo = await js.add_consumer(stream, wanted)
        return created
    have = info.config
    problems = []
    if have.deliver_policy != DeliverPolicy.ALL:
        problems.append(f"deliver_policy {have.deliver_policy} (want all)")
    if have.ack_policy != AckPolicy.EXPLICIT:
        problems.append(f"ack_policy {have.ack_policy} (want explicit)")
    if (have.filter_subject or "") != filter_subject:
        problems.append(f"filter_subject {have.filter_subject!r} (want {filter_subject!r})")
    if problems:
        raise ConfigError(
            f"durable consumer {settings.durable} on stream {stream} has {', '.join(problems)}. "
            f"Fix: delete it (`nats consumer rm {stream} {settings.durable}`) or use another "
            "--durable name"
        )
    return info


_MAX_CONTROL_LINE = 4096  # nats-server's default max_control_line

# A delivered message: (subject, reply, stream seq, stored ns, headers, payload, status).
Delivery = tuple[str, str, int, int, dict[str, str] | None, bytes, int]


class Puller:
    """Pull requests on one persistent inbox, with deliveries taken off the wire.

    `fetch()` returns what the inbox holds, or sends one pull request (batch, expires,
    idle heartbeat) and returns once messages arrive and the burst ends, or empty when
    the request expires. Messages of a request that arrive after `fetch()` returned
    are kept for the next call. Status messages (100 heartbeat, 404, 408, 409) are not
    data: they end the wait; a heartbeat proves the connection is alive.

    Most of what a message costs in nats-py is its parser building a Msg and calling
    back per message, so this puller reads the socket's bytes first
    (ssmd.core.parse_deliveries): its own messages become Delivery tuples, every
    other complete command goes to the client's parser whole, and an incomplete tail is
    kept for the next read, so the client's parser never holds half a command and our
    messages always arrive in order on one path.
    """

    def __init__(self, nc: Any, stream: str, settings: ConsumerSettings) -> None:
        self._nc = nc
        self._settings = settings
        self._api = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{settings.durable}"
        self._inbox = nc.new_inbox()
        self._buffer: list[Delivery] = []
        self._arrived = asyncio.Event()
        self._sub: Any = None
        self._sid = -1
        self._rest = b""  # an incomplete command kept for the next read
        self._parser: Any = None
        self._parse_orig: Callable[[bytes], Awaitable[None]] | None = None
        self._outstanding = 0.0  # loop-time deadline of the open request; 0 = none
        self._got = 0  # messages received for the open request

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(self._inbox, cb=self._on_msg)
        self._sid = self._sub._id
        self._install()

    async def stop(self) -> None:
        self._uninstall()
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()

    def _install(self) -> None:
        ps = self._nc._ps
        if ps is None or ps.parse == self._parse:
            return
        self._uninstall()
        self._parser, self._parse_orig = ps, ps.parse
        reset_orig = ps.reset

        def reset() -> None:
            self._rest = b""  # a reconnect starts a new byte stream
            reset_orig()

        ps.parse, ps.reset = self._parse, reset

    def _uninstall(self) -> None:
        ps = self._parser
        if ps is not None and self._parse_orig is not None:
            ps.parse = self._parse_orig
            with contextlib.suppress(AttributeError):
                del ps.reset  # back to the class's method
        self._parser = self._parse_orig = None

    async def _parse(self, data: bytes = b"") -> None:
        orig, ps = self._parse_orig, self._parser
        assert orig is not None and ps is not None
        if self._rest:
            data, self._rest = self._rest + data, b""
        if ps.state != _AWAITING_CONTROL_LINE or ps.buf:
            await orig(data)  # the client's parser is inside a command it started
            return
        pos, n = 0, len(data)
        while pos < n:
            got, pos = core.parse_deliveries(data, self._sid, pos)
            if got:
                self._take(got)
            if pos >= n:
                break
            try:
                if data.startswith((b"MSG ", b"HMSG "), pos):
                    end = core.message_end(data, pos)
                else:
                    line = data.find(b"\r\n", pos)
                    end = line + 2 if line >= 0 else None
                    if end is None and n - pos > _MAX_CONTROL_LINE:
                        raise ValueError("no end of line")
            except ValueError:
                # Not the protocol: the client's parser raises its protocol error and
                # reconnects; unacked messages are redelivered.
                await orig(data[pos:])
                return
            if end is None:
                self._rest = data[pos:]
                break
            await orig(data[pos:end])
            pos = end

    def _take(self, got: list[Delivery]) -> None:
        batch = self._settings.batch
        for d in got:
            status = d[6]
            if status == 0 and d[1]:
                self._buffer.append(d)
                self._got += 1
                if self._got >= batch:
                    self._outstanding = 0.0  # the request is served
            elif status in (404, 408, 409):
                self._outstanding = 0.0  # the request is over
        self._arrived.set()

    async def _on_msg(self, msg: Msg) -> None:
        """Messages the client's parser delivered (only before the first read is taken)."""
        meta = msg.metadata if msg.reply else None
        status = (msg.headers or {}).get("Status")
        self._take(
            [
                (
                    msg.subject,
                    msg.reply,
                    meta.sequence.stream if meta else 0,
                    int(meta.timestamp.timestamp() * 1e9) if meta else 0,
                    msg.headers,
                    msg.data,
                    int(status) if status and status.isdigit() else 0,
                )
            ]
        )

    async def ack(self, got: list[Delivery]) -> None:
        """Acks every message of `got`: all but the last in one write, the last as a
        request, so that its reply says the server has processed them all."""
        if not got:
            return
        *head, last = got
        if head:
            await self._nc._send_command(core.encode_acks(head))
        await self._nc.request(last[1], b"+ACK", timeout=5.0)

    async def _request(self) -> None:
        s = self._settings
        request = {
            "batch": s.batch,
            "expires": int(s.expires * 1e9),
            "idle_heartbeat": int(s.heartbeat * 1e9),
        }
        self._outstanding = asyncio.get_running_loop().time() + s.expires
        self._got = 0
        await self._nc.publish(self._api, json.dumps(request).encode(), reply=self._inbox)

    async def fetch(self) -> list[Delivery]:
        s = self._settings
        loop = asyncio.get_running_loop()
        self._install()
        if not self._buffer:
            if loop.time() >= self._outstanding:
                await self._request()
            deadline = self._outstanding + s.heartbeat
            while not self._buffer:
                self._arrived.clear()
                remaining = deadline - loop.time()
                if remaining <= 0 or not self._outstanding:
                    return []
                try:
                    await asyncio.wait_for(self._arrived.wait(), remaining)
                except TimeoutError:
                    self._outstanding = 0.0
                    return []
            # let the rest of the burst arrive: until the batch is full, the request is
            # over, or nothing came for a few milliseconds
            size = -1
            while self._outstanding and size != len(self._buffer) and len(self._buffer) < s.batch:
                size = len(self._buffer)
                await asyncio.sleep(0.005)
        out, self._buffer = self._buffer[: s.batch], self._buffer[s.batch :]
        if not self._outstanding and len(self._buffer) < s.batch:
            # The next batch comes in while the caller writes this one: at most two
            # batches are held here.
            await self._request()
        return out
