"""A binary market's books: the YES token's book, and the NO token's derived from it.

A YES bid at p is a NO ask at 1 - p with the same size, so one book holds both
tokens exactly. Prices and sizes are `Decimal`; levels at size 0 do not exist.
The venue's `book` lists levels worst first (bids ascending, asks descending).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from decimal import Decimal

__all__ = ["ONE", "MarketBook", "book_hash", "dec"]

ONE = Decimal(1)


def dec(value: Decimal) -> str:
    """A decimal as plain text without exponent or trailing zeros ("0.5", "120")."""
    text = format(value.normalize(), "f")
    return text


@dataclass
class MarketBook:
    bids: dict[Decimal, Decimal] = field(default_factory=dict)  # YES bids
    asks: dict[Decimal, Decimal] = field(default_factory=dict)  # YES asks

    def side(self, yes: bool, bid: bool) -> dict[Decimal, Decimal]:
        """The levels of one token's side, on that token's price scale (a copy for NO)."""
        if yes:
            return self.bids if bid else self.asks
        source = self.asks if bid else self.bids
        return {ONE - p: s for p, s in source.items()}

    def best(self, yes: bool) -> tuple[Decimal, Decimal]:
        """(best bid, best ask) of a token: 0 and 1 when a side is empty."""
        bids = self.side(yes, True)
        asks = self.side(yes, False)
        return (max(bids) if bids else Decimal(0), min(asks) if asks else ONE)

    def levels(
        self, yes: bool
    ) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        """(bids, asks) of a token, worst first, as the venue sends them."""
        bids = sorted(self.side(yes, True).items())
        asks = sorted(self.side(yes, False).items(), reverse=True)
        return bids, asks

    def set(self, bid: bool, price: Decimal, size: Decimal) -> None:
        """Sets a YES level to an absolute size (0 deletes it)."""
        side = self.bids if bid else self.asks
        if size == 0:
            side.pop(price, None)
        else:
            side[price] = size


def book_hash(summary: dict[str, object]) -> str:
    """The venue's summary hash: SHA-1 of the compact JSON with `hash` empty, keys in
    the documented order (the caller builds `summary` in that order)."""
    body = dict(summary)
    body["hash"] = ""
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha1(text.encode()).hexdigest()
