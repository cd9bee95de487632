"""The gateway as one object (feeds + hub + markets + metrics), its health, and `serve`.

One feed and one market listing per venue: the environment's own, and each further venue
it serves (settings.venues, their symbols `venue:ticker`: ssmd.gateway.symbols).

    gw = Gateway(GatewaySettings.from_environment(env, host=..., port=...))
    await serve(gw, stop)           # the listener (listener.py) until `stop` is set

Tests run `Gateway(settings).server(port=0)` in their own event loop.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any, Final

from fastapi import FastAPI

from ssmd.exceptions import BadRequest
from ssmd.gateway.app import create_app
from ssmd.gateway.feed import Feed
from ssmd.gateway.hub import Hub
from ssmd.gateway.listener import WS_LOGGER, GatewayServer
from ssmd.gateway.markets import Markets
from ssmd.gateway.metrics import GatewayMetrics
from ssmd.gateway.settings import GatewaySettings

__all__ = ["Gateway", "redact_keys", "serve"]

log = logging.getLogger(__name__)

_KEY_IN_QUERY: Final = re.compile(r"(api_key=)[^&\s\"']*")
_SECRET_HEADERS: Final = frozenset({"x-api-key", "authorization", "cookie"})


class _RedactKeys(logging.Filter):
    """uvicorn logs request paths with their query string, and (at DEBUG, through the
    websockets protocol) request headers: key values become ****."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 2 and str(args[0]).lower() in _SECRET_HEADERS:
            record.args = (args[0], "****")
        elif args and isinstance(args, tuple):
            record.args = tuple(
                _KEY_IN_QUERY.sub(r"\1****", a) if isinstance(a, str) else a for a in args
            )
        if isinstance(record.msg, str) and "api_key=" in record.msg:
            record.msg = _KEY_IN_QUERY.sub(r"\1****", record.msg)
        return True


_FILTER: Final = _RedactKeys()


def redact_keys() -> None:
    """Install the filter on uvicorn's loggers and the listener's (idempotent)."""
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "ssmd.gateway.listener", WS_LOGGER):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


