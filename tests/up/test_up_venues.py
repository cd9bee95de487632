"""`ssmd up` on the simulator environments of Kraken and Polymarket: the venue's own
simulator, the security master synced from the venue's listing (no live updates: these
streams carry no lifecycle records for it), the gateway streaming what the stream carries
and listing the stored markets of the venue, and the archive written, raw and normalized."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import websockets
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters

import ssmd.data
from _support.upfix import EXCHANGES, SSMD, UpProcess, raw_lines
from ssmd.config import Overrides, load_environment
from ssmd.exceptions import ActionError
from ssmd.sim.kraken import KrakenSimulator
from ssmd.sim.polymarket import PolymarketSimulator
from ssmd.testing import until
from ssmd.tui.backend import Backend
from ssmd.up.nats import free_port
from ssmd.upstate import read_state

pytestmark = [pytest.mark.timeout(240), pytest.mark.xdist_group("up-e2e")]

MARKETS = 40  # UpProcess's --sim-markets


def _symbols(env: str, seed: int) -> list[str]:
    """The tickers the venue's simulator lists for `seed` (built, not started): Kraken's
    pairs; Polymarket's tokens (books, trades) and condition ids (market lifecycle)."""
    if env == "kraken-sim":
        return KrakenSimulator(seed=seed, pairs=MARKETS, record_frames=False).symbols()
    sim = PolymarketSimulator(seed=seed, markets=MARKETS, record_frames=False)
    return [*sim.tokens(), *(m.condition_id for m in sim.markets)]


async def _a_valid_book_and_a_trade(ws_url: str, symbols: list[str]) -> dict[str, Any]:
    """Subscribe to every listed symbol; the first valid non-empty book, once a trade came."""
    book: dict[str, Any] | None = None
    traded = False
    async with websockets.connect(ws_url, max_size=None) as ws:
        await ws.send(orjson.dumps({"action": "subscribe", "symbols": symbols}).decode())
        async with asyncio.timeout(60):
            while book is None or not traded:
                msg = orjson.loads(await ws.recv())
                if msg["type"] == "orderbook" and msg["valid"] and msg["bids"] and msg["asks"]:
                    book = book or msg
                traded = traded or msg["type"] == "trade"
    return book


@pytest.mark.parametrize("env", ["kraken-sim", "polymarket-sim"])
async def test_up_runs_another_venues_simulator_environment(tmp_path: Path, env: str) -> None:
    data = tmp_path / "data"
    port = free_port()
    started = datetime.now(UTC).date()
    up = UpProcess(data, port, env=env)
    async with httpx.AsyncClient(timeout=5) as http:
        await up.start()
        try:
            await up.wait_ready(http)
            seed = int(read_state(data)["simulator"]["seed"])  # type: ignore[index]
            symbols = _symbols(env, seed)
            book = await _a_valid_book_and_a_trade(f"ws://127.0.0.1:{port}/v1/stream", symbols)
            assert book["ticker"] in symbols
            # The gateway lists the venue's markets from the security master.
            listed = (await http.get(f"http://127.0.0.1:{port}/v1/markets?limit=1000")).json()
            tickers = {m["ticker"] for m in listed["markets"]}
            assert tickers and tickers <= set(symbols), (tickers, symbols)
            venue = env.removesuffix("-sim")
            assert {(m["source"], m["venue"]) for m in listed["markets"]} == {("secmaster", venue)}
            assert all(m["title"] and m["tick_size"] for m in listed["markets"])
            code = await up.stop()
        finally:
            await up.ensure_gone()
    assert code == 0, up.tail()
    assert up.find("simulator started", "simulator")
    synced = up.find("secmaster synced", "secmaster-sync")
    assert synced and synced[0]["markets"] == len(tickers), synced
    stopped = [r["component"] for r in up.logs if r.get("msg") == "component stopped"]
    assert stopped == ["connector", "archiver", "gateway", "nats"], up.tail()

    # Every frame the connector received is archived raw; books and trades normalized,
    # read back as tables (sealed files and the archiver's spool).
    received = up.find("connector stopped", "connector")[0]["frames_received"]
    assert len(raw_lines(data, env)) == received > 0
    days = (started, datetime.now(UTC).date())
    where = {"env": env, "data_dir": str(data), "config_dir": str(EXCHANGES)}
    levels = ssmd.data.scan("spot_level" if env == "kraken-sim" else "book_level", *days, **where)
    assert levels.collect().height > 0
    trades = ssmd.data.scan("trade", *days, **where).collect()
    assert trades.height > 0
    if env == "kraken-sim":  # a spot trade says its taker's side
        assert set(trades["taker_side"]) <= {"buy", "sell"}, trades["taker_side"].unique()


