"""`ssmd market sync`: what a venue's market sync is given (`SyncRun`) and reports
(`SyncReport`), and Kalshi's: series, events and markets from Kalshi REST into the store.
Venues that list their markets in one listing sync through ssmd.secmaster.listing.

Kalshi's passes, in order (events before markets, so a market finds its event and category):
  1. series: every series (no selection), or the selected series and those of the
     selected categories;
  2. events of those series, filtered by status (`paused` -> `open`; events have no
     status of their own, the filter looks at their markets);
  3. markets of those series, one query per status filter word (`open` also queries
     `unopened`: the sweep must know a market before its silent open), plus the
     explicit tickers (any status, 100 per request);
  4. reconcile: stored markets that should have been listed in a selected status but
     were not (they moved on upstream) are re-read by ticker.
Everything streams page by page: a page is upserted (one transaction) and dropped
before the next is fetched; the tickers seen live in a temporary table.

A market whose event is missing is fetched by event ticker; when the event does not
exist either, the market is stored anyway (series from its ticker) and counted.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol

from ssmd.secmaster.db import Change, SeenSet, Store
from ssmd.secmaster.model import (
    Problems,
    Row,
    event_row,
    market_row,
    series_of_ticker,
    series_row,
)
from ssmd.secmaster.status import FILTER_WORDS, filter_to_statuses

if TYPE_CHECKING:
    from ssmd.config.models.environment import Symbols

__all__ = ["Rest", "SyncOptions", "SyncReport", "SyncRun", "Syncer", "sync_kalshi"]

log = logging.getLogger(__name__)

EVENT_FILTER: Final = {
    "unopened": "unopened",
    "open": "open",
    "paused": "open",
    "closed": "closed",
    "settled": "settled",
}
TICKERS_PER_REQUEST: Final = 100


class Rest(Protocol):
    """What the sync needs from a Kalshi REST client (ssmd.venues.kalshi.rest.RestClient)."""

    async def get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]: ...


@dataclass(frozen=True)
class SyncOptions:
    """What to sync. Empty series, categories and tickers = the whole exchange;
    empty statuses = every status (no status filter)."""

    series: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    tickers: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    market_page: int = 1000
    event_page: int = 200

    def __post_init__(self) -> None:
        filter_to_statuses(self.statuses)  # validates the words

    @classmethod
    def from_symbols(cls, symbols: Symbols, *, everything: bool = False) -> SyncOptions:
        """The environment's selection (`spec.symbols`); `everything` ignores it."""
        if everything:
            return cls()
        return cls(
            series=tuple(symbols.series),
            categories=tuple(symbols.categories),
            tickers=tuple(symbols.tickers),
            statuses=tuple(str(s) for s in symbols.statuses),
        )

    @property
    def selective(self) -> bool:
        return bool(self.series or self.categories or self.tickers)

    def market_filter_words(self) -> list[str]:
        """The selected status words, plus `unopened` when `open` is selected."""
        words = set(self.statuses)
        if "open" in words:
            words.add("unopened")
        return [w for w in FILTER_WORDS if w in words]

    def market_filters(self) -> list[str | None]:
        """The `status` values to query /markets with (None = no filter)."""
        if not self.statuses:
            return [None]
        return list(self.market_filter_words())

    def event_filters(self) -> list[str | None]:
        if not self.statuses:
            return [None]
        words = {EVENT_FILTER[w] for w in self.market_filters() if w}
        return [w for w in ("unopened", "open", "closed", "settled") if w in words]


@dataclass
class SyncReport:
    series: int = 0
    events: int = 0
    markets: int = 0  # market objects read (duplicates included)
    pages: int = 0
    created: dict[str, int] = field(default_factory=lambda: {"series": 0, "event": 0, "market": 0})
    updated: dict[str, int] = field(default_factory=lambda: {"series": 0, "event": 0, "market": 0})
    history_rows: int = 0
    missing_events: int = 0
    reconciled: int = 0
    vanished: int = 0
    problems: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def changes(self) -> int:
        return sum(self.created.values()) + sum(self.updated.values())

    def count(self, changes: Iterable[Change]) -> None:
        """Add what one write changed."""
        for c in changes:
            bucket = self.created if c.created else self.updated
            bucket[c.kind] = bucket.get(c.kind, 0) + 1
            if c.kind == "market":
                self.history_rows += 1 if c.created else len(c.fields)

    def as_dict(self) -> dict[str, Any]:
        return {
            "series": self.series,
            "events": self.events,
            "markets": self.markets,
            "pages": self.pages,
            "created": self.created,
            "updated": self.updated,
            "history_rows": self.history_rows,
            "missing_events": self.missing_events,
            "reconciled": self.reconciled,
            "vanished": self.vanished,
            "problems": self.problems,
            "seconds": round(self.seconds, 3),
        }


