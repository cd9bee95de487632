"""The simulator and the session speak the documented protocol: subscription forms, the
venue's refusals, the text keep-alive, a stall, and the Gamma listing's paging."""

from __future__ import annotations

import asyncio
import time

import httpx
import orjson
import pytest
from pmfix import until
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from ssmd.sim.polymarket import PolymarketSimulator
from ssmd.venues.base import Liveness
from ssmd.venues.polymarket.rest import list_markets, parse_market
from ssmd.venues.polymarket.ws import PolymarketSession


async def test_a_ping_or_a_bad_payload_before_subscribing_closes_1008() -> None:
    async with PolymarketSimulator(markets=1, rate=None) as sim:
        for first in ("PING", '{"assets_ids": ["1"]}', "hello"):
            async with connect(sim.ws_url) as ws:
                await ws.send(first)
                with pytest.raises(ConnectionClosed) as info:
                    await ws.recv()
                assert info.value.rcvd is not None
                assert (info.value.rcvd.code, info.value.rcvd.reason) == (
                    1008,
                    "invalid subscription payload",
                )


async def test_subscription_forms_dumps_and_the_venues_error_text() -> None:
    async with PolymarketSimulator(markets=2, rate=None) as sim:
        yes, no = sim.markets[0].tokens
        frames: list[bytes] = []
        errors: list[tuple[int, int, str]] = []
        session = PolymarketSession(
            sim.ws_url,
            None,
            lambda data, ns: frames.extend(data),
            liveness=Liveness(ping_interval=0.1, stale_after=5.0),
            on_stream_error=lambda *e: errors.append(e),
        )
        await session.open()
        task = asyncio.create_task(session.run())
        # An unknown token: the subscription is answered by an empty array, nothing else.
        await session.send({"type": "market", "assets_ids": ["123"]})
        await until(lambda: frames[:1] == [b"[]"], 5, "the empty dump")
        # The initial form again: the venue's error text, reported as a stream error.
        await session.send({"type": "market", "assets_ids": [yes]})
        await until(lambda: b"INVALID OPERATION" in frames, 5, "INVALID OPERATION")
        await until(lambda: errors == [(1, 0, "INVALID OPERATION")], 5, "the stream error")
        # A dynamic subscribe: the new tokens' books, worst level first.
        await session.send({"operation": "subscribe", "assets_ids": [yes, no]})
        await until(lambda: any(f.startswith(b'[{"event_type":"book"') for f in frames), 5, "books")
        dump = orjson.loads(next(f for f in frames if f.startswith(b'[{"event_type":"book"')))
        assert [b["asset_id"] for b in dump] == [yes, no]
        prices = [float(level["price"]) for level in dump[0]["bids"]]
        assert prices == sorted(prices)
        # The keep-alive: PING after subscribing, PONG back.
        await until(lambda: session.pongs >= 2, 5, "PONGs")
        await session.close()
        await task


async def test_a_stalled_connection_is_dropped_by_the_watchdog() -> None:
    async with PolymarketSimulator(markets=1, rate=None) as sim:
        session = PolymarketSession(
            sim.ws_url,
            None,
            lambda data, ns: None,
            liveness=Liveness(ping_interval=0.1, ping_timeout=0.5, stale_after=0.6),
        )
        await session.open()
        task = asyncio.create_task(session.run())
        await session.send({"type": "market", "assets_ids": list(sim.markets[0].tokens)})
        await until(lambda: session.pongs >= 1, 5, "a PONG")
        sim.inject("stall")
        started = time.monotonic()
        reason = await asyncio.wait_for(task, 5)
        assert "no frame and no pong" in reason
        assert time.monotonic() - started < 3


async def test_the_listing_reads_stringified_arrays_and_pages_within_the_caps() -> None:
    async with PolymarketSimulator(markets=230, rate=None) as sim:
        listing = await list_markets(sim.rest_url)
        assert len(listing.markets) == 230
        first = listing.markets[0]
        assert first.tokens == sim.markets[0].tokens
        assert first.outcomes == ("Yes", "No")
        assert first.min_order_size == "5"
        assert first.tradable
        async with httpx.AsyncClient() as http:
            capped = await http.get(f"{sim.rest_url}/markets", params={"limit": 500})
            assert len(capped.json()) == 100
            deep = await http.get(f"{sim.rest_url}/markets", params={"offset": 10_001})
            assert deep.status_code == 422
    assert parse_market({"conditionId": "0x1", "clobTokenIds": "not json"}) == (
        "clobTokenIds unreadable"
    )
    assert parse_market([]) == "not an object"
