"""Stream provisioning and the start-up check that a stream covers what a component uses.

A component calls `ensure_stream` (producers: create it when missing) or `check_stream`
(consumers: never create) with the subject patterns it publishes or reads; either
raises ConfigError naming the stream, its subjects and the missing pattern, so a
mismatch fails loudly at start instead of losing messages silently.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig, StreamInfo
from nats.js.errors import NotFoundError

from ssmd.bus.subjects import covers, published
from ssmd.config import NatsSettings
from ssmd.exceptions import ConfigError

__all__ = ["check_stream", "ensure_stream", "provision", "required_subjects"]

log = logging.getLogger(__name__)


def required_subjects(subject_prefix: str) -> list[str]:
    """What the connector publishes under `{env}.{feed}`."""
    return published(subject_prefix)


def _check(info: StreamInfo, required: list[str]) -> None:
    have = list(info.config.subjects or [])
    missing = [p for p in required if not covers(have, p)]
    if missing:
        raise ConfigError(
            f"stream {info.config.name} has subjects {have} which do not cover {missing}; "
            f"expected them to include what this component uses. Fix: add the subjects to "
            f"the stream (or point the environment at the right stream)"
        )


async def check_stream(js: JetStreamContext, stream: str, required: list[str]) -> StreamInfo:
    """The stream's info; ConfigError when it is missing or does not cover `required`."""
    try:
        info = await js.stream_info(stream)
    except NotFoundError:
        raise ConfigError(
            f"stream {stream} does not exist; expected it to hold {required}. "
            "Fix: start the connector first (it creates the stream) or create it"
        ) from None
    _check(info, required)
    return info


async def ensure_stream(
    js: JetStreamContext, settings: NatsSettings, required: list[str] | None = None
) -> StreamInfo:
    """Create the environment's stream when missing, then check that it covers `required`."""
    return await provision(
        js,
        settings.stream,
        [settings.subjects],
        retention=settings.retention,
        duplicate_window=settings.duplicate_window,
        replicas=settings.replicas,
        required=required if required is not None else required_subjects(settings.subject_prefix),
    )


async def provision(
    js: JetStreamContext,
    name: str,
    subjects: list[str],
    *,
    retention: timedelta,
    duplicate_window: timedelta,
    replicas: int,
    required: list[str],
) -> StreamInfo:
    """Every stream ssmd creates (the environment's data, the journal): created when
    missing, on file, the oldest messages dropped past `retention`; then checked to cover
    `required` (ConfigError naming the fix). An existing stream is not changed."""
    try:
        info = await js.stream_info(name)
    except NotFoundError:
        config = StreamConfig(
            name=name,
            subjects=subjects,
            storage=StorageType.FILE,
            retention=RetentionPolicy.LIMITS,
            discard=DiscardPolicy.OLD,
            max_age=retention.total_seconds(),
            duplicate_window=duplicate_window.total_seconds(),
            num_replicas=replicas,
        )
        info = await js.add_stream(config)
        log.info("created stream %s for %s", name, subjects)
    _check(info, required)
    return info
