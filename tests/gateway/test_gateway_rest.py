"""REST: /v1/markets from the stream and from the security master, filters and cursor
pages, one market, recent trades, health, metrics, the web page; and the pieces behind
them (number rendering, the bounded trade rings)."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import time
from pathlib import Path
from typing import Any

import pytest

from _support.gwfix import (
    CENT,
    E6,
    Client,
    gateway_settings,
    publisher,
    running_gateway,
    snapshot,
    status,
    trade,
)
from ssmd.exceptions import BadRequest
from ssmd.gateway import render
from ssmd.gateway.markets import Filters, decode_cursor, encode_cursor
from ssmd.gateway.trades import TradeLog
from ssmd.secmaster.db import Store
from ssmd.testing.nats import nats_server


def lifecycle(ticker: str, event_type: str, **kw: Any) -> dict[str, Any]:
    return {"kind": "lifecycle", "ticker": ticker, "event_type": event_type, **kw}


STREAM_MARKETS = [f"KXA-26JUL20-T{i}" for i in range(7)] + ["KXB-26JUL20-T69499.99"]


async def test_markets_from_the_stream(tmp_path: Path) -> None:
    async with nats_server(tmp_path / "nats") as srv, publisher(srv.url) as pub:
        for i, t in enumerate(STREAM_MARKETS):
            await pub.publish(snapshot(t, [(10 * CENT, E6)], [], sid=i + 1))
        await pub.publish(
            lifecycle(
                STREAM_MARKETS[0],
                "created",
                event_ticker="KXA-26JUL20",
                title="Bitcoin above 100k?",
                open_ts=1_784_557_805 * 10**9,
            ),
            lifecycle(STREAM_MARKETS[0], "activated"),
            status(STREAM_MARKETS[1], "closed"),
            lifecycle(STREAM_MARKETS[2], "deactivated", is_deactivated=True),
            trade(STREAM_MARKETS[0], 12 * CENT, 3 * E6, seq=1),
        )
        async with running_gateway(gateway_settings(srv.url)) as gw:
            r = await gw.aget("/v1/markets", params={"limit": 3})
            assert r.status_code == 200
            page = r.json()
            assert [m["ticker"] for m in page["markets"]] == sorted(STREAM_MARKETS)[:3]
            first = page["markets"][0]
            assert first["ticker"] == STREAM_MARKETS[0]
            assert first["title"] == "Bitcoin above 100k?" and first["status"] == "open"
            assert first["event_ticker"] == "KXA-26JUL20" and first["series_ticker"] == "KXA"
            assert first["open_time"] == "2026-07-20T14:30:05Z"
            assert first["source"] == "stream"
            assert first["book"] == {"best_bid": [0.1, 1], "best_ask": None, "valid": True}
            assert first["last_trade"]["price"] == 0.12
            # Every page after the first from its cursor, until there is none.
            seen = [m["ticker"] for m in page["markets"]]
            cursor = page["next_cursor"]
            while cursor:
                nxt = (await gw.aget("/v1/markets", params={"limit": 3, "cursor": cursor})).json()
                seen += [m["ticker"] for m in nxt["markets"]]
                cursor = nxt["next_cursor"]
            assert seen == sorted(STREAM_MARKETS)
            statuses = await gw.aget("/v1/markets", params={"status": "closed,halted"})
            assert [m["ticker"] for m in statuses.json()["markets"]] == STREAM_MARKETS[1:3]
            search = await gw.aget("/v1/markets", params={"q": "bitcoin"})
            assert [m["ticker"] for m in search.json()["markets"]] == [STREAM_MARKETS[0]]
            dotted = await gw.aget("/v1/markets", params={"q": "69499.99", "series": "KXB"})
            assert [m["ticker"] for m in dotted.json()["markets"]] == [STREAM_MARKETS[-1]]
            event = await gw.aget("/v1/markets", params={"event": "KXA-26JUL20"})
            assert [m["ticker"] for m in event.json()["markets"]] == [STREAM_MARKETS[0]]
            one = await gw.aget(f"/v1/markets/{STREAM_MARKETS[-1]}")
            assert one.status_code == 200 and one.json()["ticker"] == STREAM_MARKETS[-1]
            for path, params, code in [
                ("/v1/markets/NOPE-1", {}, 404),
                ("/v1/markets/NOPE-1/trades", {}, 404),
                ("/v1/markets", {"limit": 1001}, 400),
                ("/v1/markets", {"limit": 0}, 400),
                ("/v1/markets", {"cursor": "%%%"}, 400),
                ("/v1/markets", {"status": "live"}, 400),
                (f"/v1/markets/{STREAM_MARKETS[0]}/trades", {"limit": "x"}, 400),
            ]:
                bad = await gw.aget(path, params=params)
                assert bad.status_code == code, (path, params)
                body = bad.json()
                assert body["type"] == "error" and body["message"]
                assert body["code"] == ("not_found" if code == 404 else "bad_request")


async def test_markets_from_the_security_master(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "secmaster.sqlite3")
    store.migrate()
    rows = [
        {
            "ticker": f"KXS-26JUL20-T{i:02d}",
            "event_ticker": "KXS-26JUL20" if i < 30 else "KXS-26JUL21",
            "series_ticker": "KXS",
            "title": "Rain in NYC?" if i % 2 else "Snow in NYC?",
            "yes_sub_title": f"{i} inches",
            "status": "open" if i < 40 else "settled",
            "status_text": "active",
            "settlement_value_e6": None if i < 40 else E6,
            "last_price_e6": 350_000,
            "volume_e6": 2_233_487_480_000,
        }
        for i in range(45)
    ]
    store.apply_markets(rows)
    store.close()
    async with nats_server(tmp_path / "nats") as srv, publisher(srv.url) as pub:
        await pub.publish(snapshot("KXS-26JUL20-T03", [(33 * CENT, 4 * E6)], []))
        settings = dataclasses.replace(
            gateway_settings(srv.url), store=lambda: Store.open(tmp_path / "secmaster.sqlite3")
        )
        async with running_gateway(settings) as gw:
            page = (await gw.aget("/v1/markets", params={"limit": 1000})).json()
            assert len(page["markets"]) == 45 and page["next_cursor"] is None
            m3 = page["markets"][3]
            assert m3["source"] == "secmaster" and m3["title"] == "Rain in NYC?"
            assert m3["yes_sub_title"] == "3 inches" and m3["last_price"] == 0.35
            assert m3["volume"] == 2233487.48
            assert m3["book"] == {"best_bid": [0.33, 4], "best_ask": None, "valid": True}
            settled = (await gw.aget("/v1/markets", params={"status": "settled"})).json()
            assert [m["settlement_value"] for m in settled["markets"]] == [1] * 5
            rain = (
                await gw.aget(
                    "/v1/markets", params={"q": "rain", "event": "KXS-26JUL20", "limit": 10}
                )
            ).json()
            assert len(rain["markets"]) == 10 and rain["next_cursor"]
            more = await gw.aget(
                "/v1/markets",
                params={"q": "rain", "event": "KXS-26JUL20", "cursor": rain["next_cursor"]},
            )
            tickers = [m["ticker"] for m in rain["markets"] + more.json()["markets"]]
            assert tickers == [r["ticker"] for r in rows[:30] if "Rain" in str(r["title"])]
            # A market only the security master knows can be subscribed to; a name neither
            # knows cannot.
            only_store = await gw.aget("/v1/markets/KXS-26JUL20-T44")
            assert only_store.json()["status"] == "settled"
            async with Client.connect(gw.ws) as c:
                await c.send({"action": "subscribe", "symbols": ["KXS-26JUL20-T44", "NOPE"]})
                assert await c.recv() == {"type": "subscribed", "symbols": ["KXS-26JUL20-T44"]}
                assert (await c.recv())["code"] == "unknown_symbol"
                book = await c.recv()
                assert (book["bids"], book["asks"], book["valid"]) == ([], [], False)
            # A sync writing at the same time does not disturb the reads.
            writer = Store.open(tmp_path / "secmaster.sqlite3")
            with writer.transaction():
                writer.apply_markets([{**rows[0], "title": "Renamed"}])
                during = await gw.aget("/v1/markets", params={"limit": 1})
                assert during.status_code == 200
            writer.close()
            after = (await gw.aget("/v1/markets", params={"limit": 1})).json()
            assert after["markets"][0]["title"] == "Renamed"


async def all_pages(gw: Any, limit: int, **params: str) -> list[dict[str, Any]]:
    """Every market of a listing, following next_cursor page by page."""
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        r = await gw.aget("/v1/markets", params=query)
        assert r.status_code == 200, r.text
        out += r.json()["markets"]
        cursor = r.json()["next_cursor"]
        if not cursor:
            return out


async def test_markets_most_active_first(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "secmaster.sqlite3")
    store.migrate()
    # Settled markets sort first by ticker (KXA < KXS): sort=activity puts them last.
    settled = [f"KXA-26JUL19-T{i}" for i in range(3)]
    opened = [f"KXS-26JUL20-T{i:02d}" for i in range(8)]
    store.apply_markets(
        [{"ticker": t, "series_ticker": "KXA", "status": "settled"} for t in settled]
        + [{"ticker": t, "series_ticker": "KXS", "status": "open"} for t in opened]
    )
    store.close()
    now = time.time_ns()
    busy, second, earlier = opened[5], opened[6], opened[2]
    async with nats_server(tmp_path / "nats") as srv, publisher(srv.url) as pub:
        seq = itertools.count(1)
        for ticker, n, age_s in (
            (busy, 5, 0),
            (second, 3, 0),
            (earlier, 8, 3600),
            (settled[1], 9, 0),
        ):
            for _ in range(n):
                rec = trade(ticker, 40 * CENT, E6, seq=next(seq))
                await pub.publish({**rec, "exchange_ts": now - age_s * 10**9})
        settings = dataclasses.replace(
            gateway_settings(srv.url), store=lambda: Store.open(tmp_path / "secmaster.sqlite3")
        )
        async with running_gateway(settings) as gw:
            assert [m["ticker"] for m in await all_pages(gw, 1000)] == settled + opened
            # Open markets that traded, the most active first (trades an hour old weigh
            # little), then the other open markets, then the rest; any page size.
            want = [busy, second, earlier]
            want += [t for t in opened if t not in want] + settled
            for limit in (1, 3, 4, 1000):
                got = await all_pages(gw, limit, sort="activity")
                assert [m["ticker"] for m in got] == want, limit
            ranked = {m["ticker"]: m["activity"] for m in got}
            assert 4.9 < ranked[busy] <= 5 and 2.9 < ranked[second] <= 3
            assert 0 < ranked[earlier] < 0.05 and ranked[opened[0]] == 0
            assert ranked[settled[1]] > 5  # busy, but settled: not at the top
            # Filters apply to every part.
            got = await all_pages(gw, 2, sort="activity", q="T0", status="open")
            assert [m["ticker"] for m in got] == [t for t in want if t in opened]
            settled_only = await all_pages(gw, 2, sort="activity", status="settled")
            assert [m["ticker"] for m in settled_only] == settled
            for params in ({"sort": "volume"}, {"sort": "activity", "cursor": encode_cursor("x")}):
                r = await gw.aget("/v1/markets", params=params)
                assert r.status_code == 400 and r.json()["code"] == "bad_request"


async def test_recent_trades_newest_first_and_bounded(tmp_path: Path) -> None:
    t = "KXT-26JUL20-T1"
    async with nats_server(tmp_path / "nats") as srv, publisher(srv.url) as pub:
        # Before the gateway starts: read back from the stream at start.
        for n in range(1, 6):
            await pub.publish({**trade(t, n * CENT, E6, seq=n), "exchange_ts": n * 10**6})
        settings = gateway_settings(srv.url, trades_per_ticker=8)
        async with running_gateway(settings) as gw:
            r = (await gw.aget(f"/v1/markets/{t}/trades")).json()
            assert r["ticker"] == t
            assert [x["price"] for x in r["trades"]] == [0.05, 0.04, 0.03, 0.02, 0.01]
            assert r["trades"][0] == {
                "type": "trade",
                "ticker": t,
                "price": 0.05,
                "size": 1,
                "side": "buy",
                "ts": 5,
            }
            for n in range(6, 12):
                await pub.publish({**trade(t, n * CENT, E6, seq=n), "exchange_ts": n * 10**6})

            async def eleven() -> None:
                while (
                    json.loads((await gw.aget(f"/v1/markets/{t}/trades?limit=1")).text)["trades"][
                        0
                    ]["price"]
                    != 0.11
                ):
                    await asyncio.sleep(0.02)

            await asyncio.wait_for(eleven(), 10)
            r = (await gw.aget(f"/v1/markets/{t}/trades", params={"limit": 3})).json()
            assert [x["price"] for x in r["trades"]] == [0.11, 0.1, 0.09]
            r = (await gw.aget(f"/v1/markets/{t}/trades", params={"limit": 1000})).json()
            assert len(r["trades"]) == 8  # the ring's bound


async def test_health_metrics_and_page(tmp_path: Path) -> None:
    async with nats_server(tmp_path / "nats") as srv, publisher(srv.url) as pub:
        await pub.publish(snapshot("KXH-1", [(10 * CENT, E6)], []))
        settings = gateway_settings(srv.url, stale_after=600.0)
        async with running_gateway(settings) as gw:
            r = await gw.aget("/v1/health")
            assert r.status_code == 200
            body = r.json()
            assert body["status"] == "ok" and body["problems"] == []
            assert (body["env"], body["feed"]) == ("gwtest", "kalshi")
            assert body["nats"]["connected"] and body["stream"]["ready"]
            assert body["stream"]["lag"] == 0 and body["connector"]["last_record_age_s"] < 60
            metrics = await gw.aget("/metrics")
            assert metrics.headers["content-type"].startswith("text/plain")
            for name in (
                "ssmd_gateway_clients_connected",
                "ssmd_gateway_messages_sent_total",
                "ssmd_gateway_subscriptions_active",
                "ssmd_gateway_slow_disconnects_total",
                "ssmd_gateway_conflated_total",
                "ssmd_gateway_auth_failures_total",
                "ssmd_gateway_stream_lag_messages",
            ):
                assert f"# TYPE {name}" in metrics.text
            assert "ssmd_gateway_ready 1" in metrics.text
            page = await gw.aget("/")
            if settings.static_dir.joinpath("index.html").exists():
                assert page.status_code == 200 and "<html" in page.text.lower()
            docs = await gw.aget("/openapi.json")
            assert "/v1/markets/{symbol}/trades" in docs.json()["paths"]
        # Stale: the last record is older than stale_after.
        await pub.publish(snapshot("KXH-2", [(10 * CENT, E6)], [], sid=2))
        async with running_gateway(gateway_settings(srv.url, stale_after=0.5)) as gw:

            async def stale() -> dict[str, Any]:
                while True:
                    r = await gw.aget("/v1/health")
                    if r.status_code == 503:
                        return dict(r.json())
                    await asyncio.sleep(0.05)

            body = await asyncio.wait_for(stale(), 10)
            assert body["status"] == "unavailable" and "old" in body["problems"][0]


async def test_health_and_subscriptions_wait_for_the_stream(tmp_path: Path) -> None:
    async with (
        nats_server(tmp_path / "nats") as srv,
        running_gateway(gateway_settings(srv.url), ready=False) as gw,
    ):
        r = await gw.aget("/v1/health")
        assert r.status_code == 503 and "does not exist" in r.json()["problems"][0]
        # A client subscribing before the gateway is ready gets the book once it is.
        async with Client.connect(f"{gw.ws}?symbols=KXW-1") as c:
            assert await c.recv() == {"type": "subscribed", "symbols": ["KXW-1"]}
            async with publisher(srv.url) as pub:  # creates the stream
                await pub.publish(snapshot("KXW-1", [(10 * CENT, E6)], []))

                async def ok() -> None:
                    while (await gw.aget("/v1/health")).status_code != 200:
                        await asyncio.sleep(0.05)

                await asyncio.wait_for(ok(), 15)
                book = await c.recv()
                assert book["type"] == "orderbook" and book["bids"] == [[0.1, 1]]


def test_numbers_render_exactly() -> None:
    assert render.price(999_000) == 0.999 and render.price(1) == 0.000001
    assert render.price(None) is None and render.size(None) is None
    assert render.size(10 * E6) == 10 and isinstance(render.size(10 * E6), int)
    assert render.size(2_233_487_480_000) == 2233487.48
    assert render.size(1) == 0.000001
    text = render.orderbook("X", [(440_000, 100 * E6)], [(460_000, 150_500_000)], True, 7)
    assert text == (
        '{"type":"orderbook","ticker":"X","bids":[[0.44,100]],"asks":[[0.46,150.5]],'
        '"valid":true,"ts":7}'
    )
    rec = {"ticker": "X", "price_e6": 450_000, "size_e6": 10 * E6, "exchange_ts": 0}
    assert json.loads(render.trade({**rec, "receive_ts": 1_702_540_800_123_456_789})) == {
        "type": "trade",
        "ticker": "X",
        "price": 0.45,
        "size": 10,
        "side": None,
        "ts": 1702540800123,
    }


def test_trade_rings_are_bounded_per_market_and_in_total() -> None:
    log = TradeLog(per_ticker=3, total=10)
    for n in range(100):
        log.add("HOT", f"h{n}")
    assert log.recent("HOT", 10) == ["h99", "h98", "h97"] and len(log) == 3
    for n in range(9):
        log.add(f"M{n}", f"m{n}")
    # 12 trades offered, 10 kept: the oldest of the gateway go first, whatever market.
    assert len(log) == 10
    assert log.recent("HOT", 10) == ["h99"] and log.recent("M0", 5) == ["m0"]
    for n in range(10_000):
        log.add(f"X{n % 50}", "x")
    assert len(log) == 10 and log.markets() <= 10 and len(log._order) <= 20
    assert log.recent("NONE", 5) == [] and log.last("NONE") is None


def test_filters_and_cursors() -> None:
    f = Filters.parse("open, halted", "KXA,KXB", None, "  rain ")
    assert f == Filters(("open", "halted"), ("KXA", "KXB"), (), "rain")
    with pytest.raises(BadRequest, match="not a market status"):
        Filters.parse("active", None, None, None)
    for t in ("KXBTCD-26MAR1213-T69499.99", "A", "é-unicode"):
        assert decode_cursor(encode_cursor(t)) == t
    assert decode_cursor(None) is None
    with pytest.raises(BadRequest):
        decode_cursor("!!")
