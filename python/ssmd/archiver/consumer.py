"""The archiver's durable JetStream pull consumer: declared, created or checked at start.

Declared configuration (pitfalls 2.9): deliver policy All (an archive needs every
message from the start of the stream), ack policy explicit, filter
`{env}.{feed}.>` (checked against the stream's subjects, pitfalls 2.10), pull
fetches with `expires` and a heartbeat shorter than it. An existing durable with
a different deliver policy, ack policy or filter is an error, never silently used.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, ConsumerInfo, DeliverPolicy
from nats.js.errors import NotFoundError

from ssmd.exceptions import ConfigError

__all__ = ["ConsumerSettings", "Puller", "consumer_config", "ensure_consumer"]


@dataclass(frozen=True)
class ConsumerSettings:
    durable: str = "archiver"
    batch: int = 2000
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


class Puller:
    """Pull requests on one persistent inbox: cheaper per message than nats-py's fetch.

    `fetch()` returns what the inbox holds, or sends one pull request (batch, expires,
    idle heartbeat) and returns once messages arrive and the burst ends, or empty when
    the request expires. Messages of a request that arrive after `fetch()` returned
    are kept for the next call. Status messages (100 heartbeat, 404, 408, 409) are not
    data: they end the wait; a heartbeat proves the connection is alive.
    """

    def __init__(self, nc: Any, stream: str, settings: ConsumerSettings) -> None:
        self._nc = nc
        self._settings = settings
        self._api = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{settings.durable}"
        self._inbox = nc.new_inbox()
        self._buffer: list[Msg] = []
        self._arrived = asyncio.Event()
        self._sub: Any = None
        self._outstanding = 0.0  # loop-time deadline of the open request; 0 = none
        self._got = 0  # messages received for the open request

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(self._inbox, cb=self._on_msg)

    async def stop(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()

    async def _on_msg(self, msg: Msg) -> None:
        status = msg.headers.get("Status") if msg.headers else None
        if status is None and msg.reply:
            self._buffer.append(msg)
            self._got += 1
            if self._got >= self._settings.batch:
                self._outstanding = 0.0  # the request is served
        elif status in ("404", "408", "409"):
            self._outstanding = 0.0  # the request is over
        self._arrived.set()

    async def fetch(self) -> list[Msg]:
        s = self._settings
        loop = asyncio.get_running_loop()
        if not self._buffer:
            if loop.time() >= self._outstanding:
                request = {
                    "batch": s.batch,
                    "expires": int(s.expires * 1e9),
                    "idle_heartbeat": int(s.heartbeat * 1e9),
                }
                self._outstanding = loop.time() + s.expires
                self._got = 0
                await self._nc.publish(self._api, json.dumps(request).encode(), reply=self._inbox)
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
        return out
