"""A market selection that cannot be read (REST unreachable, HTTP 401) is counted, shown in
/health (503 with the reason) until a read succeeds, and read again after a backoff rather
than a sync interval later; a read that fails after a success keeps the selection."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import httpx

from _support.connfix import (
    check_books,
    check_exactly_once,
    drive,
    errors,
    manual_sim,
    open_in_series,
    running,
    settings_for,
    stream_messages,
)
from ssmd.config.models.environment import Symbols
from ssmd.connector.runner import Connector
from ssmd.sim import Fault, FaultKind
from ssmd.testing import until
from ssmd.testing.connector import streaming
from ssmd.testing.nats import nats_server


def refresh_errors(conn: Connector) -> float:
    return errors(conn, "selection_refresh")


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