class Gateway:
    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.metrics = GatewayMetrics()
        self.symbols = settings.symbols
        self.hub = Hub(settings, self.metrics, self.symbols)
        self.feeds = {
            v.feed: Feed(v, self.metrics, self.hub, self.symbols.prefix(v.feed))
            for v in (settings, *settings.venues)
        }
        self.hub.feeds = self.feeds
        self.feed = self.feeds[settings.feed]  # the own venue's
        self.venue_markets = {
            venue: Markets(feed.state, feed.settings.store, venue)
            for venue, feed in self.feeds.items()
        }
        self.markets = self.venue_markets[settings.feed]
        for venue, markets in self.venue_markets.items():
            if self.feeds[venue].settings.store is not None:
                self.hub.known[venue] = markets.known
        self.metrics.bind(
            clients=lambda: {(): float(len(self.hub.clients))},
            subscriptions=lambda: {(t,): float(len(c)) for t, c in self.hub.subs.items() if c},
            feed=self._feed_gauges,
        )
        self.started = time.monotonic()
        self._running = False
        self.app: FastAPI = create_app(self)

    def venue(self, name: str | None) -> str:
        """The venue a request names (`venue=`; None: the own); BadRequest for one the
        gateway does not serve."""
        if name is None or name == "":
            return self.symbols.own
        if name not in self.feeds:
            served = ", ".join(self.symbols.venues)
            raise BadRequest(f"venue {name} is not served here (venues: {served})")
        return name

    def _feed_gauges(self) -> dict[str, float]:
        """The feeds' gauges as one: counts summed, the worst of the rest."""
        each = [f.gauges() for f in self.feeds.values()]
        out = {k: sum(g[k] for g in each) for k in ("lag", "books", "trades")}
        out |= {k: min(g[k] for g in each) for k in ("nats", "ready")}
        ages = [g["age"] for g in each if "age" in g]
        if ages:
            out["age"] = max(ages)
        return out

    async def start(self) -> None:
        """Connect and start consuming; ConfigError when the stream does not fit. Called by
        the app's lifespan, or before it to fail early (then the lifespan's call is a no-op)."""
        if self._running:
            return
        self._running = True
        redact_keys()
        self.started = time.monotonic()
        try:
            for feed in self.feeds.values():
                await feed.start()
        except BaseException:
            self._running = False
            for feed in self.feeds.values():
                await feed.stop()
            raise
        self.hub.start()
        log.info(
            "gateway for %s (%s) on %s:%d (%s)",
            self.settings.env,
            ", ".join(self.symbols.venues),
            self.settings.host,
            self.settings.port,
            "API keys required" if self.settings.keys else "no authentication",
        )

    async def stop(self) -> None:
        if not self._running:
            return
        self._running = False
        self.hub.close_all(1001, "the gateway is shutting down")
        await self.hub.stop()
        for feed in self.feeds.values():
            await feed.stop()
        for markets in self.venue_markets.values():
            markets.close()

    def health(self) -> tuple[bool, dict[str, Any]]:
        problems, body = self._feed_health(self.feed)
        venues = {}
        for venue in self.symbols.further:
            theirs, venues[venue] = self._feed_health(self.feeds[venue])
            problems += [f"{venue}: {p}" for p in theirs]
        body = {
            "status": "ok" if not problems else "unavailable",
            "problems": problems,
            "env": self.settings.env,
            **body,
            "clients": len(self.hub.clients),
            # Further venues, their symbols `venue:ticker`; the web page lists them.
            "venues": venues,
        }
        return not problems, body

    def _feed_health(self, feed: Feed) -> tuple[list[str], dict[str, Any]]:
        s = feed.settings
        problems = []
        if feed.fatal is not None:
            problems.append(feed.fatal)
        connected = feed.nats_connected()
        if not connected:
            problems.append("not connected to NATS")
        if not feed.stream_found:
            problems.append(f"stream {s.nats.stream} does not exist yet")
        elif not feed.ready:
            problems.append("catching up with the stream")
        lag = feed.pending()
        if lag > s.max_lag:
            problems.append(f"{lag} messages pending (more than {s.max_lag})")
        age = feed.last_message_age()
        if feed.ready:
            if age is None and time.monotonic() - self.started > s.stale_after:
                problems.append(f"no data received in {s.stale_after:g}s")
            elif age is not None and age > s.stale_after:
                problems.append(f"last record is {age:.0f}s old (more than {s.stale_after:g}s)")
        event = feed.state.last_event
        return problems, {
            "feed": s.feed,  # the venue: the web page names it
            "nats": {"connected": connected, "stream": s.nats.stream},
            "stream": {
                "found": feed.stream_found,
                "ready": feed.ready,
                "lag": lag,
                "last_sequence": feed.last_seq,
            },
            "connector": {
                "last_record_age_s": None if age is None else round(age, 3),
                "last_event": None
                if event is None
                else {
                    "kind": event[0],
                    "age_s": round(max(0.0, time.time_ns() - event[1]) / 1e9, 3),
                },
            },
            "books": len(feed.state.books),
        }

    def server(self, port: int | None = None, *, stream: bool = True) -> GatewayServer:
        """The gateway's listener (not started): `/v1/stream` on the gateway's own
        WebSocket connections, the rest on uvicorn (listener.py). `stream=False`: the
        stream too on uvicorn's stock WebSocket protocol (one write per message)."""
        s = self.settings
        return GatewayServer(self, s.host, s.port if port is None else port, stream=stream)


async def serve(gw: Gateway, stop: asyncio.Event) -> None:
    """Serve until `stop` is set (or the server ends on its own), then stop cleanly."""
    server = gw.server()
    serving = asyncio.create_task(server.serve())
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        server.should_exit = True
        await serving
    finally:
        stopping.cancel()
