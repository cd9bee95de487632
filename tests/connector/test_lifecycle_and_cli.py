"""Markets rolling on a manual clock, selection by series and category through REST (with a
429 burst), SIGTERM through the real CLI, and the send timeout against a peer that never
reads."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from _support.connfix import (
    ROOT,
    check_books,
    check_exactly_once,
    drive,
    events,
    manual_sim,
    open_in_series,
    running,
    settings_for,
    stream_messages,
)
from ssmd import core
from ssmd.cli import app
from ssmd.config.models.environment import Symbols
from ssmd.connector.runner import Connector
from ssmd.connector.selection import Selection
from ssmd.exceptions import SessionError
from ssmd.sim import DEMO_KEY_ID, DEMO_PRIVATE_KEY_PATH, Fault, FaultKind, Simulator
from ssmd.testing import until
from ssmd.testing.connector import PREFIX, streaming
from ssmd.testing.nats import nats_server
from ssmd.venues.kalshi.ws import Liveness, Session


def sim_subscribed(sim: Simulator, channel: str = "orderbook_delta") -> list[str]:
    """Ground truth: the markets the simulator streams on `channel`, over open connections."""
    out: list[str] = []
    for c in sim.connections.values():
        sub = c.by_channel.get(channel)
        if not c.closed and sub is not None and sub.tickers is not None:
            out.extend(sub.tickers)
    return sorted(out)


def connector_subscribed(conn: Connector) -> list[str]:
    return sorted(t for s in conn.shards.shards.values() for t in s.subscribed)


async def test_rolling_15_minute_markets_follow_the_open_set(tmp_path: Path) -> None:
    series = "KXBTC15M"
    sim, clock = manual_sim(seed=21, rate=10.0)

    def open_now() -> list[str]:
        return open_in_series(sim, series)

    async with nats_server(tmp_path / "nats") as srv, sim:
        settings = settings_for(
            sim, srv, tmp_path, symbols=Symbols(series=[series], statuses=["open"])
        )
        seen: set[str] = set()
        async with running(settings) as conn:
            await until(lambda: streaming(conn, len(open_now())), 20)
            shard = conn.shards.shards[1]
            conn_id = shard.conn_id
            sids = {
                ch: sim.connections[n].by_channel[ch].sid
                for n in [max(sim.connections)]
                for ch in ("orderbook_delta", "trade", "ticker")
            }
            for _ in range(32):  # 14:30:05 -> 15:02:05: two rolls, at 14:45 and 15:00
                clock.advance(60.0)
                await sim.wait_idle(20)
                want = open_now()
                await until(
                    lambda w=want: (
                        connector_subscribed(conn) == w  # type: ignore[misc]
                        and sim_subscribed(sim) == w
                        and sim_subscribed(sim, "trade") == w
                    ),
                    15,
                    f"subscriptions to follow {want}",
                )
                seen.update(want)
            # Every change went through update_subscription on the same connection and sids.
            assert shard.conn_id == conn_id and shard.reconnects == 0
            live = sim.connections[max(sim.connections)]
            assert {ch: live.by_channel[ch].sid for ch in sids} == sids
            final = open_now()
            await drive(sim, conn, 1)
        msgs = await stream_messages(srv.url)
    assert len(seen) == 3  # the window open at start and the two that opened after it
    check_exactly_once(sim, msgs)
    check_books(sim, msgs, final)
    gone = sorted(t for e in events(msgs, "unsubscribed") for t in e["tickers"])
    assert gone == sorted(seen - set(final))
    added = [t for e in events(msgs, "subscribed") for t in e["tickers"]]
    assert sorted(added) == sorted(seen)
    # The markets opened silently: no lifecycle record announced them, yet they were added.
    activated = {
        r["ticker"]
        for m in msgs
        if m.subject.startswith(f"{PREFIX}.lifecycle.")
        for r in core.decode_records(m.data)
        if r.get("event_type") == "activated"
    }
    assert not activated & seen


async def test_selection_by_series_and_category_through_rest_survives_429s(
    tmp_path: Path,
) -> None:
    sim, _ = manual_sim(seed=22)
    async with nats_server(tmp_path / "nats") as srv, sim:
        universe = sim.universe
        want = sorted(
            t
            for t, m in universe.markets.items()
            if (
                m.series_ticker == "KXETHD" or universe.series[m.series_ticker].category == "Sports"
            )
            and m.status == "active"
            and not m.paused
        )
        assert want
        sim.inject(Fault(FaultKind.REST_429, at=0, count=3))  # the next 3 requests get 429
        symbols = Symbols(series=["KXETHD"], categories=["Sports"], statuses=["open"])
        settings = settings_for(sim, srv, tmp_path, symbols=symbols)
        async with running(settings) as conn:
            await until(lambda: streaming(conn, len(want)), 30, "selection subscribed")
            assert connector_subscribed(conn) == want
            assert sim_subscribed(sim) == want
            assert conn.tracking is not None
            selection = conn.tracking.selection
            assert isinstance(selection, Selection) and selection.rest is not None
            assert selection.rest.throttled == 3
            assert selection.refresh_errors == 0
            await drive(sim, conn, 2)
        msgs = await stream_messages(srv.url)
    assert sim.truth.rest_429 == 3
    check_exactly_once(sim, msgs)
    check_books(sim, msgs, want)


async def test_sigterm_through_the_cli_flushes_and_exits_0(tmp_path: Path) -> None:
    async with (
        nats_server(tmp_path / "nats") as srv,
        Simulator(seed=23, rate=200, markets=40) as sim,
    ):
        env = os.environ | {
            "KALSHI_API_KEY": sim.key_id,
            "KALSHI_PRIVATE_KEY_PATH": str(sim.private_key_path),
        }
        proc = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "ssmd"),
            "connector",
            "run",
            "--env",
            "kalshi-sim",
            "--config-dir",
            str(ROOT / "exchanges"),
            "--ws-url",
            sim.ws_url,
            "--rest-url",
            sim.rest_url,
            "--nats-url",
            srv.url,
            "--data-dir",
            str(tmp_path / "data"),
            "--health-port",
            "0",
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stderr is not None
        lines: list[dict[str, Any]] = []

        async def read_logs() -> None:
            assert proc.stderr is not None
            async for line in proc.stderr:
                lines.append(orjson.loads(line))

        reader = asyncio.create_task(read_logs())
        try:
            await until(
                lambda: (
                    bool(sim_subscribed(sim))
                    and sum(r.frames_sent for r in sim.truth.connections.values()) > 500
                ),
                60,
                "the CLI connector streaming",
            )
            proc.send_signal(signal.SIGTERM)  # mid-stream: frames are still arriving
            t0 = time.monotonic()
            rc = await asyncio.wait_for(proc.wait(), 30)
            took = time.monotonic() - t0
            await reader
        finally:
            if proc.returncode is None:
                proc.kill()
        truth = {n: list(r.frames) for n, r in sim.truth.connections.items()}
        msgs = await stream_messages(srv.url)
    assert rc == 0, lines[-5:]
    assert took < 25  # drain_timeout (20 s) plus the close
    (stopped,) = [x for x in lines if x["msg"] == "connector stopped"]
    assert stopped["unacked"] == 0 and stopped["queued_bytes"] == 0
    by_conn: dict[str, list[bytes]] = {}
    for m in msgs:
        if ".raw." in m.subject:
            by_conn.setdefault(m.headers["Ssmd-Conn-Id"], []).append(m.data)
    # Everything the process received is in the stream, once, in order: per connection a
    # prefix of what the simulator sent on it.
    assert sum(len(v) for v in by_conn.values()) == stopped["frames_received"]
    assert stopped["frames_published"] == stopped["frames_received"]
    for frames in by_conn.values():
        assert any(sent[: len(frames)] == frames for sent in truth.values())


def test_a_heartbeat_interval_of_zero_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KALSHI_API_KEY", DEMO_KEY_ID)
    monkeypatch.setenv("KALSHI_PRIVATE_KEY_PATH", str(DEMO_PRIVATE_KEY_PATH))
    argv = ["connector", "run", "--env", "kalshi-sim", "--config-dir", str(ROOT / "exchanges")]
    argv += ["--nats-url", "nats://127.0.0.1:1", "--data-dir", str(tmp_path)]
    res = CliRunner().invoke(app, [*argv, "--heartbeat-interval", "0"])
    assert res.exit_code == 2
    (line,) = res.stderr.splitlines()
    assert line.startswith("error: the connector's heartbeat interval must be more than 0")
    assert "Fix: pass --heartbeat-interval" in line


async def test_send_times_out_when_the_peer_stops_reading() -> None:
    """A WebSocket server that completes the upgrade and never reads again: the command send
    gives up after ping_timeout and the pinger drops the connection."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        request = await reader.readuntil(b"\r\n\r\n")
        key = next(
            line.split(b":", 1)[1].strip()
            for line in request.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        accept = base64.b64encode(
            hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
        )
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        await writer.drain()
        writer.transport.pause_reading()  # and never read again
        await release.wait()
        writer.transport.abort()
        released.set()

    release, released = asyncio.Event(), asyncio.Event()
    accepted: list[asyncio.StreamWriter] = []
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        session = Session(
            f"ws://127.0.0.1:{port}/trade-api/ws/v2",
            None,
            lambda data, ns: None,
            liveness=Liveness(ping_interval=0.2, ping_timeout=0.5, stale_after=60.0),
        )
        await session.open()
        run = asyncio.create_task(session.run())
        big = {"channels": ["trade"], "market_tickers": ["X" * 1000] * 40_000}  # ~40 MB
        t0 = time.monotonic()
        try:
            await session.command("subscribe", big)
            raise AssertionError("the send should have timed out")
        except SessionError as exc:
            assert "send failed" in str(exc)
        assert time.monotonic() - t0 < 3.0
        reason = await asyncio.wait_for(run, 5)
        assert "blocked" in reason
    finally:
        release.set()
        if accepted:
            await asyncio.wait_for(released.wait(), 10)
        server.close()
        await server.wait_closed()
