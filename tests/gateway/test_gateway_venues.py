"""One gateway serving several venues: the own venue's tickers as they are, a further
venue's as `venue:ticker`, each read from its own stream. The same ticker on two venues
stays two markets in books, trades, statuses, REST and the agents' client."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar, cast

import httpx
import orjson
import pytest

from _support.gwfix import (
    CENT,
    E6,
    Client,
    Publisher,
    Truth,
    delta,
    expected_book,
    gateway_settings,
    publisher,
    running_gateway,
    snapshot,
    status,
    trade,
    until,
)
from ssmd import issues
from ssmd.config import ResolvedEnvironment
from ssmd.config.models.environment import Entitlements, TenantLimits
from ssmd.exceptions import GatewayError
from ssmd.gateway import GatewaySettings
from ssmd.gateway.auth import KeyRing, new_key
from ssmd.gateway.tenants import Policy, Tenants
from ssmd.mcp.gateway import GatewayClient
from ssmd.mcp.tools import Tools
from ssmd.secmaster.db import Store
from ssmd.testing.nats import nats_server

SAME = "SAME-25-X"  # a ticker both venues list
OTHER = "kraken:" + SAME
PAIR = "XBT/USD"  # a ticker with a '/', in REST paths too


def two_venues(url: str) -> GatewaySettings:
    return replace(gateway_settings(url), venues=(gateway_settings(url, "kraken"),))


def book_of(truth: Truth, ticker: str, symbol: str) -> dict[str, object]:
    view = truth.books.view(ticker)
    assert view is not None
    return expected_book(symbol, view.bids, view.asks, view.valid)


def without_ts(msg: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in msg.items() if k != "ts"}


@contextlib.asynccontextmanager
async def two_streams(tmp_path: Path) -> AsyncIterator[tuple[str, Publisher, Publisher]]:
    """A NATS server with the own venue's stream and Kraken's, each with a book of SAME
    (different books); its URL and the two publishers."""
    async with (
        nats_server(tmp_path / "nats") as srv,
        publisher(srv.url) as own,
        publisher(srv.url, "kraken") as further,
    ):
        await own.publish(snapshot(SAME, [(40 * CENT, 10 * E6)], [(55 * CENT, 5 * E6)]))
        await further.publish(snapshot(SAME, [(61 * CENT, 7 * E6)], [(30 * CENT, 2 * E6)]))
        yield srv.url, own, further


async def test_two_venues_with_the_same_ticker_stay_two_markets(tmp_path: Path) -> None:
    async with two_streams(tmp_path) as (url, own, further):
        await further.publish(trade(SAME, 62 * CENT, 3 * E6, seq=1))
        async with (
            running_gateway(two_venues(url)) as gw,
            Client.connect(gw.ws) as c,
        ):
            await c.send({"action": "subscribe", "symbols": [SAME, OTHER]})
            assert await c.recv() == {"type": "subscribed", "symbols": [SAME, OTHER]}
            books = {}
            while len(books) < 2:
                msg = await c.recv()
                assert msg["type"] == "orderbook", msg
                books[msg["ticker"]] = without_ts(msg)
            assert books == {
                SAME: book_of(own.truth, SAME, SAME),
                OTHER: book_of(further.truth, SAME, OTHER),
            }
            assert books[SAME] != {**books[OTHER], "ticker": SAME}

            # Live: a change, a trade and a status of the further venue reach its symbol only.
            await further.publish(delta(SAME, "yes", 61 * CENT, -4 * E6, seq=2))
            changed = await c.recv_until(lambda m: m["type"] == "orderbook")
            assert without_ts(changed) == book_of(further.truth, SAME, OTHER)
            await further.publish(trade(SAME, 60 * CENT, 1 * E6, "no", seq=3))
            sold = await c.recv_until(lambda m: m["type"] == "trade")
            assert (sold["ticker"], sold["price"], sold["side"]) == (OTHER, 0.6, "sell")
            await further.publish(status(SAME, "closed"))
            closed = await c.recv_until(lambda m: m["type"] == "status")
            assert (closed["ticker"], closed["status"]) == (OTHER, "closed")
            await own.publish(trade(SAME, 41 * CENT, 2 * E6, seq=1))
            bought = await c.recv_until(lambda m: m["type"] == "trade")
            assert (bought["ticker"], bought["price"]) == (SAME, 0.41)

            # A prefix that is no further venue's is an own venue's ticker: unknown here.
            await c.send({"action": "subscribe", "symbols": ["polymarket:" + SAME]})
            refused = await c.recv_until(lambda m: m["type"] == "error")
            assert refused["code"] == "unknown_symbol"

            # REST: each venue's markets, its trades under its symbol.
            mine = (await gw.aget("/v1/markets")).json()["markets"]
            theirs = (await gw.aget("/v1/markets", params={"venue": "kraken"})).json()["markets"]
            assert [(m["ticker"], m["symbol"], m["venue"]) for m in mine] == [
                (SAME, SAME, "kalshi")
            ]
            assert [(m["ticker"], m["symbol"], m["venue"]) for m in theirs] == [
                (SAME, OTHER, "kraken")
            ]
            assert theirs[0]["status"] == "closed" and mine[0]["status"] != "closed"
            bad = await gw.aget("/v1/markets", params={"venue": "coinbase"})
            assert bad.status_code == 400 and "kalshi, kraken" in bad.json()["message"]
            trades = (await gw.aget(f"/v1/markets/{OTHER}/trades")).json()
            assert trades["ticker"] == OTHER
            newest_first = [(OTHER, 0.6), (OTHER, 0.62)]  # the live one, the one replayed
            assert [(t["ticker"], t["price"]) for t in trades["trades"]] == newest_first
            one = (await gw.aget(f"/v1/markets/{OTHER}")).json()
            assert (one["venue"], one["book"]["best_bid"]) == ("kraken", [0.61, 3])

            health = (await gw.aget("/v1/health")).json()
            assert health["status"] == "ok", health
            assert health["feed"] == "kalshi" and list(health["venues"]) == ["kraken"]
            assert health["venues"]["kraken"]["stream"]["ready"] is True
            assert health["venues"]["kraken"]["nats"]["stream"] == "SSMD_GWTEST_KRAKEN"


async def test_an_agents_client_speaks_its_venues_tickers(tmp_path: Path) -> None:
    """The client of `ssmd mcp serve --feed kraken` and `ssmd tui --feed kraken`: the
    venue's own tickers in and out, the prefix added and removed at the gateway."""
    async with two_streams(tmp_path) as (url, _, further):
        await further.publish(snapshot(PAIR, [(50 * CENT, 1 * E6)], [(49 * CENT, 1 * E6)], sid=2))
        await further.publish(trade(PAIR, 62 * CENT, 3 * E6, seq=1))
        async with running_gateway(two_venues(url)) as gw:
            client = GatewayClient(gw.http, venue="kraken")
            try:
                page = await client.markets()
                listed = [(m["ticker"], m["venue"]) for m in page["markets"]]
                assert listed == [(SAME, "kraken"), (PAIR, "kraken")]
                assert (await client.market(PAIR))["symbol"] == "kraken:" + PAIR
                trades = await client.trades(PAIR, 10)
                assert trades["ticker"] == PAIR and len(trades["trades"]) == 1
                assert trades["trades"][0]["ticker"] == PAIR
                assert without_ts(await client.book(SAME)) == book_of(further.truth, SAME, SAME)
                assert without_ts(await client.book(PAIR)) == book_of(further.truth, PAIR, PAIR)
                # The stream's replies name the venue's tickers too.
                async with contextlib.aclosing(client.stream(PAIR)) as live:
                    assert await anext(live) == {"type": "subscribed", "symbols": [PAIR]}
            finally:
                await client.aclose()
            elsewhere = GatewayClient(gw.http, venue="polymarket")
            try:
                with pytest.raises(GatewayError, match="serves kalshi, kraken, not polymarket"):
                    await elsewhere.markets()
            finally:
                await elsewhere.aclose()
        # A gateway run for the venue alone serves its tickers as they are.
        async with running_gateway(gateway_settings(url, "kraken")) as alone:
            client = GatewayClient(alone.http, venue="kraken")
            try:
                assert (await client.book(SAME))["ticker"] == SAME
                assert (await client.markets())["markets"][0]["symbol"] == SAME
            finally:
                await client.aclose()


