"""The market sync of a venue that lists its markets in one listing (Polymarket, Kraken),
where Kalshi has series, events and markets (ssmd.secmaster.sync).

The venue reads its listing and gives every market on it as `markets` rows, with the
tickers the environment's symbols select (`Listed`). The sync stores the selected ones (or
every one), a page per transaction, then reconciles: the venue's stored markets still
open, halted or not yet open that the listing no longer carries are asked for again
(`reread`, e.g. Polymarket's listing of closed markets), and what the venue no longer
knows at all is closed with `status_text` "unlisted". A listing that was not read to its
end (`complete` false: Gamma stops at offset 10,000) reconciles nothing, since a market
missing from it may only be beyond where it stopped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from ssmd.secmaster.model import Row
from ssmd.secmaster.sync import SyncReport, SyncRun

if TYPE_CHECKING:
    from ssmd.config.models.environment import Symbols

__all__ = ["UNLISTED", "Listed", "ListingSync"]

log = logging.getLogger(__name__)

PAGE: Final = 500  # rows per write transaction
REREAD: Final = 100  # stored markets asked for again per call
LIVE: Final = ("open", "halted", "initialized", "unknown")
UNLISTED: Final = "unlisted"  # status_text of a market its venue no longer lists


@dataclass
class Listed:
    rows: list[Row]  # every market of the listing, as `markets` rows of the venue
    selected: set[str]  # the tickers the environment's symbols select
    complete: bool = True  # read to its end: what it does not carry is not listed
    requests: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # rows not readable, by reason


# (rest_url, symbols) -> the listing
Read = Callable[[str, "Symbols"], Awaitable[Listed]]
# (rest_url, stored rows the listing no longer carries) -> what the venue says of them now
Reread = Callable[[str, list[Row]], Awaitable[list[Row]]]


async def _nothing(rest_url: str, rows: list[Row]) -> list[Row]:
    return []


@dataclass(frozen=True)
class ListingSync:
    """A venue's `sync_markets` from its listing."""

    venue: str
    read: Read
    reread: Reread = _nothing

    async def __call__(self, run: SyncRun) -> SyncReport:
        t0 = time.monotonic()
        report = SyncReport()
        listed = await self.read(run.rest_url, run.symbols)
        report.pages = listed.requests
        report.problems = dict(listed.skipped)
        rows = listed.rows
        if not run.everything:
            rows = [r for r in rows if r["ticker"] in listed.selected]
        report.markets = len(rows)
        for i in range(0, len(rows), PAGE):
            await self._write(run, rows[i : i + PAGE], report)
        if listed.complete:
            await self._reconcile(run, {str(r["ticker"]) for r in listed.rows}, report)
        else:
            log.warning(
                "%s: the listing was not read to its end; stored markets it did not carry "
                "are left as they were",
                self.venue,
            )
        report.seconds = time.monotonic() - t0
        return report

    async def _write(self, run: SyncRun, rows: list[Row], report: SyncReport) -> None:
        changes = run.store.apply_markets(rows, "sync", run.journal_subject)
        report.count(changes)
        if changes and run.on_changes is not None:
            await run.on_changes(changes)

    async def _reconcile(self, run: SyncRun, listed: set[str], report: SyncReport) -> None:
        gone = [
            r
            for r in run.store.markets(statuses=LIVE, venue=self.venue)
            if str(r["ticker"]) not in listed
        ]
        for i in range(0, len(gone), REREAD):
            chunk = gone[i : i + REREAD]
            wanted = {str(r["ticker"]) for r in chunk}
            found = [r for r in await self.reread(run.rest_url, chunk) if r["ticker"] in wanted]
            known = {str(r["ticker"]) for r in found}
            report.reconciled += len(known)
            unlisted: list[Row] = [
                {
                    "venue": self.venue,
                    "ticker": r["ticker"],
                    "status": "closed",
                    "status_text": UNLISTED,
                }
                for r in chunk
                if str(r["ticker"]) not in known
            ]
            report.vanished += len(unlisted)
            await self._write(run, [*found, *unlisted], report)
        if report.vanished:
            log.warning(
                "%s: %d stored markets are no longer listed; closed as %r",
                self.venue,
                report.vanished,
                UNLISTED,
            )
