"""The archiver's durable JetStream pull consumer: declared, created or checked at start.

Declared configuration: deliver policy All (an archive needs every
message from the start of the stream), ack policy explicit, filter
`{env}.{feed}.>` (checked against the stream's subjects), pull
fetches with `expires` and a heartbeat shorter than it. An existing durable with
a different deliver policy, ack policy or filter is an error, never silently used.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, ConsumerInfo, DeliverPolicy
from nats.js.errors import NotFoundError

from ssmd import core
from ssmd.bus.wire import Wire
from ssmd.exceptions import ConfigError

__all__ = ["ConsumerSettings", "Puller", "consumer_config", "ensure_consumer"]


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


_REQUEST_OVER = frozenset({404, 408, 409})  # no messages, expired, closed/changed
_ACK_TIMEOUT = 5.0


class Puller:
    """Pull requests on a connection of its own (ssmd.bus.wire).

    `fetch()` returns what has arrived, or sends one pull request (batch, expires,
    idle heartbeat) and returns once messages arrive and the burst ends, or empty when
    the request expires. Messages of a request that arrive after `fetch()` returned
    are kept for the next call. Status messages (100 heartbeat, 404, 408, 409) are not
    data: they end the wait; a heartbeat proves the connection is alive. (Flow control
    is a push consumer's; a pull consumer's requests are its flow control.)

    Deliveries stay in Rust from the socket to the router (`core.Deliveries`): no
    Python object per message. At most two requests' worth of messages (2 x `batch`)
    are held: the next request is only sent while fewer than one batch waits. A lost
    connection ends the open request; the next `fetch` makes a new one on the next
    connection, and JetStream redelivers whatever was not acked.
    """

    def __init__(self, url: str, name: str, stream: str, settings: ConsumerSettings) -> None:
        self._settings = settings
        self._api = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{settings.durable}"
        self._inbox = f"_INBOX.{secrets.token_hex(11)}"
        self._wire = Wire(
            url,
            name,
            f"_INBOX.{secrets.token_hex(11)}.",
            deliver_subject=self._inbox,
            on_received=self._on_received,
            on_lost=self._on_lost,
        )
        self._arrived = asyncio.Event()
        self._outstanding = 0.0  # loop-time deadline of the open request; 0 = none
        self._got = 0  # messages received for the open request
        self._confirm_token = 0
        self._confirming: dict[int, asyncio.Future[None]] = {}

    async def start(self) -> None:
        """Connect (raises when no server answers); reconnects on its own after that."""
        await self._wire.start()

    async def stop(self) -> None:
        await self._wire.close()

    async def wait_connected(self) -> None:
        """Until the connection is up (after a loss, the wire reconnects on its own)."""
        await self._wire.wait_connected()

    def _on_received(self, got: core.Received) -> None:
        if got.delivered:
            self._got += got.delivered
            if self._got >= self._settings.batch:
                self._outstanding = 0.0  # the request is served
        if any(code in _REQUEST_OVER for code in got.statuses):
            self._outstanding = 0.0
        for token in got.confirmations:
            waiter = self._confirming.pop(token, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        self._arrived.set()

    def _on_lost(self, why: str) -> None:
        self._outstanding = 0.0  # the request went with the connection
        for waiter in self._confirming.values():
            if not waiter.done():
                waiter.set_exception(ConnectionError(f"nats connection lost: {why}"))
        self._confirming.clear()
        self._arrived.set()

    async def ack(self, got: core.Deliveries) -> None:
        """Acks every message of `got` in one write, the last with a reply, so that its
        answer says the server has processed them all. ConnectionError or TimeoutError
        when that answer does not come (the messages are then delivered again)."""
        if not len(got):
            return
        self._confirm_token += 1
        token = self._confirm_token
        waiter = self._confirming[token] = asyncio.get_running_loop().create_future()
        try:
            await self._wire.write(self._wire.protocol.encode_acks(got, token))
            await asyncio.wait_for(waiter, _ACK_TIMEOUT)
        finally:
            self._confirming.pop(token, None)

    async def _request(self) -> None:
        s = self._settings
        request = {
            "batch": s.batch,
            "expires": int(s.expires * 1e9),
            "idle_heartbeat": int(s.heartbeat * 1e9),
        }
        self._outstanding = asyncio.get_running_loop().time() + s.expires
        self._got = 0
        body = json.dumps(request).encode()
        await self._wire.write(self._wire.protocol.encode_publish(self._api, body, self._inbox))

    async def fetch(self) -> core.Deliveries:
        s = self._settings
        loop = asyncio.get_running_loop()
        protocol = self._wire.protocol
        if not protocol.held:
            if loop.time() >= self._outstanding:
                await self._request()
            deadline = self._outstanding + s.heartbeat
            while not protocol.held:
                self._arrived.clear()
                remaining = deadline - loop.time()
                if remaining <= 0 or not self._outstanding:
                    return _NOTHING
                try:
                    await asyncio.wait_for(self._arrived.wait(), remaining)
                except TimeoutError:
                    self._outstanding = 0.0
                    return _NOTHING
            # let the rest of the burst arrive: until the batch is full, the request is
            # over, or nothing came for a few milliseconds
            size = -1
            while self._outstanding and size != protocol.held and protocol.held < s.batch:
                size = protocol.held
                await asyncio.sleep(0.005)
        out = protocol.take_deliveries(s.batch)
        if not self._outstanding and protocol.held < s.batch:
            # The next batch comes in while the caller writes this one: at most two
            # batches are held here.
            await self._request()
        return out


_NOTHING = core.Deliveries([])
