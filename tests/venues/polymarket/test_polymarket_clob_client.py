"""py-clob-client, Polymarket's Python client from PyPI, against the simulator: it reads each
token's book over REST, its own implementation of the book hash gives the hash the
simulator sent, and the book is the simulator's, level for level. The same hash is what
the codec checks on the WebSocket (tests/venues/polymarket/test_polymarket_codec.py)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from py_clob_client.client import ClobClient

from ssmd.sim.polymarket import PolymarketSimulator


async def test_the_clients_book_hash_is_the_simulators() -> None:
    async with PolymarketSimulator(markets=4, rate=None) as sim:
        client = ClobClient(sim.rest_url)
        for _ in range(3):  # the books move between reads
            for market in sim.markets:
                await sim.price_change(market)
            for token in sim.tokens():
                book = await asyncio.to_thread(client.get_order_book, token)
                assert book.asset_id == token
                assert book.market == sim.market_of(token).condition_id
                assert client.get_order_book_hash(book) == book.hash
                bids, asks = sim.levels(token)
                # The REST book lists each side worst price first, as Polymarket does.
                assert [(Decimal(o.price), Decimal(o.size)) for o in book.bids][::-1] == bids
                assert [(Decimal(o.price), Decimal(o.size)) for o in book.asks][::-1] == asks
