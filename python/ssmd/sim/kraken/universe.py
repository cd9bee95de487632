"""The simulated Kraken pairs: each with its precisions and a full book in exact integers.

Prices are integers in units of 10^-price_decimals, quantities in 10^-qty_decimals, so
that every number the simulator prints has exactly the pair's precision (trailing zeros
included), as the venue prints them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["KrPair", "fmt", "make_universe"]

# (base, quote, REST key, v1 wsname, price decimals, qty decimals, mid price)
_PAIRS = (
    ("BTC", "USD", "XXBTZUSD", "XBT/USD", 1, 8, "64250.0"),
    ("ETH", "USD", "XETHZUSD", "ETH/USD", 2, 8, "3150.00"),
    ("DOGE", "USD", "XDGUSD", "XDG/USD", 6, 2, "0.123456"),
    ("SOL", "EUR", "SOLEUR", "SOL/EUR", 2, 8, "141.50"),
    ("XRP", "USD", "XXRPZUSD", "XRP/USD", 5, 8, "0.52000"),
    ("ADA", "USD", "ADAUSD", "ADA/USD", 6, 8, "0.380000"),
)


def fmt(units: int, decimals: int) -> str:
    """An exact integer in units of 10^-decimals as the venue prints it ("0.00100000")."""
    sign = "-" if units < 0 else ""
    units = abs(units)
    if decimals == 0:
        return f"{sign}{units}"
    scale = 10**decimals
    return f"{sign}{units // scale}.{units % scale:0{decimals}d}"


def _units(text: str, decimals: int) -> int:
    whole, _, frac = text.partition(".")
    scale: int = 10**decimals
    return int(whole) * scale + int((frac + "0" * decimals)[:decimals])


@dataclass
class KrPair:
    symbol: str  # v2 name
    base: str
    quote: str
    key: str
    wsname: str
    price_decimals: int
    qty_decimals: int
    tick: int  # one price unit: 1
    status: str = "online"  # as AssetPairs says it (cancel_only, post_only, ...)
    bids: dict[int, int] = field(default_factory=dict)  # price units -> qty units
    asks: dict[int, int] = field(default_factory=dict)
    last_trade_id: int = 0
    last: int | None = None
    volume: int = 0

    def best(self) -> tuple[int | None, int | None]:
        return (max(self.bids) if self.bids else None, min(self.asks) if self.asks else None)

    def top(self, depth: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """(bids, asks), best first, at most `depth` levels each."""
        bids = sorted(self.bids.items(), reverse=True)[:depth]
        asks = sorted(self.asks.items())[:depth]
        return bids, asks


def make_universe(seed: int, count: int, levels: int = 30) -> list[KrPair]:
    """`count` pairs (at most as many as _PAIRS), each with `levels` levels per side."""
    rng = random.Random(seed)
    out: list[KrPair] = []
    for base, quote, key, wsname, pd, qd, mid_text in _PAIRS[:count]:
        pair = KrPair(f"{base}/{quote}", base, quote, key, wsname, pd, qd, 1)
        mid = _units(mid_text, pd)
        step = max(1, mid // 20_000)
        for i in range(levels):
            pair.bids[mid - step * (i + 1) * rng.randint(1, 3)] = rng.randint(1, 5_000) * 10 ** (
                qd // 2
            )
            pair.asks[mid + step * (i + 1) * rng.randint(1, 3)] = rng.randint(1, 5_000) * 10 ** (
                qd // 2
            )
        out.append(pair)
    return out