async def test_the_gateways_port_taken_stops_the_start_before_anything_runs(
    tmp_path: Path,
) -> None:
    """The one gateway of every venue takes --port: taken, it is named with the fix before
    NATS or any simulator starts."""
    import socket

    port = free_port()
    up = UpProcess(tmp_path / "data", port, env="multi-sim")
    with socket.create_server(("127.0.0.1", port)):
        await up.start()
        try:
            code = await up.exited()
        finally:
            await up.ensure_gone()
    assert code == 1, up.tail()
    failed = up.find(
        f"cannot listen on 127.0.0.1:{port} (Address already in use); Fix: --port with a free port",
        "gateway",
    )
    assert failed, up.tail()
    assert not up.find("component started") and not up.find("simulator started"), up.tail()


async def _markets_an_agent_sees(data: Path, feed: str) -> set[str]:
    """`ssmd mcp serve --feed FEED` finds that venue's gateway in `ssmd up`'s state file:
    the tickers its list_markets tool answers with."""
    where = ["--config-dir", str(EXCHANGES), "--data-dir", str(data)]
    server = StdioServerParameters(
        command=SSMD,
        args=["mcp", "serve", "--env", "multi-sim", "--feed", feed, *where],
        env={"PATH": os.environ["PATH"]},
    )
    async with Client(server, read_timeout_seconds=60) as client:
        result = await client.call_tool("list_markets", {})
    text = result.content[0].text  # type: ignore[union-attr]
    assert not result.is_error, text
    return {row[0] for row in orjson.loads(text)["rows"]}


async def _rows(http: httpx.AsyncClient, url: str, query: dict[str, Any]) -> list[Any]:
    """The rows of a history answer; none while the archive holds none yet (404)."""
    resp = await http.get(url, params=query)
    assert resp.status_code in (200, 404), resp.text
    rows: list[Any] = resp.json().get("rows", [])
    return rows


async def _each_venues_archive_over_http(http: httpx.AsyncClient, base: str) -> None:
    """The one gateway's history routes read each venue's archive (its spool, here): by
    `venue=`, or by the venue of the symbols asked for, in the venue's own tickers."""
    today = str(datetime.now(UTC).date())
    for feed, tickers in (("kraken", {"BTC/USD", "ETH/USD"}), ("polymarket", None)):
        # Manifests may not be written yet: an answer names the venue's archive either way.
        inventory = (await http.get(f"{base}/v1/inventory", params={"venue": feed})).json()
        assert inventory.get("feed") == feed or f"(feed {feed})" in inventory["message"]
        query = {"from": today, "venue": feed, "limit": 10_000}
        rows = await until(lambda q=query: _rows(http, f"{base}/v1/history/trade", q), 30, feed)
        if tickers is not None:
            assert {r["ticker"] for r in rows} <= tickers
    query = {"from": today, "tickers": "kraken:BTC/USD,kraken:ETH/USD", "limit": 10_000}
    pairs = await _rows(http, f"{base}/v1/history/trade", query)
    assert pairs and {r["ticker"] for r in pairs} <= {"BTC/USD", "ETH/USD"}
    book = await http.get(
        f"{base}/v1/history/book", params={"ticker": "kraken:BTC/USD", "at": today + "T23:59:59Z"}
    )
    assert book.status_code == 200 and book.json()["ticker"] == "kraken:BTC/USD", book.text
    mixed = {"from": today, "tickers": "kraken:BTC/USD,polymarket:1"}
    refused = await http.get(f"{base}/v1/history/trade", params=mixed)
    assert refused.status_code == 400
    assert "one venue per request" in refused.json()["message"]
    day = {"date": today, "venue": "kraken"}
    quality = (await http.get(f"{base}/v1/quality", params=day)).json()
    assert quality.get("feed") == "kraken" or "(feed kraken)" in quality["message"], quality


async def _the_tui_on_a_venue(data: Path, gateway_port: int) -> None:
    """`ssmd tui --feed kraken`'s backend: the one gateway for the market views, in Kraken's
    tickers (live messages too), Kraken's connector and archiver for the actions, and
    Kraken's archiver stopped and started again through ssmd up's control socket."""
    kraken = load_environment("multi-sim", EXCHANGES, Overrides(data_dir=str(data)), feed="kraken")
    backend = Backend(kraken)
    try:
        sup = backend.supervision()
        assert backend.gateway.base_url == f"http://127.0.0.1:{gateway_port}"
        assert (sup.connector, sup.archiver) == (
            sup.endpoints["connector-kraken"],
            sup.endpoints["archiver-kraken"],
        )
        assert {m["ticker"] for m in await backend.markets()} == {"BTC/USD", "ETH/USD"}
        async with asyncio.timeout(30), contextlib.aclosing(backend.live("BTC/USD")) as live:
            subscribed = await anext(live)
            book = await anext(live)
        assert subscribed == {"type": "subscribed", "symbols": ["BTC/USD"]}
        assert (book["type"], book["ticker"]) == ("orderbook", "BTC/USD"), book
        with pytest.raises(ActionError, match="no component 'archiver-krakn'"):
            await backend.control("stop", "archiver-krakn")  # a typo is not "already stopped"
        assert await backend.control("stop", "archiver-kraken") == "archiver-kraken: stopped"
        assert backend.supervision().states["archiver-kraken"] == ("stopped", "")
        assert await backend.control("start", "archiver-kraken") == "archiver-kraken: started"
    finally:
        await backend.aclose()


