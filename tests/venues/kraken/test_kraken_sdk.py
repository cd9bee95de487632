"""python-kraken-sdk, a third-party Kraken client from PyPI, against the simulator: its REST
client reads the AssetPairs listing, and its WebSocket v2 client subscribes to a book and
trades; the book it is sent, snapshot then updates kept to the subscribed depth, is the
simulator's, level for level."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from kraken.spot import Market, SpotWSClient
from krfix import until

from ssmd.sim.kraken import KrakenSimulator

DEPTH = 10


def units(value: Any, decimals: int) -> int:
    """A number as the SDK hands it on (a float, printed by the venue at the pair's
    precision) in units of 10^-decimals."""
    return int(Decimal(repr(value)).scaleb(decimals))


class Book:
    """One pair's book from the messages the SDK's client passes on."""

    def __init__(self, price_decimals: int, qty_decimals: int) -> None:
        self.pd, self.qd = price_decimals, qty_decimals
        self.sides: dict[str, dict[int, int]] = {"bids": {}, "asks": {}}
        self.snapshots = self.updates = 0

    def apply(self, msg: dict[str, Any]) -> None:
        (data,) = msg["data"]
        if msg["type"] == "snapshot":
            self.snapshots += 1
            self.sides = {"bids": {}, "asks": {}}
        else:
            self.updates += 1
        for name, side in self.sides.items():
            for level in data[name]:
                price, qty = units(level["price"], self.pd), units(level["qty"], self.qd)
                if qty:
                    side[price] = qty
                else:
                    side.pop(price, None)
            kept = sorted(side, reverse=name == "bids")[:DEPTH]
            self.sides[name] = {p: side[p] for p in kept}

    def top(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        bids = sorted(self.sides["bids"].items(), reverse=True)
        asks = sorted(self.sides["asks"].items())
        return bids, asks


async def test_the_sdks_rest_client_reads_the_pair_listing() -> None:
    async with KrakenSimulator(pairs=6, rate=None) as sim:
        market = Market(url=sim.rest_url)
        pairs = await asyncio.to_thread(market.get_asset_pairs)
        assert set(pairs) == {p.key for p in sim.pairs}
        for p in sim.pairs:
            row = pairs[p.key]
            assert (row["wsname"], row["pair_decimals"], row["lot_decimals"]) == (
                p.wsname,
                p.price_decimals,
                p.qty_decimals,
            )
        status = await asyncio.to_thread(market.get_system_status)
        assert status["status"] == "online"


async def test_the_sdks_websocket_client_holds_the_simulators_book() -> None:
    async with KrakenSimulator(pairs=2, rate=None) as sim:
        pair = sim.pair("BTC/USD")
        book = Book(pair.price_decimals, pair.qty_decimals)
        acks: list[dict[str, Any]] = []
        trades: list[dict[str, Any]] = []
        updates_before_trade: list[int] = []

        async def on_message(msg: Any) -> None:
            if not isinstance(msg, dict):
                return
            if msg.get("method") == "subscribe":
                acks.append(msg)
            elif msg.get("channel") == "book" and msg["data"][0]["symbol"] == pair.symbol:
                book.apply(msg)
            elif msg.get("channel") == "trade":
                trades.extend(msg["data"])
                updates_before_trade.append(book.updates)

        client = SpotWSClient(
            callback=on_message,
            ws_url=sim.ws_url.removesuffix("/v2"),  # the client adds the version
            rest_url=sim.rest_url,
        )
        await client.start()
        try:
            await client.subscribe({"channel": "book", "symbol": [pair.symbol], "depth": DEPTH})
            await client.subscribe({"channel": "trade", "symbol": [pair.symbol]})
            await until(lambda: len(acks) == 2 and book.snapshots == 1, 10, "subscribed")
            assert all(a["success"] for a in acks), acks
            assert book.top() == sim.levels(pair.symbol, DEPTH)

            for _ in range(40):
                await sim.book_change(pair)
            # A trade, then the book update it causes: once that update is in, every
            # earlier one is (one socket, in order).
            await sim.trade(pair)
            await until(
                lambda: updates_before_trade and book.updates > updates_before_trade[0],
                10,
                "a trade and the book update after it",
            )
            assert updates_before_trade[0] >= 20  # changes beyond the depth send nothing
            assert book.top() == sim.levels(pair.symbol, DEPTH)
            assert trades[0]["symbol"] == pair.symbol and trades[0]["side"] in ("buy", "sell")
            assert not client.exception_occur
        finally:
            await client.close()
