"""One gateway serving several venues: the own venue's tickers as they are, a further
venue's as `venue:ticker`, each read from its own stream. The same ticker on two venues
stays two markets in books, trades, statuses, REST and the agents' client."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

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
)
from ssmd.exceptions import GatewayError
from ssmd.gateway import GatewaySettings
from ssmd.mcp.gateway import GatewayClient
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
