"""Connecting to NATS: one helper so every component reconnects the same way, forever."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import nats
from nats.aio.client import Client as NatsClient

__all__ = ["NatsClient", "connect"]

log = logging.getLogger(__name__)


async def connect(
    url: str,
    name: str,
    *,
    on_state: Callable[[str], Awaitable[None] | None] | None = None,
    connect_timeout: float = 5.0,
    pending_bytes: int = 64 * 1024 * 1024,
) -> NatsClient:
    """Connect to `url` (comma-separated for a cluster); reconnects forever after that.

    `pending_bytes` bounds what the client buffers while disconnected (publishes beyond
    it fail and are retried by the publisher, never dropped silently).
    """

    async def _notify(state: str) -> None:
        if on_state is not None:
            result = on_state(state)
            if result is not None:
                await result

    made: list[NatsClient] = []

    async def disconnected() -> None:
        # close() reports a disconnect too; only an unplanned one is worth a warning.
        closing = bool(made) and made[0].is_closed
        log.log(logging.INFO if closing else logging.WARNING, "nats disconnected")
        await _notify("disconnected")

    async def reconnected() -> None:
        log.info("nats reconnected")
        await _notify("reconnected")

    async def error(exc: Exception) -> None:
        log.warning("nats error: %s", exc)

    nc = await nats.connect(
        servers=[u for u in url.split(",") if u],
        name=name,
        connect_timeout=connect_timeout,
        allow_reconnect=True,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.25,
        pending_size=pending_bytes,
        disconnected_cb=disconnected,
        reconnected_cb=reconnected,
        error_cb=error,
    )
    made.append(nc)
    return nc
