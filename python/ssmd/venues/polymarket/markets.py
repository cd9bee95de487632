"""Polymarket's markets in the security master: each outcome token of a Gamma market is
one `markets` row (the token id is the symbol the stream carries), grouped by the
market's condition id (`event_ticker`).

    ticker          the token (asset) id
    venue_id        Gamma's market id
    event_ticker    the condition id (both tokens of a market share it)
    title, subtitle the question, the market's slug
    yes_sub_title   this token's outcome; no_sub_title the other one (two outcomes)
    status          closed when Gamma says closed; open when active and on the order
                    book; halted otherwise. status_text: closed | active | inactive
    close_time      endDate
    tick_size, min_order_size, price_decimals (the tick's decimals)
    venue_fields    {"condition_id", "neg_risk", "outcome_index", "tokens"}

Reconciling: a stored token the open listing no longer carries is looked up in the
listing of closed markets by its condition id.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

import orjson

from ssmd.secmaster.listing import Listed, ListingSync
from ssmd.secmaster.model import Row, iso_time
from ssmd.venues.polymarket.rest import GAMMA_PAGE, PmMarket, list_markets

if TYPE_CHECKING:
    from ssmd.config.models.environment import Symbols

__all__ = ["SYNC", "market_rows", "named"]


def named(m: PmMarket, symbols: Symbols) -> bool:
    """`symbols` names the market: one of its slug, condition id or tokens among
    `tickers`, its slug starting with one of `series`, or nothing named at all."""
    wanted = set(symbols.tickers)
    prefixes = tuple(symbols.series)
    if not (wanted or prefixes):
        return True
    return (
        m.condition_id in wanted
        or m.slug in wanted
        or any(t in wanted for t in m.tokens)
        or (bool(prefixes) and m.slug.startswith(prefixes))
    )


def _decimals(tick: str) -> int | None:
    try:
        exponent = Decimal(tick).normalize().as_tuple().exponent
    except InvalidOperation:
        return None
    return -exponent if isinstance(exponent, int) and exponent <= 0 else None


def market_rows(m: PmMarket) -> list[Row]:
    """The market's tokens as `markets` rows (see the module docstring)."""
    if m.closed:
        status, word = "closed", "closed"
    else:
        status = "open" if m.tradable else "halted"
        word = "active" if m.active else "inactive"
    fields = {
        "condition_id": m.condition_id,
        "neg_risk": m.neg_risk,
        "tokens": list(m.tokens),
    }
    rows: list[Row] = []
    for i, token in enumerate(m.tokens):
        outcome = m.outcomes[i] if i < len(m.outcomes) else None
        others = [o for j, o in enumerate(m.outcomes) if j != i]
        rows.append(
            {
                "ticker": token,
                "venue": "polymarket",
                "venue_id": m.gamma_id or None,
                "event_ticker": m.condition_id,
                "series_ticker": None,
                "category": m.category or None,
                "market_type": "binary" if len(m.tokens) == 2 else "categorical",
                "title": m.question or None,
                "subtitle": m.slug or None,
                "yes_sub_title": outcome,
                "no_sub_title": others[0] if len(others) == 1 else None,
                "status": status,
                "status_text": word,
                "close_time": iso_time(m.end_date) if m.end_date else None,
                "tick_size": m.tick_size or None,
                "min_order_size": m.min_order_size or None,
                "price_decimals": _decimals(m.tick_size),
                "venue_fields": orjson.dumps(
                    {**fields, "outcome_index": i}, option=orjson.OPT_SORT_KEYS
                ).decode(),
            }
        )
    return rows


async def _read(rest_url: str, symbols: Symbols) -> Listed:
    listing = await list_markets(rest_url)
    rows: list[Row] = []
    selected: set[str] = set()
    for m in listing.markets:
        rows += market_rows(m)
        if named(m, symbols):
            selected.update(m.tokens)
    return Listed(rows, selected, listing.complete, listing.requests, listing.skipped)


async def _reread(rest_url: str, stored: list[Row]) -> list[Row]:
    """The closed markets among those of the stored tokens (by condition id)."""
    ids = sorted({str(r["event_ticker"]) for r in stored if r.get("event_ticker")})
    rows: list[Row] = []
    for i in range(0, len(ids), GAMMA_PAGE):
        listing = await list_markets(rest_url, closed=True, condition_ids=ids[i : i + GAMMA_PAGE])
        for m in listing.markets:
            rows += market_rows(m)
    return rows


SYNC = ListingSync("polymarket", _read, _reread)
