from __future__ import annotations

import asyncio
import urllib.request
from decimal import Decimal

import orjson
import pytest
from kalshi_python_async.models import (
    GetEventsResponse,
    GetMarketOrderbookResponse,
    GetMarketResponse,
    GetMarketsResponse,
    GetSeriesListResponse,
    GetTradesResponse,
)

from _support.simhelp import as_decimal, manual_sim


async def test_rest_validates_with_official_sdk_models_era_b() -> None:
    sim, clock = manual_sim(era="B", seed=8, rate=200.0)
    async with sim:
        clock.advance(5.0)
        await sim.wait_idle()
        api = sim.rest

        def get(path: str, **q: str) -> dict[str, object]:
            status, body = api.handle("/trade-api/v2" + path, {k: [v] for k, v in q.items()})
            assert status == 200, body
            out = orjson.loads(body)
            assert isinstance(out, dict)
            return out

        markets = GetMarketsResponse.from_dict(get("/markets", limit="1000"))
        assert markets is not None and len(markets.markets) == len(sim.universe.markets)
        t = markets.markets[0].ticker
        assert GetMarketResponse.from_dict(get(f"/markets/{t}")) is not None
        assert GetMarketOrderbookResponse.from_dict(get(f"/markets/{t}/orderbook")) is not None
        trades = GetTradesResponse.from_dict(get("/markets/trades"))
        assert trades is not None and trades.trades
        assert GetEventsResponse.from_dict(get("/events", with_nested_markets="true")) is not None
        assert GetSeriesListResponse.from_dict(get("/series")) is not None


async def test_pagination_filters_and_errors() -> None:
    sim, _ = manual_sim(markets=60)
    async with sim:
        api = sim.rest
        seen: list[str] = []
        cursor = ""
        while True:
            status, body = api.handle("/trade-api/v2/markets", {"limit": ["7"], "cursor": [cursor]})
            page = orjson.loads(body)
            seen += [m["ticker"] for m in page["markets"]]
            cursor = page["cursor"]
            if not cursor:
                break
        assert sorted(seen) == sorted(sim.universe.markets)
        status, body = api.handle("/trade-api/v2/markets", {"status": ["open"]})
        assert {m["status"] for m in orjson.loads(body)["markets"]} == {"active"}
        assert api.handle("/trade-api/v2/markets", {"status": ["active"]})[0] == 400
        assert api.handle("/trade-api/v2/markets", {"status": ["open,closed"]})[0] == 400
        assert api.handle("/trade-api/v2/markets", {"limit": ["1001"]})[0] == 400
        assert (
            api.handle("/trade-api/v2/markets", {"min_close_ts": ["1"], "min_created_ts": ["1"]})[0]
            == 400
        )
        status, body = api.handle("/trade-api/v2/markets/KXNOPE", {})
        assert status == 404 and orjson.loads(body)["error"]["code"] == "market_not_found"
        m = orjson.loads(
            api.handle(f"/trade-api/v2/markets/{next(iter(sim.universe.markets))}", {})[1]
        )["market"]
        assert "yes_bid" not in m and "category" not in m and m["yes_bid_dollars"].count(".") == 1


@pytest.mark.parametrize("limit", ["0", "abc"])
async def test_bad_limit(limit: str) -> None:
    sim, _ = manual_sim()
    async with sim:
        assert sim.rest.handle("/trade-api/v2/events", {"limit": [limit]})[0] == 400


@pytest.mark.parametrize("ttl", [15.0, None])
async def test_rest_edge_cache_lag_only_when_configured(ttl: float | None) -> None:
    sim, clock = manual_sim(seed=8, rest_cache_ttl=ttl)
    async with sim:
        t = sorted(m.ticker for m in sim.universe.active())[0]

        def get() -> tuple[str | None, dict[str, list[list[str]]]]:
            with urllib.request.urlopen(f"{sim.rest_url}/markets/{t}/orderbook") as r:
                return r.headers.get("Cache-Control"), orjson.loads(r.read())["orderbook_fp"]

        def matches(fp: dict[str, list[list[str]]]) -> bool:
            book = sim.book(t)
            return all(
                {Decimal(p): Decimal(s) for p, s in fp.get(f"{side}_dollars", [])}
                == as_decimal(getattr(book, side))
                for side in ("yes", "no")
            )

        header, first = await asyncio.to_thread(get)
        assert matches(first)
        while matches(first):  # let the order flow change this book (well within 15 s)
            clock.advance(1.0)
            await sim.wait_idle()
        assert clock.now() - sim.started_at < 15.0
        header2, second = await asyncio.to_thread(get)
        if ttl is None:
            assert header is None and header2 is None
            assert matches(second)  # fresh at once
            assert sim.truth.rest_cache_hits == 0
            return
        assert header == header2 == "public, max-age=15"
        assert second == first and not matches(second)  # served stale from the edge cache
        clock.set(sim.started_at + 15.0)
        await sim.wait_idle()
        _, third = await asyncio.to_thread(get)
        assert matches(third)  # refreshed once the entry is 15 s old
        assert sim.truth.rest_cache_hits == 1