OnChanges = Callable[[list[Change]], Awaitable[None]]


@dataclass(frozen=True)
class SyncRun:
    """One sync run of an environment, as a venue's `sync_markets` is given it."""

    store: Store
    rest_url: str
    symbols: Symbols
    everything: bool = False  # every market of the venue, not the environment's selection
    journal_subject: str | None = None
    on_changes: OnChanges | None = None  # after each committed write (journal, cache)
    rest: Any = None  # Kalshi's sync: a REST client to read with instead of its own (tests)


async def sync_kalshi(run: SyncRun) -> SyncReport:
    """Kalshi's market sync (the passes of the module docstring)."""
    from ssmd.venues.kalshi.rest import RestClient

    options = SyncOptions.from_symbols(run.symbols, everything=run.everything)
    client: Any = run.rest if run.rest is not None else RestClient(run.rest_url)
    try:
        syncer = Syncer(
            run.store,
            client,
            options,
            journal_subject=run.journal_subject,
            on_changes=run.on_changes,
        )
        return await syncer.run()
    finally:
        if run.rest is None:
            await client.aclose()


class Syncer:
    def __init__(
        self,
        store: Store,
        rest: Rest,
        options: SyncOptions,
        *,
        journal_subject: str | None = None,
        on_changes: OnChanges | None = None,
    ) -> None:
        self.store = store
        self.rest = rest
        self.options = options
        self.journal_subject = journal_subject
        self.on_changes = on_changes
        self.report = SyncReport()
        self._problems = Problems()
        self._categories: dict[str, str | None] = {}  # series -> category (series are few)
        self._missing: OrderedDict[str, None] = OrderedDict()  # events known not to exist

    # ---- REST -------------------------------------------------------------------------

    async def _pages(
        self, path: str, key: str, params: dict[str, Any]
    ) -> AsyncIterator[list[dict[str, Any]]]:
        q = {k: v for k, v in params.items() if v is not None}
        while True:
            body = await self.rest.get(path, q)
            self.report.pages += 1
            items = body.get(key)
            yield [x for x in items if isinstance(x, dict)] if isinstance(items, list) else []
            cursor = body.get("cursor")
            if not cursor:
                return
            q["cursor"] = cursor

    async def _get_or_none(self, path: str) -> dict[str, Any] | None:
        from ssmd.exceptions import RestError

        try:
            return await self.rest.get(path)
        except RestError as exc:
            if "HTTP 404" in str(exc):
                return None
            raise

    # ---- writing ----------------------------------------------------------------------

    async def _changed(self, changes: list[Change]) -> None:
        self.report.count(changes)
        if changes and self.on_changes is not None:
            await self.on_changes(changes)

    async def _apply_series(self, items: Iterable[dict[str, Any]]) -> list[str]:
        rows = [series_row(s) for s in items if isinstance(s.get("ticker"), str)]
        self.report.series += len(rows)
        for r in rows:
            self._categories[str(r["ticker"])] = (
                None if r["category"] is None else str(r["category"])
            )
        await self._changed(self.store.apply_series(rows, "sync", self.journal_subject))
        return [str(r["ticker"]) for r in rows]

    async def _apply_events(self, items: Iterable[dict[str, Any]]) -> None:
        rows = [event_row(e) for e in items if isinstance(e.get("event_ticker"), str)]
        self.report.events += len(rows)
        await self._changed(self.store.apply_events(rows, "sync", self.journal_subject))

    async def _category(self, series: str) -> str | None:
        if series not in self._categories:
            found = self.store.series_categories([series])
            if series in found:
                self._categories[series] = found[series]
            else:
                body = await self._get_or_none(f"/series/{series}")
                s = body.get("series") if body else None
                if isinstance(s, dict) and isinstance(s.get("ticker"), str):
                    await self._apply_series([s])
                else:
                    self._categories[series] = None
        return self._categories.get(series)

    async def _apply_markets(self, items: list[dict[str, Any]], seen: SeenSet) -> list[Row]:
        rows: list[Row] = []
        for m in items:
            if not isinstance(m.get("ticker"), str):
                self._problems.add("ticker")
                continue
            rows.append(market_row(m, self._problems))
        self.report.markets += len(rows)
        if not rows:
            return rows
        events = sorted({str(r["event_ticker"]) for r in rows if r.get("event_ticker")})
        known = self.store.event_series(events)
        for ev in events:
            if ev in known or ev in self._missing:
                continue
            body = await self._get_or_none(f"/events/{ev}")
            e = body.get("event") if body else None
            if isinstance(e, dict) and isinstance(e.get("event_ticker"), str):
                await self._apply_events([e])
                known[ev] = None if e.get("series_ticker") is None else str(e["series_ticker"])
            else:
                self.report.missing_events += 1
                log.warning("event %s of a listed market does not exist upstream; markets kept", ev)
                self._missing[ev] = None
                while len(self._missing) > 10_000:
                    self._missing.popitem(last=False)
        for r in rows:
            evt = r.get("event_ticker")
            found = r.get("series_ticker") or (known.get(str(evt)) if evt else None)
            name = str(found) if found else series_of_ticker(str(r["ticker"]))
            r["series_ticker"] = name
            r["category"] = await self._category(name)
        await self._changed(self.store.apply_markets(rows, "sync", self.journal_subject))
        seen.add(str(r["ticker"]) for r in rows)
        return rows

    # ---- passes -----------------------------------------------------------------------

    async def _series_pass(self) -> list[str] | None:
        """The selected series tickers (None = the whole exchange)."""
        o = self.options
        if not o.selective:
            async for page in self._pages("/series", "series", {}):
                await self._apply_series(page)
            return None
        selected: list[str] = []
        for cat in o.categories:
            async for page in self._pages("/series", "series", {"category": cat}):
                selected.extend(await self._apply_series(page))
        for s in sorted(set(o.series)):
            if s in self._categories:
                # read already, with a selected category: reading it again would count it twice
                selected.append(s)
                continue
            body = await self._get_or_none(f"/series/{s}")
            item = body.get("series") if body else None
            if isinstance(item, dict):
                selected.extend(await self._apply_series([item]))
            else:
                log.warning("series %s does not exist upstream", s)
                selected.append(s)
        return sorted(set(selected))

    async def run(self) -> SyncReport:
        t0 = time.monotonic()
        o = self.options
        series = await self._series_pass()
        scopes: list[str | None] = [None] if series is None else list(series)
        for s in scopes:
            for st in o.event_filters():
                params = {"series_ticker": s, "status": st, "limit": o.event_page}
                async for page in self._pages("/events", "events", params):
                    await self._apply_events(page)
        with self.store.seen_set() as seen:
            for s in scopes:
                for st in o.market_filters():
                    params = {"series_ticker": s, "status": st, "limit": o.market_page}
                    async for page in self._pages("/markets", "markets", params):
                        await self._apply_markets(page, seen)
            tickers = sorted(set(o.tickers))
            for i in range(0, len(tickers), TICKERS_PER_REQUEST):
                chunk = ",".join(tickers[i : i + TICKERS_PER_REQUEST])
                params = {"tickers": chunk, "limit": o.market_page}
                async for page in self._pages("/markets", "markets", params):
                    await self._apply_markets(page, seen)
            if o.statuses:
                await self._reconcile(seen, series)
        self.report.problems = dict(self._problems.counts)
        self.report.seconds = time.monotonic() - t0
        return self.report

    async def _reconcile(self, seen: SeenSet, series: list[str] | None) -> None:
        wanted = set(filter_to_statuses(self.options.market_filter_words()))
        for chunk in seen.unseen_markets("kalshi", wanted, series):
            params = {"tickers": ",".join(chunk), "limit": self.options.market_page}
            got: set[str] = set()
            async for page in self._pages("/markets", "markets", params):
                rows = await self._apply_markets(page, seen)
                got.update(str(r["ticker"]) for r in rows)
            self.report.reconciled += len(got)
            gone = [t for t in chunk if t not in got]
            if gone:
                self.report.vanished += len(gone)
                seen.add(gone)
                log.warning(
                    "%d markets no longer listed upstream (kept as they were), e.g. %s",
                    len(gone),
                    gone[0],
                )
