"""A market selection that cannot be read (REST unreachable, HTTP 401, a venue listing
that is no listing) is counted, shown in /health (503 with the reason) until a read
succeeds, and read again after a backoff rather than a sync interval later; a read that
fails after a success keeps the selection."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from _support import venuefix
from _support.connfix import (
    check_books,
    check_exactly_once,
    drive,
    manual_sim,
    open_in_series,
    running,
    settings_for,
    stream_messages,
)
from ssmd.config.models.environment import Symbols
from ssmd.connector.runner import Connector
from ssmd.sim import Fault, FaultKind
from ssmd.sim.polymarket import PolymarketSimulator
from ssmd.testing import until
from ssmd.testing.connector import streaming
from ssmd.testing.nats import nats_server
from ssmd.venues.listing import ListingSelection


def refresh_errors(conn: Connector) -> float:
    labels = {"feed": conn.settings.feed, "error_type": "selection_refresh"}
    return conn.metrics.registry.get_sample_value("ssmd_connector_errors_total", labels) or 0.0


async def get_health(conn: Connector) -> tuple[int, dict[str, Any]]:
    assert conn.health_server is not None
    async with httpx.AsyncClient() as http:
        r = await http.get(f"http://127.0.0.1:{conn.health_server.port}/health")
    return r.status_code, r.json()


def closed_port() -> int:
    """A local port nothing listens on: connecting to it is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class GarbledListing:
    """A venue's REST behind a front that, while `garbled`, answers every request with
    status 200 and an HTML page (a captive portal's, say): no listing, and no error the
    venue's REST client knows. Otherwise it answers with what the venue answers."""

    PAGE = b"<html><body>Sign in to continue</body></html>"

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.garbled = True
        self.garbled_answers = 0
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._answer, "127.0.0.1", 0)
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        target = (await reader.readuntil(b"\r\n\r\n")).split(b" ", 2)[1].decode()
        if self.garbled:
            self.garbled_answers += 1
            body, kind = self.PAGE, b"text/html"
        else:
            async with httpx.AsyncClient() as http:
                body, kind = (await http.get(self.upstream + target)).content, b"application/json"
        head = b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n" % (kind, len(body))
        writer.write(head + b"Connection: close\r\n\r\n" + body)
        await writer.drain()
        writer.close()


async def test_unreachable_rest_at_start_is_reported_and_read_again(tmp_path: Path) -> None:
    sim, _ = manual_sim(seed=41)
    port = closed_port()
    async with nats_server(tmp_path / "nats") as srv, sim:
        settings = settings_for(
            sim,
            srv,
            tmp_path,
            symbols=Symbols(series=["KXETHD"], statuses=["open"]),
            rest_url=f"http://127.0.0.1:{port}/trade-api/v2",
            health_port=0,
        )
        async with running(settings) as conn:
            # Read again after a backoff: the sync interval (15 minutes) never passes here.
            await until(lambda: refresh_errors(conn) >= 2, 30, "the selection read again")
            status, health = await get_health(conn)
            assert status == 503 and health["status"] == "degraded"
            assert health["reason"].startswith("no market selection yet: RestError")
            assert f"127.0.0.1:{port}" in health["reason"] and "ConnectError" in health["reason"]
            assert health["selection"]["selected"] is False
            assert health["selection"]["failed_reads"] >= 2
            assert health["markets"] == 0
            # The global shard captures meanwhile.
            assert conn.shards.shards[0].state == "streaming"
            assert settings.sync_interval >= 60


