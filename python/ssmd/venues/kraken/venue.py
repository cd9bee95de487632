"""Kraken (spot WebSocket v2, public market data) as a venue (ssmd.venues.base): its
session, its subscription protocol, its Rust codec, its pair selection and its market
sync (ssmd.venues.kraken.markets). Public data needs no credentials.

Symbols are WebSocket v2 pair names (`BTC/USD`). The environment's `symbols` select
pairs: `tickers` lists v2 names, REST pair keys (`XXBTZUSD`) or altnames (`XBTUSD`),
`series` quote currencies (`USD`: every pair quoted in USD); with neither, every online
pair. The listing also gives each pair's precisions, which the codec reads books at.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ssmd import core
from ssmd.venues.base import CoreCodec, Venue
from ssmd.venues.kraken.markets import SYNC, named
from ssmd.venues.kraken.rest import KrPair, list_pairs
from ssmd.venues.kraken.subscriptions import KrakenSubscriptions
from ssmd.venues.kraken.ws import KrakenSession
from ssmd.venues.listing import ListingSelection, no_credentials

if TYPE_CHECKING:
    from ssmd.config.models.environment import Symbols
    from ssmd.connector.groups import ShardGroup

__all__ = ["VENUE", "KrakenCodec", "KrakenSelection", "select"]

log = logging.getLogger(__name__)

# Codecs of this process: a selection hands them the precisions of the pairs it lists.
_CODECS: weakref.WeakSet[KrakenCodec] = weakref.WeakSet()


class KrakenCodec(CoreCodec):
    """ssmd._core.KrakenCodec: each pair's exact book with its CRC32 checked on every
    message (a mismatch is a gap, repaired by a fresh snapshot), and book checkpoints."""

    frame_kinds: tuple[str, ...] = tuple(core.KrakenCodec.frame_kinds)

    def __init__(self) -> None:
        self.core: core.KrakenCodec = core.KrakenCodec()
        _CODECS.add(self)

    @property
    def checksum_mismatches(self) -> int:
        return self.core.checksum_mismatches

    def set_precision(self, symbol: str, price_decimals: int, qty_decimals: int) -> None:
        self.core.set_precision(symbol, price_decimals, qty_decimals)

    def book(
        self, symbol: str
    ) -> tuple[bool, int, int, list[tuple[int, int]], list[tuple[int, int]]] | None:
        """(valid, price decimals, qty decimals, bids, asks): the exact book, best first."""
        return self.core.book(symbol)


def select(pairs: Iterable[KrPair], symbols: Symbols) -> set[str]:
    """The v2 symbols of the online pairs `symbols` names (every one when it names none)."""
    return {p.symbol for p in pairs if p.tradable and named(p, symbols)}


class KrakenSelection(ListingSelection):
    """The pairs to capture, from the AssetPairs listing; hands their precisions to the
    codecs of this process."""

    def __init__(self, symbols: Symbols, rest_url: str, group: ShardGroup | None) -> None:
        super().__init__(symbols, rest_url, group)
        self.pairs: dict[str, KrPair] = {}

    async def _select(self) -> set[str]:
        listing = await list_pairs(self.rest_url)
        self.pairs = {p.symbol: p for p in listing.pairs}
        for p in listing.pairs:
            for codec in list(_CODECS):
                codec.set_precision(p.symbol, p.price_decimals, p.qty_decimals)
        return select(listing.pairs, self.symbols)


VENUE = Venue(
    name="kraken",
    session=KrakenSession,
    subscriptions=KrakenSubscriptions,
    codec=KrakenCodec,
    selection=KrakenSelection.create,
    credentials=no_credentials,
    sync_markets=SYNC,
    global_channels=frozenset({"instrument"}),
)
