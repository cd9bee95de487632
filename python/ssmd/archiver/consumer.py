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
from dataclasses import dataclass

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, ConsumerInfo, DeliverPolicy
from nats.js.errors import NotFoundError

from ssmd.exceptions import ConfigError

__all__ = [
    "ConsumerSettings",
    "Delivery",
    "Puller",
    "ack_meta",
    "consumer_config",
    "ensure_consumer",
]


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


# A delivered message: (subject, reply, stream seq, stored ns, headers, payload, status).
Delivery = tuple[str, str, int, int, dict[str, str] | None, bytes, int]

_STATUS = "Status"
_REQUEST_OVER = frozenset({"404", "408", "409"})  # no messages, expired, closed/changed


def ack_meta(reply: str) -> tuple[int, int]:
    """(stream sequence, stored ns) from a JetStream ack subject:
    `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ns>.<pending>`, or the form
    with a domain and account hash after `$JS.ACK` (and a random token at the end)."""
    t = reply.split(".")
    if len(t) == 9:
        return int(t[5]), int(t[7])
    return int(t[7]), int(t[9])


class Puller:
    """Pull requests on one persistent inbox subscription.

    `fetch()` returns what the inbox holds, or sends one pull request (batch, expires,
    idle heartbeat) and returns once messages arrive and the burst ends, or empty when
    the request expires. Messages of a request that arrive after `fetch()` returned
    are kept for the next call. Status messages (100 heartbeat, 404, 408, 409) are not
    data: they end the wait; a heartbeat proves the connection is alive.

    The inbox's callback only turns each message into a Delivery tuple and appends it;
    the archiver takes them a batch at a time. At most two requests' worth of messages
    (2 x `batch`) are held: the next request is only sent while fewer than one batch
    waits.
    """

    def __init__(self, nc: NatsClient, stream: str, settings: ConsumerSettings) -> None:
        self._nc = nc
        self._settings = settings
        self._api = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{settings.durable}"
        self._inbox = nc.new_inbox()
        self._buffer: list[Delivery] = []
        self._arrived = asyncio.Event()
        self._sub: Subscription | None = None
        self._outstanding = 0.0  # loop-time deadline of the open request; 0 = none
        self._got = 0  # messages received for the open request

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(self._inbox, cb=self._on_msg)

    async def stop(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None

    async def _on_msg(self, msg: Msg) -> None:
        reply, headers = msg.reply, msg.headers
        if reply:
            seq, ns = ack_meta(reply)
            self._buffer.append((msg.subject, reply, seq, ns, headers, msg.data, 0))
            self._got += 1
            if self._got >= self._settings.batch:
                self._outstanding = 0.0  # the request is served
        elif headers and headers.get(_STATUS) in _REQUEST_OVER:
            self._outstanding = 0.0
        self._arrived.set()

    async def ack(self, got: list[Delivery]) -> None:
        """Acks every message of `got`: all but the last handed to the client in one go
        (one flush), the last as a request, so that its reply says the server has
        processed them all."""
        if not got:
            return
        *head, last = got
        publish = self._nc.publish
        for d in head:
            await publish(d[1], b"+ACK")
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