async def test_rest_401_until_a_read_succeeds_then_a_failed_read_keeps_the_selection(
    tmp_path: Path,
) -> None:
    sim, _ = manual_sim(seed=42)
    async with nats_server(tmp_path / "nats") as srv, sim:
        want = open_in_series(sim, "KXETHD")
        assert want
        sim.inject(Fault(FaultKind.REST_401, at=0, count=3))
        settings = settings_for(
            sim,
            srv,
            tmp_path,
            symbols=Symbols(series=["KXETHD"], statuses=["open"]),
            health_port=0,
            sync_interval=0.5,
            backoff_base=0.5,  # reads again after 0.5 s, then 1 s
            backoff_cap=1.0,
        )
        async with running(settings) as conn:
            tracking = await until(lambda: conn.tracking, 10, "the tracking loop")
            await until(lambda: tracking.refresh_failures >= 1, 10, "the first read to fail")
            status, health = await get_health(conn)
            assert status == 503
            assert "HTTP 401" in health["reason"] and "check the API key" in health["reason"]
            assert health["markets"] == 0
            # Three 401s, then a read that succeeds: the selection is taken up.
            await until(lambda: streaming(conn, len(want)), 20, "the selection subscribed")
            assert refresh_errors(conn) == 3
            status, health = await get_health(conn)
            assert status == 200 and "reason" not in health
            assert health["selection"] == {
                "selected": True,
                "desired": len(want),
                "error": "",
                "failed_reads": 0,
            }
            # Now every read fails: the selection stays as it was, and the process healthy.
            sim.inject(Fault(FaultKind.REST_401, at=0, count=1000))
            await until(lambda: refresh_errors(conn) >= 5, 20, "failed reads after a success")
            assert tracking.desired == set(want)
            assert sorted(conn.shards.subscribed) == want
            status, health = await get_health(conn)
            assert status == 200
            assert "HTTP 401" in health["selection"]["error"]
            await drive(sim, conn, 1)
            assert tracking.desired == set(want)
        msgs = await stream_messages(srv.url)
    assert len([f for f in sim.truth.faults if f.kind == "rest_401"]) >= 5
    check_exactly_once(sim, msgs)
    check_books(sim, msgs, want)


async def test_a_venue_listing_that_is_no_listing_is_counted_and_read_again(
    tmp_path: Path,
) -> None:
    """Polymarket's listing answers an HTML page with status 200. The connector keeps
    running, counts each failed read and says why (the page is not JSON); once the
    listing is readable its markets are subscribed, and when it fails again the
    selection is kept."""
    async with (
        nats_server(tmp_path / "nats") as srv,
        PolymarketSimulator(markets=4, rate=50.0, seed=43) as sim,
        GarbledListing(sim.rest_url) as front,
    ):
        want = set(sim.tokens())
        settings = venuefix.settings_for(
            "polymarket-sim",
            sim,
            srv,
            tmp_path,
            rest_url=front.url,
            health_port=0,
            sync_interval=0.5,
        )
        async with running(settings) as conn:
            await until(lambda: refresh_errors(conn) >= 2, 20, "the listing read again")
            status, health = await get_health(conn)
            assert status == 503
            assert health["reason"].startswith("no market selection yet: RestError")
            assert "/markets: not JSON" in health["reason"]
            assert health["selection"]["selected"] is False
            assert health["markets"] == 0
            # The listing is readable again: its markets are taken up and subscribed.
            front.garbled = False
            await until(lambda: streaming(conn, len(want)), 20, "the listing subscribed")
            status, health = await get_health(conn)
            assert status == 200 and health["selection"]["error"] == ""
            # Garbled again: each failed read is counted, the selection and the
            # subscriptions stay as they were, and the process stays healthy.
            failed = refresh_errors(conn)
            front.garbled = True
            await until(lambda: refresh_errors(conn) >= failed + 2, 20, "failed reads")
            assert conn.tracking is not None and conn.tracking.desired == want
            assert conn.shards.subscribed == want
            status, health = await get_health(conn)
            assert status == 200
            assert health["selection"]["error"].startswith("RestError")
    assert front.garbled_answers >= 4


class _Failing(ListingSelection):
    """A venue's listing whose reader fails with what no REST client wraps."""

    def __init__(self) -> None:
        super().__init__(Symbols(statuses=["open"]), "http://127.0.0.1:9", None)
        self.answer: set[str] | Exception = {"a", "b"}

    async def _select(self) -> set[str]:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


async def test_a_listing_failing_with_any_exception_keeps_the_last_selection() -> None:
    """Not only a RestError: a failure the venue's client did not foresee (a KeyError on
    a reply of a new shape, say) is counted and said, and the markets known stay."""
    listing = _Failing()
    await listing.refresh()
    assert listing.desired() == {"a", "b"} and listing.last_error == ""
    listing.answer = KeyError("outcomes")
    await listing.refresh()
    assert listing.desired() == {"a", "b"}
    assert (listing.refresh_errors, listing.last_error) == (1, "KeyError: 'outcomes'")
