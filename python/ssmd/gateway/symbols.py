"""Symbols of a gateway that serves several venues (an environment's spec.venues).

The environment's own venue (spec.feed) keeps its tickers as symbols, so its clients
never change when a venue is added; a further venue's symbols are `venue:ticker`
(`kraken:BTC/USD`, `polymarket:7132...`). Two venues may use the same ticker, and a
prefix keeps them apart in subscriptions, messages and REST paths. A symbol whose part
before the first `:` is not a further venue is the own venue's ticker as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["SEPARATOR", "Symbols"]

SEPARATOR: Final = ":"


@dataclass(frozen=True)
class Symbols:
    own: str  # the environment's own venue
    further: tuple[str, ...] = ()  # the further venues the gateway serves

    @property
    def venues(self) -> tuple[str, ...]:
        return (self.own, *self.further)

    def prefix(self, venue: str) -> str:
        """What goes before a ticker of `venue` in its symbol."""
        return "" if venue == self.own else f"{venue}{SEPARATOR}"

    def symbol(self, venue: str, ticker: str) -> str:
        return self.prefix(venue) + ticker

    def split(self, symbol: str) -> tuple[str, str]:
        """(venue, ticker) of a symbol."""
        head, sep, ticker = symbol.partition(SEPARATOR)
        if sep and ticker and head in self.further:
            return head, ticker
        return self.own, symbol
