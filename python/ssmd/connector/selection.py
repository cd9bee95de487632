"""Which markets to capture: explicit tickers, series, categories and status filters,
following the market lifecycle live.

The security master (when the environment has a store) or else the REST API gives the
initial picture; lifecycle
records (created, activated, deactivated, close date updated, determined, settled) keep
it current; and because Kalshi opens markets at `open_time` without any message, the
status is also derived from the clock: an initialized market whose open time has passed
counts as open, an open market whose close time has passed counts as closed. The
tracking loop (ssmd.connector.tracking) calls `desired()` on a short sweep and diffs it
against what the shards hold and what the exchange acknowledged. A connector run as one
of several shard groups desires its group's share only (ssmd.connector.groups).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ssmd.config.models.environment import Symbols
from ssmd.connector.groups import ShardGroup
from ssmd.secmaster.status import filter_to_statuses, lifecycle_status, map_status
from ssmd.venues.kalshi.rest import RestClient

__all__ = ["MarketInfo", "Selection", "series_of"]

log = logging.getLogger(__name__)

# The security master's status words -> the Kalshi words tracked here.
_KALSHI_OF_SSMD = {
    "initialized": "initialized",
    "open": "active",
    "halted": "inactive",
    "closed": "closed",
    "determined": "determined",
    "settled": "settled",
}


def series_of(ticker: str) -> str:
    return ticker.split("-", 1)[0]


def _ts(value: Any) -> float | None:
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


@dataclass
class MarketInfo:
    ticker: str
    status: str
    open_ts: float | None = None
    close_ts: float | None = None

    def effective_status(self, now: float) -> str:
        s = self.status
        if s == "initialized" and self.open_ts is not None and self.open_ts <= now:
            s = "active"  # opened silently at open_time
        if s == "active" and self.close_ts is not None and self.close_ts <= now:
            s = "closed"
        return s


class Selection:
    def __init__(
        self,
        symbols: Symbols,
        rest: RestClient | None,
        clock: Callable[[], float] = time.time,
        stored: Callable[[], Iterable[dict[str, Any]]] | None = None,
        group: ShardGroup | None = None,
    ) -> None:
        self.tickers = set(symbols.tickers)
        self.series = set(symbols.series)
        self.categories = list(symbols.categories)
        self.statuses = set(symbols.statuses)
        # The ssmd statuses the filter words select (one mapping: ssmd.secmaster.status).
        self.wanted = filter_to_statuses(self.statuses)
        self.rest = rest
        self.stored = stored
        self.clock = clock
        self.group = group  # only this shard group's share of the markets is desired
        self.known: dict[str, MarketInfo] = {}
        self.refreshes = 0
        self.refresh_errors = 0
        self.last_error = ""  # why the last refresh failed ("" when it did not)

    async def aclose(self) -> None:
        if self.rest is not None:
            await self.rest.aclose()

    def matches(self, ticker: str) -> bool:
        return ticker in self.tickers or series_of(ticker) in self.series

    def _query_statuses(self) -> list[str]:
        wanted = set(self.statuses)
        if "open" in wanted:
            wanted.add("unopened")  # to know open_time ahead of the silent open
        return sorted(wanted)

    async def refresh(self) -> None:
        """Re-read the selection from the security master, else from REST; on failure keep
        what is known, count it and say why (`last_error`)."""
        if self.stored is not None:
            self._refresh_from_store(self.stored)
            return
        if self.rest is None:
            self.last_error = ""
            return
        try:
            for cat in self.categories:
                for s in await self.rest.series(cat):
                    if isinstance(s.get("ticker"), str):
                        self.series.add(s["ticker"])
            fresh: dict[str, MarketInfo] = {}
            for status in self._query_statuses():
                for series in sorted(self.series):
                    async for m in self.rest.markets(series_ticker=series, status=status):
                        self._put(fresh, m)
                if self.tickers:
                    tickers = sorted(self.tickers)
                    for i in range(0, len(tickers), 100):
                        async for m in self.rest.markets(
                            tickers=",".join(tickers[i : i + 100]), status=status
                        ):
                            self._put(fresh, m)
        except Exception as exc:
            self._failed(exc)
            log.warning(
                "selection refresh failed, keeping %d known markets: %s", len(self.known), exc
            )
            return
        self._adopt(fresh)

    def _failed(self, exc: Exception) -> None:
        self.refresh_errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"

    def _refresh_from_store(self, stored: Callable[[], Iterable[dict[str, Any]]]) -> None:
        # The store already applies the environment's tickers, series and categories; the
        # series of what it returns are remembered (as a category query through REST does)
        # so that lifecycle news of new markets in them is taken up.
        try:
            fresh: dict[str, MarketInfo] = {}
            for row in stored():
                status = str(row.get("status", ""))
                self._put(fresh, {**row, "status": _KALSHI_OF_SSMD.get(status, status)})
                self.series.add(series_of(str(row["ticker"])))
        except Exception as exc:
            self._failed(exc)
            log.warning(
                "selection refresh from the security master failed, keeping %d known markets: %s",
                len(self.known),
                exc,
            )
            return
        self._adopt(fresh)

    def _adopt(self, fresh: dict[str, MarketInfo]) -> None:
        self.refreshes += 1
        self.last_error = ""
        # Lifecycle news newer than the answer (e.g. created after the query) is kept.
        for t, info in self.known.items():
            if (
                t not in fresh
                and info.status in ("initialized", "active")
                and self.matches(t)
                and info.effective_status(self.clock()) in ("initialized", "active")
            ):
                fresh[t] = info
        self.known = fresh

    def _put(self, into: dict[str, MarketInfo], m: dict[str, Any]) -> None:
        ticker = m.get("ticker")
        if not isinstance(ticker, str):
            return
        into[ticker] = MarketInfo(
            ticker,
            str(m.get("status", "")),
            _ts(m.get("open_time")),
            _ts(m.get("close_time")),
        )

    def on_lifecycle(self, rec: dict[str, Any]) -> bool:
        """Apply one decoded lifecycle record; True when the selection may have changed."""
        ticker = rec.get("ticker")
        if not isinstance(ticker, str) or not self.matches(ticker):
            return False
        event = rec.get("event_type")
        info = self.known.get(ticker)
        if info is None:
            info = self.known[ticker] = MarketInfo(ticker, "initialized")
        open_ns, close_ns = rec.get("open_ts") or 0, rec.get("close_ts") or 0
        if open_ns:
            info.open_ts = open_ns / 1e9
        if close_ns:
            info.close_ts = close_ns / 1e9
        change = lifecycle_status(event, rec.get("is_deactivated", True))
        if change is not None:
            info.status = change[1]
        return True

    def desired(self) -> set[str]:
        now = self.clock()
        out = {
            t
            for t, info in self.known.items()
            if not self.wanted or map_status(info.effective_status(now)) in self.wanted
        }
        # Explicit tickers that REST did not describe are still asked for.
        out.update(t for t in self.tickers if t not in self.known)
        if self.group is not None:
            return {t for t in out if self.group.owns(t)}
        return out
