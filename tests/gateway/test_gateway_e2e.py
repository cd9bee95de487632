"""End to end: simulator -> connector (with book checkpoints) -> NATS -> gateway -> client,
books equal to the simulator's truth, a gateway started late and again after a stop; and
the real CLI (`ssmd gateway run`, `ssmd gateway new-key`) in a subprocess."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson

from _support.gwfix import (
    CENT,
    E6,
    Client,
    drive,
    expected_book,
    manual_sim,
    open_markets,
    running,
    settings_for,
    until,
)
from ssmd import core
from ssmd.bus import subjects
from ssmd.bus.connection import connect
from ssmd.config import Overrides, load_environment
from ssmd.gateway import Gateway, GatewaySettings
from ssmd.gateway.auth import KeyRing
from ssmd.sim import Simulator
from ssmd.testing.connector import streaming, tickers_symbols
from ssmd.testing.nats import free_port, nats_server

ROOT = Path(__file__).resolve().parents[2]
SSMD = str(Path(sys.executable).parent / "ssmd")


def _e6(text: str) -> int:
    return int(Decimal(text) * 1_000_000)


def truth_book(sim: Simulator, ticker: str) -> dict[str, Any]:
    state = sim.book(ticker)
    bids = sorted(((_e6(p), _e6(s)) for p, s in state.yes), reverse=True)
    asks = sorted((1_000_000 - _e6(p), _e6(s)) for p, s in state.no)
    return expected_book(ticker, bids, asks, True)


async def books_match(c: Client, sim: Simulator, names: list[str], what: str) -> None:
    async def drain() -> None:
        while not all(c.book(t) == truth_book(sim, t) for t in names):
            await c.recv(30)

    try:
        await asyncio.wait_for(drain(), 60)
    except TimeoutError:
        wrong = [t for t in names if c.book(t) != truth_book(sim, t)]
        raise AssertionError(f"{what}: books differ for {wrong}") from None


def gateway_for(srv_url: str, tmp: Path) -> GatewaySettings:
    env = load_environment(
        "kalshi-sim", ROOT / "exchanges", Overrides(nats_url=srv_url, data_dir=str(tmp / "gw"))
    )
    return GatewaySettings.from_environment(env, host="127.0.0.1", port=0, idle_heartbeat=0.5)


async def serving(settings: GatewaySettings) -> tuple[Gateway, Any, asyncio.Task[None], str]:
    gw = Gateway(settings)
    server = gw.server(port=0)
    task = asyncio.create_task(server.serve())
    await until(lambda: server.started, 20, "the gateway to listen")
    port = server.servers[0].sockets[0].getsockname()[1]
    await until(lambda: gw.feed.ready, 30, "the gateway to catch up")
    return gw, server, task, f"ws://127.0.0.1:{port}/v1/stream"


async def test_simulator_to_client_with_checkpoints_and_a_late_gateway(tmp_path: Path) -> None:
    sim, _clock = manual_sim(seed=17, markets=40)
    async with nats_server(tmp_path / "nats") as srv, sim:
        names = sorted(set(open_markets(sim, 6) + open_markets(sim, 2, dotted=True)))
        assert any("." in t for t in names)
        conn_settings = settings_for(
            sim, srv, tmp_path, symbols=tickers_symbols(names), checkpoint_interval=0.05
        )
        async with running(conn_settings) as conn:
            await until(lambda: streaming(conn, len(names)), what="subscribed")
            await drive(sim, conn, 5)
            # A gateway started late: books from the checkpoints, then live.
            gw, server, task, url = await serving(gateway_for(srv.url, tmp_path))
            try:
                assert (
                    gw.metrics.value(
                        "ssmd_gateway_consumer_starts_total", consumer="last_per_subject"
                    )
                    == 1
                )
                async with Client.connect(url) as c:
                    await c.send({"action": "subscribe", "symbols": names})
                    await drive(sim, conn, 5)
                    await books_match(c, sim, names, "live")
                    assert c.of("trade"), "no trade came through"
            finally:
                server.should_exit = True
                await asyncio.wait_for(task, 20)
            # Stopped while the connector goes on; a new gateway is exact again.
            await drive(sim, conn, 5)
            gw, server, task, url = await serving(gateway_for(srv.url, tmp_path))
            try:
                async with Client.connect(url) as c:
                    await c.send({"action": "subscribe", "symbols": names})
                    await books_match(c, sim, names, "after the restart")
                    await drive(sim, conn, 3)
                    await books_match(c, sim, names, "after the restart, live")
                assert gw.metrics.value("ssmd_gateway_book_events_total", kind="gap") == 0
                assert (
                    gw.metrics.value(
                        "ssmd_gateway_book_events_total", kind="delta_without_snapshot"
                    )
                    == 0
                )
            finally:
                server.should_exit = True
                await asyncio.wait_for(task, 20)


async def test_the_cli_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    ticker = "KXBTCD-26MAR1213-T69499.99"
    async with nats_server(tmp_path / "nats") as srv:
        nc = await connect(srv.url, "cli-test")
        js = nc.jetstream()
        from ssmd.bus.stream import ensure_stream

        await ensure_stream(js, gateway_for(srv.url, tmp_path).nats)
        rec = {
            "kind": "book_snapshot",
            "ticker": ticker,
            "yes": [(44 * CENT, 10 * E6)],
            "no": [],
            "conn_id": 1,
            "sid": 1,
            "seq": 1,
        }
        await js.publish(
            subjects.record("kalshi-sim", "kalshi", "orderbook", ticker), core.encode_records([rec])
        )
        proc = await asyncio.create_subprocess_exec(
            SSMD,
            "gateway",
            "run",
            "--env",
            "kalshi-sim",
            "--config-dir",
            str(ROOT / "exchanges"),
            "--nats-url",
            srv.url,
            "--data-dir",
            str(tmp_path / "data"),
            "--port",
            str(port),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        lines: list[dict[str, Any]] = []

        async def read_logs() -> None:
            assert proc.stderr is not None
            async for line in proc.stderr:
                lines.append(orjson.loads(line))

        reader = asyncio.create_task(read_logs())
        try:

            async def healthy() -> None:
                async with httpx.AsyncClient(timeout=5) as http:
                    while True:
                        try:
                            r = await http.get(f"http://127.0.0.1:{port}/v1/health")
                            if r.status_code == 200 or proc.returncode is not None:
                                return
                        except httpx.TransportError:
                            pass
                        await asyncio.sleep(0.1)

            await asyncio.wait_for(healthy(), 30)
            assert proc.returncode is None, lines[-5:]
            async with Client.connect(f"ws://127.0.0.1:{port}/v1/stream?symbols={ticker}") as c:
                assert await c.recv() == {"type": "subscribed", "symbols": [ticker]}
                book = await c.recv()
                assert book["bids"] == [[0.44, 10]] and book["valid"] is True
                proc.send_signal(signal.SIGTERM)
                rc = await asyncio.wait_for(proc.wait(), 20)
            await reader
        finally:
            if proc.returncode is None:
                proc.kill()
            await nc.close()
    assert rc == 0, lines[-5:]
    assert any(x["msg"].startswith("gateway for kalshi-sim") for x in lines)


async def _run_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        SSMD,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_the_cli_refuses_unsafe_or_incomplete_settings() -> None:
    config = str(ROOT / "exchanges")
    rc, _, err = await _run_cli("gateway", "run", "--env", "kalshi-sim", "--config-dir", config)
    assert rc == 2 and "--nats-url" in err
    rc, _, err = await _run_cli(
        "gateway",
        "run",
        "--env",
        "kalshi-sim",
        "--config-dir",
        config,
        "--nats-url",
        "nats://127.0.0.1:1",
        "--host",
        "0.0.0.0",
    )
    assert rc == 2 and "gateway_api_keys" in err and "--insecure-no-auth" in err
    rc, out, _ = await _run_cli("gateway", "new-key", "alice")
    assert rc == 0
    key = out.split("\n")[1].strip()
    line = out.split("\n")[3].strip()
    assert key.startswith("ssmd_") and line.startswith("alice sha256:") and key not in line
    ring = KeyRing.parse(line)
    assert ring.match(key) is not None and ring.match(key + "x") is None
    rc, _, err = await _run_cli("gateway", "new-key", "bad name")
    assert rc == 2 and "not allowed" in err