# ---- tenants, data issues and subscriptions across venues ----------------------------------


class CountedStore(Store):
    """The security master store as the gateway holds it, counting the queries it runs."""

    queries: ClassVar[list[str]] = []

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        CountedStore.queries.append(sql)
        return super().query(sql, params)


def kraken_store(db: Path) -> None:
    """Kraken's markets in the security master: SAME and PAIR, and two more pairs."""
    with Store.open(db) as store:
        store.migrate()
        store.apply_markets(
            [
                {"ticker": t, "venue": "kraken", "status": "open"}
                for t in (SAME, PAIR, "ETH/USD", "SOL/USD")
            ]
        )


def tenants_of_two_venues() -> tuple[KeyRing, Tenants, dict[str, str]]:
    """The operator's key and two tenants of a gateway serving kalshi and kraken: `home`
    sees kalshi only, `spot` Kraken's XBT pairs only; and the keys by who holds them."""
    op, op_line = new_key("ops")
    home, home_line = new_key("home-1")
    spot, spot_line = new_key("spot-1")
    keys = KeyRing.merge(
        {
            None: KeyRing.parse(op_line),
            "home": KeyRing.parse(home_line),
            "spot": KeyRing.parse(spot_line),
        }
    )
    further = ("kraken",)
    tenants = Tenants(
        {
            "home": Policy(
                "home", "kalshi", Entitlements(venues=["kalshi"]), TenantLimits(), None,
                ("home-1",), further,
            ),
            "spot": Policy(
                "spot", "kalshi", Entitlements(venues=["kraken"], series=["XBT*"]),
                TenantLimits(), None, ("spot-1",), further,
            ),
        }
    )  # fmt: skip
    return keys, tenants, {"ops": op, "home": home, "spot": spot}


