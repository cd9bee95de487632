"""The simulated Polymarket universe: binary markets, each with two outcome tokens.

Identifiers have the venue's shapes: a condition id is `0x` + 64 hex digits, a
token id a decimal string of up to 78 digits (a uint256, beyond 64 bits), a Gamma
id a short decimal string. Everything is derived from the seed.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from decimal import Decimal

from ssmd.sim.polymarket.book import MarketBook

__all__ = ["TICKS", "PmMarket", "make_universe"]

# Tick sizes the venue uses, including one that is not a power of ten.
TICKS = (Decimal("0.01"), Decimal("0.001"), Decimal("0.0025"))


def _digest(seed: int, what: str) -> str:
    return hashlib.sha256(f"ssmd-pm-{seed}-{what}".encode()).hexdigest()


@dataclass
class PmMarket:
    gamma_id: str
    condition_id: str
    question: str
    slug: str
    yes_token: str
    no_token: str
    tick: Decimal
    min_order_size: str = "5"
    neg_risk: bool = False
    active: bool = True
    closed: bool = False
    last_trade_price: str = ""
    book: MarketBook = field(default_factory=MarketBook)

    @property
    def tokens(self) -> tuple[str, str]:
        return (self.yes_token, self.no_token)

    def is_yes(self, token: str) -> bool:
        return token == self.yes_token


def make_universe(seed: int, count: int) -> list[PmMarket]:
    rng = random.Random(seed)
    markets = []
    for i in range(count):
        yes = str(int(_digest(seed, f"{i}-yes"), 16))
        no = str(int(_digest(seed, f"{i}-no"), 16))
        tick = TICKS[i % len(TICKS)]
        market = PmMarket(
            gamma_id=str(500000 + i),
            condition_id="0x" + _digest(seed, f"{i}-condition"),
            question=f"Will simulated event {i} happen?",
            slug=f"simulated-event-{i}",
            yes_token=yes,
            no_token=no,
            tick=tick,
            neg_risk=i % 4 == 3,
        )
        mid = Decimal(rng.randint(20, 80)) / 100
        for k in range(1, 4):
            size = Decimal(rng.randint(10, 500))
            market.book.set(True, mid - k * tick * 2, size)
            market.book.set(False, mid + k * tick * 2, size + Decimal("0.5"))
        markets.append(market)
    return markets
