"""Recent trades per market, bounded per market and in total.

Each market keeps at most `per_ticker` trades (its oldest fall out), and all markets
together at most `total`: beyond it the oldest trade of the whole gateway is dropped,
whichever market it belongs to. An insertion-order log of (number, ticker) finds that
trade; entries whose trade already fell out of its market's ring are skipped when they
reach the front, and the log itself is kept under 2 x `total` entries, so memory is
bounded whatever the mix of markets.
"""

from __future__ import annotations

from collections import deque
from itertools import count

__all__ = ["TradeLog"]


class TradeLog:
    def __init__(self, per_ticker: int = 200, total: int = 200_000) -> None:
        self.per_ticker = max(1, per_ticker)
        self.total = max(1, total)
        self._rings: dict[str, deque[tuple[int, str]]] = {}
        self._order: deque[tuple[int, str]] = deque()
        self._numbers = count()
        self._held = 0

    def __len__(self) -> int:
        return self._held

    def markets(self) -> int:
        return len(self._rings)

    def __contains__(self, ticker: str) -> bool:
        return ticker in self._rings

    def add(self, ticker: str, text: str) -> None:
        """Add a rendered trade (JSON text)."""
        n = next(self._numbers)
        ring = self._rings.get(ticker)
        if ring is None:
            ring = self._rings[ticker] = deque()
        ring.append((n, text))
        self._order.append((n, ticker))
        self._held += 1
        if len(ring) > self.per_ticker:
            ring.popleft()
            self._held -= 1
        while self._held > self.total or len(self._order) > 2 * self.total:
            self._evict_oldest()

    def _evict_oldest(self) -> None:
        n, ticker = self._order.popleft()
        ring = self._rings.get(ticker)
        if ring and ring[0][0] == n:
            ring.popleft()
            self._held -= 1
            if not ring:
                del self._rings[ticker]

    def recent(self, ticker: str, limit: int) -> list[str]:
        """Up to `limit` trades of `ticker`, newest first."""
        ring = self._rings.get(ticker)
        if not ring or limit <= 0:
            return []
        out = []
        for _, text in reversed(ring):
            out.append(text)
            if len(out) >= limit:
                break
        return out

    def last(self, ticker: str) -> str | None:
        ring = self._rings.get(ticker)
        return ring[-1][1] if ring else None
