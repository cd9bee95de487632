"""Polymarket (CLOB market channel) as a venue (ssmd.venues.base): its session, its
subscription protocol, its Rust codec, its market selection and its market sync
(ssmd.venues.polymarket.markets). Market data is public: no credentials.

Symbols are token (asset) ids: both outcome tokens of each selected market. The
environment's `symbols` select markets: `tickers` lists market slugs, condition ids or
token ids, `series` slug prefixes; with neither, every open market on the order book.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ssmd import core
from ssmd.venues.base import Batch, CoreCodec, Venue
from ssmd.venues.listing import ListingSelection, no_credentials
from ssmd.venues.polymarket.markets import SYNC, named
from ssmd.venues.polymarket.rest import PmMarket, list_markets
from ssmd.venues.polymarket.subscriptions import PolymarketSubscriptions
from ssmd.venues.polymarket.ws import PolymarketSession

if TYPE_CHECKING:
    from ssmd.config.models.environment import Symbols
    from ssmd.connector.groups import ShardGroup

__all__ = ["VENUE", "PolymarketCodec", "PolymarketSelection"]

log = logging.getLogger(__name__)

# Codecs of this process: a selection hands them the listing fields of its tokens (the
# book hash needs min_order_size and neg_risk, which the WebSocket does not send).
_CODECS: weakref.WeakSet[PolymarketCodec] = weakref.WeakSet()


class PolymarketCodec(CoreCodec):
    """ssmd._core.PolymarketCodec: per connection, each token's book (loss suspected from
    the book hash and the venue's best bid/ask), and book checkpoints."""

    frame_kinds: tuple[str, ...] = tuple(core.PolymarketCodec.frame_kinds)

    def __init__(self, hash_mode: str = "auto") -> None:
        self.core: core.PolymarketCodec = core.PolymarketCodec(hash_mode)
        self.hashes = [0, 0, 0]  # matched, mismatched, unverified
        _CODECS.add(self)

    def set_token(self, asset_id: str, min_order_size: str, neg_risk: bool) -> None:
        self.core.set_token(asset_id, min_order_size, neg_risk)

    def normalize(self, frames: list[bytes], receive_ns: list[int], conn_id: int) -> Batch:
        batch = self.core.normalize(frames, receive_ns, conn_id)
        for i, n in enumerate(batch.hashes):
            self.hashes[i] += n
        return batch


def select(markets: Iterable[PmMarket], symbols: Symbols) -> set[str]:
    """The tokens of the tradable markets `symbols` names (every one when it names none)."""
    return {t for m in markets if m.tradable and named(m, symbols) for t in m.tokens}


class PolymarketSelection(ListingSelection):
    """The tokens to capture, from the Gamma listing; hands their listing fields to the
    codecs of this process."""

    def __init__(self, symbols: Symbols, rest_url: str, group: ShardGroup | None) -> None:
        super().__init__(symbols, rest_url, group)
        self.markets: dict[str, PmMarket] = {}

    async def _select(self) -> set[str]:
        listing = await list_markets(self.rest_url)
        self.markets = {m.condition_id: m for m in listing.markets}
        for m in listing.markets:
            for token in m.tokens:
                for codec in list(_CODECS):
                    codec.set_token(token, m.min_order_size, m.neg_risk)
        return select(listing.markets, self.symbols)


VENUE = Venue(
    name="polymarket",
    session=PolymarketSession,
    subscriptions=PolymarketSubscriptions,
    codec=PolymarketCodec,
    selection=PolymarketSelection.create,
    credentials=no_credentials,
    sync_markets=SYNC,
)