async def test_a_tenant_sees_a_further_venue_only_as_entitled(tmp_path: Path) -> None:
    db = tmp_path / "secmaster.sqlite3"
    kraken_store(db)
    keys, tenants, key = tenants_of_two_venues()
    async with two_streams(tmp_path) as (url, _, further):
        await further.publish(snapshot(PAIR, [(50 * CENT, 1 * E6)], [(49 * CENT, 1 * E6)], sid=2))
        await further.publish(trade(PAIR, 62 * CENT, 3 * E6, seq=1))
        settings = replace(
            gateway_settings(url, keys=keys, tenants=tenants),
            venues=(replace(gateway_settings(url, "kraken"), store=lambda: CountedStore.open(db)),),
        )
        async with running_gateway(settings) as gw:

            def h(who: str) -> dict[str, str]:
                return {"X-API-Key": key[who]}

            # The WebSocket: a further venue's symbol outside the tenant's venues is refused.
            async with Client.connect(f"{gw.ws}?api_key={key['home']}") as c:
                await c.send({"action": "subscribe", "symbols": [SAME, OTHER]})
                refused = await c.recv_until(lambda m: m["type"] == "error")
                assert refused["code"] == "forbidden_symbol" and OTHER in refused["message"]
                assert "venue kalshi" in refused["message"]
                subscribed = await c.recv_until(lambda m: m["type"] == "subscribed")
                assert subscribed["symbols"] == [SAME]

            # REST: its markets and trades are 403, by symbol, '/' in the path as it is.
            for path in (f"/v1/markets/{OTHER}", f"/v1/markets/kraken:{PAIR}/trades"):
                forbidden = await gw.aget(path, headers=h("home"))
                assert forbidden.status_code == 403, path
                assert forbidden.json()["code"] == "forbidden"

            # Its listing is empty at once: the venue's security master is not paged through.
            CountedStore.queries.clear()
            for sort in ("ticker", "activity"):
                params = {"venue": "kraken", "sort": sort, "limit": 1}
                listed = await gw.aget("/v1/markets", params=params, headers=h("home"))
                assert listed.json() == {"markets": [], "next_cursor": None}
            assert CountedStore.queries == []

            # A tenant of Kraken's XBT pairs lists those alone; the operator every market.
            async def listed_by(who: str) -> list[str]:
                params = {"venue": "kraken", "limit": 1000}
                page = (await gw.aget("/v1/markets", params=params, headers=h(who))).json()
                return [m["symbol"] for m in page["markets"]]

            assert await listed_by("spot") == ["kraken:" + PAIR]
            # Its patterns narrow the store's query: the first page holds its market, where
            # reading the venue's markets in ticker order took three.
            CountedStore.queries.clear()
            params = {"venue": "kraken", "limit": 1}
            page = (await gw.aget("/v1/markets", params=params, headers=h("spot"))).json()
            assert [m["symbol"] for m in page["markets"]] == ["kraken:" + PAIR]
            assert len(CountedStore.queries) == 1, CountedStore.queries
            assert await listed_by("ops") == [
                "kraken:" + t for t in ("ETH/USD", SAME, "SOL/USD", PAIR)
            ]
            assert CountedStore.queries, "the operator's listing reads the store"
            trades = await gw.aget(f"/v1/markets/kraken:{PAIR}/trades", headers=h("spot"))
            assert [t["ticker"] for t in trades.json()["trades"]] == ["kraken:" + PAIR]


