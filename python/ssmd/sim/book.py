"""Market state: the two bid books (YES and NO) and the running market statistics.

Units: prices are integers in 1e-4 dollars (ONE == $1.0000), sizes are integers in 1e-2
contracts. Every value is exact; strings are produced by `price_str` and `size_str`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ONE", "Book", "BookState", "cents", "price_str", "size_str"]

ONE = 10_000  # $1.0000 in 1e-4 dollar units


def price_str(p: int) -> str:
    """1e-4 dollars -> "0.3400"."""
    sign = "-" if p < 0 else ""
    p = abs(p)
    return f"{sign}{p // 10_000}.{p % 10_000:04d}"


def size_str(s: int) -> str:
    """1e-2 contracts -> "12.25" (signed for deltas)."""
    sign = "-" if s < 0 else ""
    s = abs(s)
    return f"{sign}{s // 100}.{s % 100:02d}"


def cents(p: int) -> int:
    """Integer cents of a price (floor for sub-cent prices, which era A cannot express)."""
    return p // 100


@dataclass(frozen=True)
class BookState:
    """A frozen copy of one market's book: ascending (price, size) string pairs per side."""

    ticker: str
    yes: tuple[tuple[str, str], ...]
    no: tuple[tuple[str, str], ...]


@dataclass
class Book:
    """YES bids and NO bids, price -> size (both integer units)."""

    yes: dict[int, int] = field(default_factory=dict)
    no: dict[int, int] = field(default_factory=dict)

    def side(self, side: str) -> dict[int, int]:
        return self.yes if side == "yes" else self.no

    def apply(self, side: str, price: int, delta: int) -> None:
        levels = self.side(side)
        new = levels.get(price, 0) + delta
        if new < 0:
            raise ValueError(f"negative size at {side} {price}")
        if new == 0:
            levels.pop(price, None)
        else:
            levels[price] = new

    def best(self, side: str) -> tuple[int, int] | None:
        levels = self.side(side)
        if not levels:
            return None
        p = max(levels)
        return p, levels[p]

    def levels(self, side: str) -> list[tuple[int, int]]:
        """Ascending by price (best bid last), as Kalshi sends them."""
        levels = self.side(side)
        return sorted(levels.items())

    def state(self, ticker: str) -> BookState:
        return BookState(
            ticker,
            tuple((price_str(p), size_str(s)) for p, s in self.levels("yes")),
            tuple((price_str(p), size_str(s)) for p, s in self.levels("no")),
        )
