"""The simulator and the session speak the documented protocol: the status on connect,
per-symbol acks and refusals, snapshots with the checksum, the ping/pong keep-alive and
heartbeats, a stall, and the AssetPairs listing."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import orjson
from krfix import until

from ssmd.sim.kraken import KrakenSimulator
from ssmd.sim.kraken.server import checksum
from ssmd.venues.base import Liveness
from ssmd.venues.kraken.rest import list_pairs, parse_pair, v2_symbol
from ssmd.venues.kraken.venue import KrakenCodec
from ssmd.venues.kraken.ws import KrakenSession


class Client:
    """A session on the simulator with every frame and reply kept."""

    def __init__(self, sim: KrakenSimulator, liveness: Liveness) -> None:
        self.frames: list[bytes] = []
        self.replies: list[dict[str, Any]] = []
        self.session = KrakenSession(
            sim.ws_url, None, lambda data, ns: self.frames.extend(data), liveness=liveness
        )
        self.session.on_reply = self.replies.append
        self.task: asyncio.Task[str] | None = None

    async def __aenter__(self) -> Client:
        await self.session.open()
        self.task = asyncio.create_task(self.session.run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.session.close()
        assert self.task is not None
        await self.task

    def channel(self, name: str) -> list[dict[str, Any]]:
        out = []
        for f in self.frames:
            msg = orjson.loads(f)
            if msg.get("channel") == name:
                out.append(msg)
        return out


QUIET = Liveness(ping_interval=0.2, stale_after=5.0)


async def test_status_acks_refusals_and_a_checksummed_snapshot() -> None:
    async with KrakenSimulator(pairs=2, rate=None) as sim, Client(sim, QUIET) as c:
        await until(lambda: len(c.frames) >= 1, 5, "the status on connect")
        (status,) = c.channel("status")
        assert status["data"][0]["api_version"] == "v2"
        assert isinstance(status["data"][0]["connection_id"], int)
        params = {"channel": "book", "symbol": ["BTC/USD", "XBT/USD"], "depth": 10}
        req = await c.session.request("subscribe", params)
        await until(lambda: len(c.channel("book")) == 1 and len(c.replies) == 2, 5, "acks")
        ok, refused = sorted(c.replies, key=lambda r: r["success"], reverse=True)
        assert ok["req_id"] == req and ok["result"]["depth"] == 10
        assert ok["result"]["symbol"] == "BTC/USD"
        assert refused["success"] is False and refused["symbol"] == "XBT/USD"
        assert "not supported" in refused["error"]
        (snap,) = c.channel("book")
        data = snap["data"][0]
        # Best first, at most the depth, and the checksum of what it holds.
        bids, asks = sim.levels("BTC/USD", 10)
        assert [lv["price"] for lv in data["bids"]] == sorted(
            (lv["price"] for lv in data["bids"]), reverse=True
        )
        assert len(data["asks"]) == 10
        assert data["checksum"] == checksum(sim.pair("BTC/USD"), bids, asks)
        # Numbers at the pair's precision, trailing zeros included.
        raw = next(f for f in c.frames if f.startswith(b'{"channel":"book"'))
        assert b"0000}" in raw
        # Unsubscribing what is not subscribed: the venue's refusal reads `subscribe`.
        await c.session.request("unsubscribe", {"channel": "trade", "symbol": ["BTC/USD"]})
        await until(lambda: len(c.replies) == 3, 5, "the refusal")
        assert (c.replies[2]["method"], c.replies[2]["error"]) == (
            "subscribe",
            "Subscription Not Found",
        )


async def test_updates_keep_the_codec_book_equal_to_the_venue() -> None:
    async with KrakenSimulator(pairs=3, rate=None, repeat_probability=0.3, seed=3) as sim:
        async with Client(sim, QUIET) as c:
            params = {"channel": "book", "symbol": sim.symbols(), "depth": 10}
            await c.session.request("subscribe", params)
            await until(lambda: len(c.channel("book")) == 3, 5, "the snapshots")
            for i in range(400):
                pair = sim.pairs[i % 3]
                await (sim.trade(pair) if i % 5 == 0 else sim.book_change(pair))
            sent = sim.frames_sent[1]
            await until(lambda: len(c.frames) >= sent, 5, "every frame")
        codec = KrakenCodec()
        batch = codec.normalize(c.frames, [0] * len(c.frames), 1)
        assert codec.integrity(batch) == [] and codec.checksum_mismatches == 0
        for symbol in sim.symbols():
            valid, _, _, bids, asks = codec.book(symbol) or (False, 0, 0, [], [])
            assert valid and (bids, asks) == sim.levels(symbol, 10), symbol
        # The simulator repeated prices within updates, as the venue does.
        assert any(
            len({lv["price"] for lv in m["data"][0]["bids"]}) < len(m["data"][0]["bids"])
            or len({lv["price"] for lv in m["data"][0]["asks"]}) < len(m["data"][0]["asks"])
            for m in c.channel("book")
        )


async def test_ping_pong_heartbeats_and_a_rejected_subscription() -> None:
    async with KrakenSimulator(pairs=1, rate=None) as sim, Client(sim, QUIET) as c:
        await until(lambda: c.session.pongs >= 2, 5, "pongs")
        assert c.channel("heartbeat") == []  # nothing subscribed yet
        sim.inject("reject_subscription")
        await c.session.request("subscribe", {"channel": "ticker", "symbol": ["BTC/USD"]})
        await until(lambda: len(c.replies) == 1, 5, "the refusal")
        assert c.replies[0]["success"] is False
        await c.session.request("subscribe", {"channel": "ticker", "symbol": ["BTC/USD"]})
        await until(lambda: len(c.channel("ticker")) == 1, 5, "the ticker snapshot")
        await until(lambda: len(c.channel("heartbeat")) >= 1, 5, "a heartbeat")
        assert "type" not in c.channel("heartbeat")[0]
        assert [f[0] for f in sim.faults_applied] == ["reject_subscription"]


async def test_a_stalled_connection_is_dropped_by_the_watchdog() -> None:
    async with KrakenSimulator(pairs=1, rate=None) as sim:
        session = KrakenSession(
            sim.ws_url,
            None,
            lambda data, ns: None,
            liveness=Liveness(ping_interval=0.1, ping_timeout=0.5, stale_after=0.6),
        )
        await session.open()
        task = asyncio.create_task(session.run())
        await until(lambda: session.pongs >= 1, 5, "a pong")
        sim.inject("stall")
        started = time.monotonic()
        reason = await asyncio.wait_for(task, 5)
        assert "no frame and no pong" in reason
        assert time.monotonic() - started < 3


async def test_the_listing_gives_v2_symbols_and_precisions() -> None:
    async with KrakenSimulator(pairs=3, rate=None) as sim:
        listing = await list_pairs(sim.rest_url)
        assert [p.symbol for p in listing.pairs] == ["BTC/USD", "ETH/USD", "DOGE/USD"]
        btc = listing.pairs[0]
        assert (btc.key, btc.price_decimals, btc.qty_decimals) == ("XXBTZUSD", 1, 8)
        assert btc.tradable
        async with httpx.AsyncClient() as http:
            status = await http.get(f"{sim.rest_url}/0/public/SystemStatus")
            assert status.json()["result"]["status"] == "online"
    assert v2_symbol("XBT/USDT") == "BTC/USDT" and v2_symbol("XDG/EUR") == "DOGE/EUR"
    assert parse_pair("XXBTZUSD.d", {"wsname": "XBT/USD"}) == "dark pool"
    assert parse_pair("X", {"wsname": "A/B", "pair_decimals": "1", "lot_decimals": 8}) == (
        "pair_decimals or lot_decimals unreadable"
    )
    assert parse_pair("X", []) == "not an object"
