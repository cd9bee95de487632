"""The archiver's durable JetStream pull consumer: declared, created or checked at start.

Declared configuration: deliver policy All (an archive needs every
message from the start of the stream), ack policy explicit, filter
`{env}.{feed}.>` (checked against the stream's subjects), pull
fetches with `expires` and a heartbeat shorter than it. An existing durable with
a different deliver policy, ack policy or filter is an error, never silently used.
"""

from __future__ import annotations

from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, ConsumerInfo, DeliverPolicy
from nats.js.errors import NotFoundError

from ssmd.bus.puller import Puller
from ssmd.exceptions import ConfigError

__all__ = ["ConsumerSettings", "consumer_config", "ensure_consumer", "puller"]


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


def puller(url: str, name: str, stream: str, settings: ConsumerSettings) -> Puller:
    """The archiver's pulls from its durable consumer, on a connection of their own."""
    return Puller(
        url,
        name,
        stream,
        settings.durable,
        batch=settings.batch,
        expires=settings.expires,
        heartbeat=settings.heartbeat,
    )