async def test_unsubscribing_a_further_venues_symbol_keeps_the_same_ticker_of_the_own(
    tmp_path: Path,
) -> None:
    async with (
        two_streams(tmp_path) as (url, own, further),
        running_gateway(two_venues(url)) as gw,
        Client.connect(gw.ws) as c,
    ):
        await c.send({"action": "subscribe", "symbols": [SAME, OTHER]})
        assert (await c.recv())["symbols"] == [SAME, OTHER]
        await c.send({"action": "unsubscribe", "symbols": [OTHER]})
        gone = await c.recv_until(lambda m: m["type"] == "unsubscribed")
        assert gone["symbols"] == [OTHER]
        assert set(gw.gw.hub.subs) == {SAME}
        # Kraken's trade, applied before the own one is published, reaches nobody.
        kraken = gw.gw.feeds["kraken"].state.trades
        await further.publish(trade(SAME, 60 * CENT, 1 * E6, seq=9))
        await until(lambda: kraken.recent(SAME, 1), 10, "Kraken's trade applied")
        await own.publish(trade(SAME, 41 * CENT, 2 * E6, seq=1))
        got = await c.recv_until(lambda m: m["type"] == "trade")
        assert (got["ticker"], got["price"]) == (SAME, 0.41)


async def test_a_venue_whose_stream_does_not_exist_yet_takes_its_symbols(tmp_path: Path) -> None:
    """As the own venue does while it reads its stream back at start: its markets may not
    have shown up yet, so every symbol of it is taken; the own venue, caught up, still
    refuses what it does not know."""
    async with nats_server(tmp_path / "nats") as srv, publisher(srv.url) as own:
        await own.publish(snapshot(SAME, [(40 * CENT, 10 * E6)], []))
        async with running_gateway(two_venues(srv.url), ready=False) as gw:
            await until(lambda: gw.gw.feed.ready, 20, "the own venue to catch up")
            async with Client.connect(gw.ws) as c:
                await c.send({"action": "subscribe", "symbols": [OTHER, "NOPE-1"]})
                assert await c.recv() == {"type": "subscribed", "symbols": [OTHER]}
                unknown = await c.recv()
                assert unknown["code"] == "unknown_symbol" and "NOPE-1" in unknown["message"]
            health = await gw.aget("/v1/health")
            assert health.status_code == 503
            assert health.json()["venues"]["kraken"]["stream"]["found"] is False


REPORT = {
    "start": "2026-12-03T12:00:00Z",
    "end": "2026-12-03T12:05:00Z",
    "description": "the best ask jumps for one second",
}


