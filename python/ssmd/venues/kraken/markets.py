"""Kraken's pairs in the security master: each pair of `AssetPairs` is one `markets` row
(the WebSocket v2 symbol is the ticker the stream carries).

    ticker          the v2 symbol (BTC/USD)
    venue_id        the REST pair key (XXBTZUSD)
    series_ticker   the base asset as v2 spells it (BTC); market_type "spot"
    title, subtitle the v2 symbol, the pair's altname (XBTUSD)
    status          online -> open; delisted -> closed; cancel_only, post_only,
                    limit_only, reduce_only, maintenance -> halted; anything else
                    unknown. status_text: Kraken's word
    price_decimals, size_decimals   pair_decimals, lot_decimals
    tick_size, min_order_size       tick_size, ordermin
    venue_fields    {"altname", "base", "quote"} as the listing writes them

The listing is one request and carries every pair: a stored pair it no longer carries is
closed as unlisted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import orjson

from ssmd.secmaster.listing import Listed, ListingSync
from ssmd.secmaster.model import Row
from ssmd.venues.kraken.rest import KrPair, list_pairs

if TYPE_CHECKING:
    from ssmd.config.models.environment import Symbols

__all__ = ["SYNC", "market_row", "named"]

STATUS: Final = {
    "online": "open",
    "delisted": "closed",
    "cancel_only": "halted",
    "post_only": "halted",
    "limit_only": "halted",
    "reduce_only": "halted",
    "maintenance": "halted",
}


def named(p: KrPair, symbols: Symbols) -> bool:
    """`symbols` names the pair: its v2 symbol, REST key or altname among `tickers`, its
    quote currency among `series`, or nothing named at all."""
    wanted = set(symbols.tickers)
    quotes = set(symbols.series)
    if not (wanted or quotes):
        return True
    return (
        p.symbol in wanted
        or p.key in wanted
        or p.altname in wanted
        or p.symbol.partition("/")[2] in quotes
    )


def market_row(p: KrPair) -> Row:
    """The pair as a `markets` row (see the module docstring)."""
    fields = {"altname": p.altname, "base": p.base, "quote": p.quote}
    return {
        "ticker": p.symbol,
        "venue": "kraken",
        "venue_id": p.key,
        "series_ticker": p.symbol.partition("/")[0],
        "market_type": "spot",
        "title": p.symbol,
        "subtitle": p.altname or None,
        "status": STATUS.get(p.status, "unknown"),
        "status_text": p.status,
        "price_decimals": p.price_decimals,
        "size_decimals": p.qty_decimals,
        "tick_size": p.tick_size or None,
        "min_order_size": p.ordermin or None,
        "venue_fields": orjson.dumps(fields, option=orjson.OPT_SORT_KEYS).decode(),
    }


async def _read(rest_url: str, symbols: Symbols) -> Listed:
    listing = await list_pairs(rest_url)
    selected = {p.symbol for p in listing.pairs if named(p, symbols)}
    rows = [market_row(p) for p in listing.pairs]
    return Listed(rows, selected, complete=True, requests=1, skipped=listing.skipped)


SYNC = ListingSync("kraken", _read)
