"""When `ssmd up` counts the gateway started: it serves (its health answers, 200 or 503,
and every venue's stream is caught up), whether or not every venue is healthy."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import httpx

from _support.gwfix import (
    CENT,
    E6,
    gateway_settings,
    nats_server,
    publisher,
    running_gateway,
    snapshot,
    until,
)
from ssmd.gateway import GatewaySettings
from ssmd.testing.nats import free_port
from ssmd.up.components import gateway_serves

TICKER = "SAME-25-X"
STALE_NS = 600 * 10**9  # a record this old is stale (stale_after: 120 s)


def two_venues(url: str) -> GatewaySettings:
    return replace(gateway_settings(url), venues=(gateway_settings(url, "kraken"),))


async def test_a_further_venues_stale_connector_leaves_the_gateway_serving(
    tmp_path: Path,
) -> None:
    """Kraken's connector stopped long ago (from the TUI, say): its last record is old,
    health is 503, and the gateway still serves every venue."""
    async with (
        nats_server(tmp_path / "nats") as srv,
        publisher(srv.url) as own,
        publisher(srv.url, "kraken") as kraken,
        httpx.AsyncClient(timeout=5) as http,
    ):
        kraken.receive_ns = lambda: time.time_ns() - STALE_NS
        await own.publish(snapshot(TICKER, [(40 * CENT, E6)], []))
        await kraken.publish(snapshot(TICKER, [(40 * CENT, E6)], []))
        async with running_gateway(two_venues(srv.url)) as gw:
            url = f"{gw.http}/v1/health"
            health = await http.get(url)
            assert health.status_code == 503
            (problem,) = health.json()["problems"]
            assert problem.startswith("kraken: last record is"), problem
            assert await gateway_serves(http, url)


async def test_a_gateway_still_reading_a_venues_stream_does_not_serve_yet(
    tmp_path: Path,
) -> None:
    async with (
        nats_server(tmp_path / "nats") as srv,
        publisher(srv.url) as own,
        httpx.AsyncClient(timeout=5) as http,
    ):
        await own.publish(snapshot(TICKER, [(40 * CENT, E6)], []))
        # Kraken's stream does not exist: that venue never catches up.
        async with running_gateway(two_venues(srv.url), ready=False) as gw:
            await until(lambda: gw.gw.feed.ready, 20, "the own venue to catch up")
            url = f"{gw.http}/v1/health"
            assert (await http.get(url)).status_code == 503
            assert not await gateway_serves(http, url)
        # One venue, caught up and healthy.
        async with running_gateway(gateway_settings(srv.url)) as gw:
            assert await gateway_serves(http, f"{gw.http}/v1/health")
        # Nobody listening.
        assert not await gateway_serves(http, f"http://127.0.0.1:{free_port()}/v1/health")
