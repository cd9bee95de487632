"""Pull requests to a JetStream consumer, on a connection of their own (ssmd.bus.wire).

The hot read paths use it: the archiver's durable consumer (acked) and the gateway's
live consumer (no acks). Deliveries stay in Rust from the socket to their user
(`core.Deliveries`): no Python object per message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets

from ssmd import core
from ssmd.bus.wire import Wire

__all__ = ["Puller"]

log = logging.getLogger(__name__)

# No messages, expired, closed or changed, no consumer to answer.
_REQUEST_OVER = frozenset({404, 408, 409, 503})
# Deleted, moved to another server, or not there: its deliveries stop here.
_CONSUMER_GONE = frozenset({409, 503})
_ACK_TIMEOUT = 5.0


class Puller:
    """Pull requests to `consumer` of `stream`.

    `fetch()` returns what has arrived, or sends one pull request (`batch`, `expires`,
    idle `heartbeat`) and returns once messages arrive and the burst ends (nothing new
    for `linger` seconds, or the batch full), or empty when the request expires.
    Messages of a request that arrive after `fetch()` returned are kept for the next
    call. Status messages (404, 408, 409, 503) are not data: they end the wait. While a
    request is open, the server sends an idle heartbeat (100) every `heartbeat` seconds
    without messages; when two in a row are missed, the request (or the connection under
    it) is taken for dead: `fetch()` returns empty at once, `missed_heartbeats` counts
    it, and the next call sends a new request rather than wait out `expires`. (Flow
    control is a push consumer's; a pull consumer's requests are its flow control.)

    At most two requests' worth of messages (2 x `batch`) are held: the next request is
    only sent while fewer than one batch waits. A lost connection ends the open
    request; the next `fetch` makes a new one on the next connection. `interruptions`
    counts lost connections and consumers gone (409): a consumer without acks has lost
    what was in flight then, and its user makes a new one from where it was.
    """

    def __init__(
        self,
        url: str,
        name: str,
        stream: str,
        consumer: str,
        *,
        batch: int,
        expires: float,
        heartbeat: float,
        linger: float = 0.005,
    ) -> None:
        self.batch = batch
        self.expires = expires
        self.heartbeat = heartbeat
        self.linger = linger
        self.interruptions = 0
        self.missed_heartbeats = 0
        self._api = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
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

    @property
    def is_connected(self) -> bool:
        return self._wire.is_connected

    @property
    def held(self) -> int:
        """Messages received and not fetched yet."""
        return self._wire.protocol.held

    def _on_received(self, got: core.Received) -> None:
        if got.delivered:
            self._got += got.delivered
            if self._got >= self.batch:
                self._outstanding = 0.0  # the request is served
        if any(code in _REQUEST_OVER for code in got.statuses):
            self._outstanding = 0.0
        if any(code in _CONSUMER_GONE for code in got.statuses):
            self.interruptions += 1
        for token in got.confirmations:
            waiter = self._confirming.pop(token, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        self._arrived.set()

    def _on_lost(self, why: str) -> None:
        self._outstanding = 0.0  # the request went with the connection
        self.interruptions += 1
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
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
            # cancellation that comes as the awaited result arrives, and a stop would hang.
            async with asyncio.timeout(_ACK_TIMEOUT):
                await waiter
        finally:
            self._confirming.pop(token, None)

    async def finish(self) -> core.Deliveries:
        """What the open request still brings, once it is over (served, expired, or its
        heartbeats missed), with everything held; no new request is sent. A consumer that
        stops takes these in rather than leave them in flight until the server's ack wait
        (the next instance would get them only then)."""
        loop = asyncio.get_running_loop()
        deadline = self._outstanding + self.heartbeat
        while self._outstanding and loop.time() < deadline:
            self._arrived.clear()
            try:
                async with asyncio.timeout(deadline - loop.time()):  # see ack()
                    await self._arrived.wait()
            except TimeoutError:
                break
        self._outstanding = 0.0
        held = self._wire.protocol.held
        return self._wire.protocol.take_deliveries(held) if held else _NOTHING

    async def _request(self) -> None:
        request = {
            "batch": self.batch,
            "expires": int(self.expires * 1e9),
            "idle_heartbeat": int(self.heartbeat * 1e9),
        }
        self._outstanding = asyncio.get_running_loop().time() + self.expires
        self._got = 0
        body = json.dumps(request).encode()
        await self._wire.write(self._wire.protocol.encode_publish(self._api, body, self._inbox))

    async def fetch(self) -> core.Deliveries:
        loop = asyncio.get_running_loop()
        protocol = self._wire.protocol
        if not protocol.held:
            if loop.time() >= self._outstanding:
                await self._request()
            deadline = self._outstanding + self.heartbeat
            silence = 2 * self.heartbeat  # two idle heartbeats missed
            while not protocol.held:
                self._arrived.clear()
                remaining = deadline - loop.time()
                if remaining <= 0 or not self._outstanding:
                    return _NOTHING
                try:
                    async with asyncio.timeout(min(remaining, silence)):  # see ack()
                        await self._arrived.wait()
                except TimeoutError:
                    if remaining > silence:
                        self.missed_heartbeats += 1
                        log.warning(
                            "pull request to %s: no message or heartbeat for %gs; requesting again",
                            self._api,
                            silence,
                        )
                    self._outstanding = 0.0
                    return _NOTHING
            # let the rest of the burst arrive: until the batch is full, the request is
            # over, or nothing came for `linger`
            size = -1
            while (
                self.linger
                and self._outstanding
                and size != protocol.held
                and protocol.held < self.batch
            ):
                size = protocol.held
                await asyncio.sleep(self.linger)
        if not self._outstanding and protocol.held < 2 * self.batch:
            # The next batch comes in while the caller works on this one (fewer than a
            # batch is left once this one is taken): at most two batches are held here. Requested before this batch is taken, so that a
            # cancellation while the request is written leaves the batch held, not lost.
            await self._request()
        return protocol.take_deliveries(self.batch)


_NOTHING = core.Deliveries([])