async def test_data_issues_are_kept_by_venue(tmp_path: Path) -> None:
    """A further venue's issue is stored under its venue with the venue's own ticker,
    listed by `venue=` under its symbol, and the agents' client speaks its tickers."""
    db = tmp_path / "secmaster.sqlite3"
    with Store.open(db) as s:
        s.migrate()
    keys, tenants, key = tenants_of_two_venues()
    async with two_streams(tmp_path) as (url, _, _):
        settings = replace(
            two_venues(url), keys=keys, tenants=tenants, store=lambda: Store.open(db)
        )
        async with (
            running_gateway(settings) as gw,
            httpx.AsyncClient(base_url=gw.http, timeout=10) as http,
        ):

            def h(who: str) -> dict[str, str]:
                return {"X-API-Key": key[who]}

            async def report(who: str, params: dict[str, str] | None = None, **body: str) -> int:
                resp = await http.post(
                    "/v1/data-issues", json={**REPORT, **body}, params=params, headers=h(who)
                )
                assert resp.status_code == 201, resp.text
                return int(resp.json()["id"])

            own = await report("ops", ticker=SAME)
            theirs = await report("ops", ticker=OTHER)
            every_kraken = await report("ops", {"venue": "kraken"})
            with Store.open(db) as s:
                stored = {i.id: (i.feed, i.ticker) for i in issues.list_issues(s, status=None)}
            assert stored == {
                own: ("kalshi", SAME),
                theirs: ("kraken", SAME),
                every_kraken: ("kraken", None),
            }

            async def listed(who: str = "ops", **params: str) -> list[tuple[int, str | None]]:
                resp = await http.get("/v1/data-issues", params=params, headers=h(who))
                assert resp.status_code == 200, resp.text
                return sorted((i["id"], i["ticker"]) for i in resp.json()["issues"])

            assert await listed() == [(own, SAME)]
            assert await listed(venue="kraken") == [(theirs, OTHER), (every_kraken, None)]
            assert await listed(ticker=OTHER) == [(theirs, OTHER), (every_kraken, None)]
            one = await http.get(f"/v1/data-issues/{theirs}", headers=h("ops"))
            assert (one.json()["feed"], one.json()["ticker"]) == ("kraken", OTHER)
            for params, says in (
                ({"venue": "coinbase"}, "venues: kalshi, kraken"),
                ({"venue": "kraken", "ticker": SAME}, "kraken:" + SAME),
            ):
                bad = await http.get("/v1/data-issues", params=params, headers=h("ops"))
                assert bad.status_code == 400 and says in bad.json()["message"], bad.text

            # Entitlements: by the symbol's venue, and by `venue=` for every market of one.
            for params, body in (({}, {"ticker": OTHER}), ({"venue": "kraken"}, {})):
                refused = await http.post(
                    "/v1/data-issues", json={**REPORT, **body}, params=params, headers=h("home")
                )
                assert refused.status_code == 403, refused.text
            spot = await report("spot", ticker=f"kraken:{PAIR}")
            assert await listed("spot", venue="kraken") == [(spot, f"kraken:{PAIR}")]

            # The agents' client of Kraken: its tickers in and out, its venue's issues only.
            client = GatewayClient(gw.http, key["ops"], venue="kraken")
            try:
                made = await client.report_issue({**REPORT, "ticker": PAIR})
                assert (made["feed"], made["ticker"]) == ("kraken", PAIR)
                mine = await client.issues(status="open", ticker=PAIR)
                assert sorted((i["id"], i["ticker"]) for i in mine["issues"]) == [
                    (every_kraken, None),
                    (spot, PAIR),
                    (made["id"], PAIR),
                ]
                everything = await client.report_issue(dict(REPORT))
                assert everything["feed"] == "kraken" and everything["ticker"] is None
                # The MCP server's tools go through it.
                tools = Tools(client, cast("ResolvedEnvironment", None), "kraken")
                reported = orjson.loads(await tools.report_data_issue(**REPORT, ticker="ETH/USD"))
                assert (reported["feed"], reported["ticker"]) == ("kraken", "ETH/USD")
                found = orjson.loads(await tools.list_data_issues(ticker="ETH/USD"))
                # Its issues and Kraken's of every market, newest first among equal starts.
                assert [i["ticker"] for i in found["issues"]] == ["ETH/USD", None, None]
            finally:
                await client.aclose()