async def test_one_environment_captures_three_venues_at_once(tmp_path: Path) -> None:
    """multi-sim: Kalshi (spec.feed), Polymarket and Kraken (spec.venues) on one NATS server,
    each with its simulator, sync, connector and archiver, its own stream and spool, one
    gateway serving the three (Polymarket's and Kraken's markets as `venue:ticker`), and the
    archive of each read back by feed."""
    data = tmp_path / "data"
    port = free_port()
    started = datetime.now(UTC).date()
    up = UpProcess(data, port, env="multi-sim")
    feeds = ("kalshi", "polymarket", "kraken")
    async with httpx.AsyncClient(timeout=5) as http:
        await up.start()
        try:
            await up.wait_ready(http)
            assert up.find("ssmd up ready")[0]["venues"] == list(feeds)
            health = (await http.get(f"http://127.0.0.1:{port}/v1/health")).json()
            assert (health["feed"], list(health["venues"])) == ("kalshi", list(feeds[1:]))
            for feed in feeds:
                listed = await http.get(f"http://127.0.0.1:{port}/v1/markets?venue={feed}")
                markets = listed.json()["markets"]
                assert markets, feed
                assert {m["venue"] for m in markets} == {feed}, markets[:3]
                prefix = "" if feed == "kalshi" else f"{feed}:"
                assert all(m["symbol"] == prefix + m["ticker"] for m in markets), markets[:3]
                # The gateway streams each venue: a valid book with both sides.
                symbols = [m["symbol"] for m in markets]
                book = await _a_valid_book_and_a_trade(f"ws://127.0.0.1:{port}/v1/stream", symbols)
                assert book["ticker"] in symbols
            await _each_venues_archive_over_http(http, f"http://127.0.0.1:{port}")
            assert await _markets_an_agent_sees(data, "kraken") == {"BTC/USD", "ETH/USD"}
            await _the_tui_on_a_venue(data, port)
            code = await up.stop()
        finally:
            await up.ensure_gone()
    assert code == 0, up.tail()
    started_sims = {r["component"] for r in up.find("simulator started")}
    assert started_sims == {"simulator", "simulator-polymarket", "simulator-kraken"}
    for name in ("secmaster-sync", "secmaster-sync-polymarket", "secmaster-sync-kraken"):
        assert up.find("secmaster synced", name), name
    stopped = [r["component"] for r in up.logs if r.get("msg") == "component stopped"]
    assert stopped == [
        "archiver-kraken",  # by the TUI, and started again
        "connector",
        "connector-polymarket",
        "connector-kraken",
        "archiver",
        "archiver-polymarket",
        "archiver-kraken",
        "gateway",
        "secmaster",
        "nats",
    ], up.tail()
    report = up.find("archive report")[0]
    archived = {(r["feed"], r["data_type"]) for r in report["by_data_type"]}
    assert {feed for feed, _ in archived} == set(feeds), report
    assert {(feed, "raw") for feed in feeds} <= archived
    days = (started, datetime.now(UTC).date())
    for feed in feeds:
        child = "connector" if feed == "kalshi" else f"connector-{feed}"
        received = up.find("connector stopped", child)[0]["frames_received"]
        lines = raw_lines(data, "multi-sim", feed, venue=feed != "kalshi")
        assert len(lines) == received > 0, feed
        where = {"env": "multi-sim", "data_dir": str(data), "config_dir": str(EXCHANGES)}
        trades = ssmd.data.scan("trade", *days, feed=feed, **where).collect()
        assert trades.height > 0, feed
    assert (data / "archiver" / "multi-sim" / "venues" / "kraken" / "spool").is_dir()
    # The environment's inventory covers every feed it captures; --feed narrows it.
    inventory = [SSMD, "data", "inventory", "--json", *("--env", "multi-sim")]
    inventory += ["--config-dir", str(EXCHANGES), "--data-dir", str(data)]
    every = orjson.loads(subprocess.run(inventory, capture_output=True, check=True).stdout)
    assert {r["feed"] for r in every} == set(feeds)
    one = subprocess.run([*inventory, "--feed", "kraken"], capture_output=True, check=True)
    assert {r["feed"] for r in orjson.loads(one.stdout)} == {"kraken"}
