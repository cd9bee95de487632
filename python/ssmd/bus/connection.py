"""Connecting to NATS: one helper so every component reconnects the same way, forever.

While the server is unreachable the client tries again every 0.25 s. That is said
once (the disconnect), then summed up every `summary_every` seconds ("still
unreachable for 60 s, 240 attempts"), and once more when it is back; the attempts
themselves are debug lines.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar
from urllib.parse import urlsplit

import nats
import nats.errors
from nats.aio.client import Client as NatsClient

from ssmd.bus.auth import CA_ENV, credentials, parse_servers, tls_context

__all__ = ["RECONNECT_WAIT", "NatsClient", "Outage", "connect", "server_addresses"]

log = logging.getLogger(__name__)

RECONNECT_WAIT = 0.25  # seconds between reconnect attempts


def server_addresses(url: str) -> str:
    """host:port of each server, for logs: a URL's user part may be a token or password."""
    out = []
    for u in url.split(","):
        if u:
            parts = urlsplit(u if "://" in u else f"nats://{u}")
            out.append(f"{parts.hostname}:{parts.port or 4222}")
    return ",".join(out)


class Outage:
    """What is said about one spell of unreachable servers.

    One per server list and process (`Outage.of`): a component holds more than one
    connection (nats-py's, the publisher's or the puller's own), and an outage is said
    once for all of them: when the first is lost, and when the last is back.
    """

    _shared: ClassVar[dict[str, Outage]] = {}

    @classmethod
    def of(cls, url: str, summary_every: float) -> Outage:
        key = server_addresses(url)
        outage = cls._shared.get(key)
        if outage is None:
            outage = cls._shared[key] = cls(url, summary_every)
        return outage

    def __init__(self, url: str, summary_every: float) -> None:
        self.url, self.summary_every = server_addresses(url), summary_every
        self.since = 0.0  # monotonic; 0 = connected
        self.attempts = 0
        self.summed_at = 0.0
        self._down: set[object] = set()  # the connections lost and not back

    def begin(self, who: object) -> None:
        """Connection `who` is lost."""
        if who in self._down:
            return
        if not self._down:
            self.since = self.summed_at = time.monotonic()
            self.attempts = 0
            log.warning(
                "nats disconnected from %s; reconnecting every %g s", self.url, RECONNECT_WAIT
            )
        self._down.add(who)

    def attempt_failed(self, exc: Exception) -> None:
        self.attempts += 1
        log.debug("nats reconnect attempt %d failed: %s", self.attempts, exc)
        now = time.monotonic()
        if now - self.summed_at >= self.summary_every:
            self.summed_at = now
            log.warning(
                "NATS at %s still unreachable for %.0f s, %d attempts (last: %s)",
                self.url,
                now - self.since,
                self.attempts,
                exc,
            )

    def end(self, who: object) -> None:
        """Connection `who` is back."""
        if who not in self._down:
            return
        self._down.discard(who)
        if not self._down:
            log.warning(
                "nats reconnected to %s after %.1f s down (%d failed attempts)",
                self.url,
                time.monotonic() - self.since,
                self.attempts,
            )
            self.since = 0.0

    def leave(self, who: object) -> None:
        """Connection `who` is closed: it no longer counts, down or not."""
        self._down.discard(who)
        if not self._down:
            self.since = 0.0


async def connect(
    url: str,
    name: str,
    *,
    on_state: Callable[[str], Awaitable[None] | None] | None = None,
    connect_timeout: float = 5.0,
    pending_bytes: int = 64 * 1024 * 1024,
    summary_every: float = 60.0,
) -> NatsClient:
    """Connect to `url` (comma-separated for a cluster); reconnects forever after that.
    Credentials and TLS as ssmd.bus.auth describes them.

    This client is for administration, subscriptions and pulls; the hot path publishes
    through ssmd.bus.publisher on a connection of its own. `pending_bytes` bounds what
    the client buffers while disconnected (a publish beyond it fails). While the server
    is unreachable, a summary is logged every `summary_every` seconds.
    """

    async def _notify(state: str) -> None:
        if on_state is not None:
            result = on_state(state)
            if result is not None:
                await result

    made: list[NatsClient] = []
    outage = Outage.of(url, summary_every)
    me = object()  # this connection, to the outage

    async def disconnected() -> None:
        # close() reports a disconnect too; only an unplanned one is worth a warning.
        if made and made[0].is_closed:
            log.info("nats disconnected")
            outage.leave(me)
        else:
            outage.begin(me)
        await _notify("disconnected")

    async def reconnected() -> None:
        outage.end(me)
        await _notify("reconnected")

    async def closed() -> None:
        outage.leave(me)

    async def error(exc: Exception) -> None:
        if outage.since:
            outage.attempt_failed(exc)
        elif isinstance(exc, nats.errors.UnexpectedEOF):
            log.debug("nats connection lost: %s", exc)  # the disconnect that follows says it
        else:
            log.warning("nats error: %s", exc)

    security: dict[str, Any] = {}
    creds = credentials()
    if creds is not None:
        security["user_jwt_cb"] = lambda: creds.jwt.encode()
        security["signature_cb"] = lambda nonce: creds.sign(nonce).encode()
    if os.environ.get(CA_ENV) or any(s.tls for s in parse_servers(url)):
        security["tls"] = tls_context()
    nc = await nats.connect(
        servers=[u for u in url.split(",") if u],
        **security,
        name=name,
        connect_timeout=connect_timeout,
        allow_reconnect=True,
        max_reconnect_attempts=-1,
        reconnect_time_wait=RECONNECT_WAIT,
        pending_size=pending_bytes,
        disconnected_cb=disconnected,
        reconnected_cb=reconnected,
        closed_cb=closed,
        error_cb=error,
    )
    made.append(nc)
    return nc
