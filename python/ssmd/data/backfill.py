"""Filling the trade gaps of a day from the venue's REST API (`ssmd data backfill`).

For every gap of the day (from its manifests: a lost connection, a stopped or crashed
connector, lost records, a stream hole, archiver downtime, a sequence gap), the trades
Kalshi's `GET /markets/trades` reports from the gap's start to its end, widened by
`margin` on both sides (a connector notices a dead connection after the fact, and
the trades of its last seconds are lost with it), are fetched page by page. Those
whose `trade_id` the archive already holds, live or backfilled before, are dropped;
the others are written as the normalized type `trade_backfill`
(ssmd.store.keys.backfill_type), one file per market and day next to the live
files, never mixed into them, with their own manifest marked `source: rest_backfill`
that lists the gaps it filled. The gaps stay in the archiver's manifests; readers
mark them `backfilled` (ssmd.data.inventory). Running it again adds nothing: every
trade it could add is then known.

A REST trade is normalized as the connector normalizes a WebSocket trade (the same
Rust normalizer, from the same fields), with conn_id, sid and seq 0. It was never
received, so its receive_ts is its exchange time, which puts it inside its gap for
every reader that windows on receive time.

Books cannot be backfilled: the REST API gives a market's book as it is now, never as
it was, so order-book gaps stay (books are invalid across them until the next
snapshot).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any, Final, Protocol

import orjson

from ssmd import core
from ssmd.archiver.gaps import iso_ns
from ssmd.archiver.manifest import build_manifest, day_bounds_ns, write_manifest
from ssmd.archiver.seal import scan_object
from ssmd.data.source import Dataset
from ssmd.exceptions import DataError
from ssmd.store import keys

__all__ = ["BOOKS_NOT_BACKFILLED", "BackfillSummary", "GapFill", "TradeSource", "backfill"]

TRADE = "trade"
BACKFILL_TYPE: Final = keys.backfill_type(TRADE)
TRADES_PATH: Final = "/markets/trades"
PAGE: Final = 1000  # trades a request, Kalshi's maximum
SEC: Final = 1_000_000_000
BOOKS_NOT_BACKFILLED: Final = (
    "order-book gaps are not backfilled: the REST API gives a market's book as it is "
    "now, never as it was; books stay invalid across them until the next snapshot"
)
_CREATED = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)")


class TradeSource(Protocol):
    """What the backfill needs of a REST client (ssmd.venues.kalshi.rest.RestClient)."""

    def paged(
        self, path: str, key: str, params: dict[str, Any] | None = None
    ) -> AsyncIterator[dict[str, Any]]: ...


@dataclass
class GapFill:
    """One gap of the day and what the REST API gave for it."""

    start: str
    end: str
    reason: str
    markets: list[str]  # the markets asked for; [] is every market
    fetched: int = 0  # trades the REST API reported in the window
    added: int = 0  # of those, trades the archive did not hold


@dataclass
class BackfillSummary:
    env: str
    feed: str
    date: str
    gaps: list[GapFill] = field(default_factory=list)
    fetched: int = 0
    added: int = 0
    malformed: int = 0  # REST trades that could not be read (left out, counted)
    files: list[str] = field(default_factory=list)  # keys written
    manifest: str | None = None  # the backfill manifest's key, when written
    books: str = BOOKS_NOT_BACKFILLED
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def created_ns(text: str) -> int:
    """A REST `created_time` (RFC 3339, any fraction of a second) in UTC nanoseconds."""
    m = _CREATED.fullmatch(text)
    if m is None:
        raise ValueError(f"created_time {text[:40]!r} is not an RFC 3339 time")
    zone = "+00:00" if m[3] == "Z" else m[3]
    whole = int(datetime.fromisoformat(m[1] + zone).timestamp())
    return whole * SEC + int((m[2] or "0").ljust(9, "0"))


def _frame(trade: dict[str, Any], ns: int) -> bytes:
    """A REST trade as the WebSocket trade message carrying the same fields."""
    msg = {k: v for k, v in trade.items() if k not in ("ticker", "created_time", "price")}
    msg["market_ticker"] = trade["ticker"]
    msg["ts"] = ns // SEC
    msg["ts_ms"] = ns // 1_000_000
    return orjson.dumps({"type": "trade", "sid": 0, "msg": msg})


def _known_trade_ids(ds: Dataset, day: date, tickers: Iterable[str] | None) -> set[str]:
    """The trade ids the archive holds for the day, live and backfilled (one file at a
    time: the ids only are kept)."""
    known: set[str] = set()
    for file in ds.normalized_files(TRADE, day, tickers=tickers):
        ids = ds.read(file, TRADE).get_column("trade_id").drop_nulls()
        known.update(ids.to_list())
    return known


def _windows(
    gaps: list[dict[str, Any]], day: date, margin_ns: int, tickers: list[str] | None
) -> list[tuple[dict[str, Any], int, int, list[str]]]:
    """(gap, first ns, last ns, markets) to ask for; markets [] is every market."""
    day_start, day_end = day_bounds_ns(day)
    out = []
    for gap in gaps:
        markets: list[str] = list(gap.get("markets") or [])
        if tickers is not None:
            markets = sorted(set(markets) & set(tickers)) if markets else tickers
            if not markets:
                continue  # the gap touches none of the markets asked for
        lo = max(day_start, int(gap["start_ns"]) - margin_ns)
        hi = min(day_end - 1, int(gap["end_ns"]) + margin_ns)
        out.append((gap, lo, hi, markets))
    return out


async def backfill(
    ds: Dataset,
    day: date,
    rest: TradeSource,
    *,
    tickers: list[str] | None = None,
    margin_s: float = 60.0,
) -> BackfillSummary:
    """Fetch, dedupe and write the trades of the day's gaps (see the module doc).

    DataError when the day has no data (naming the days that have some)."""
    started = time.monotonic()
    summary = BackfillSummary(ds.env, ds.feed, day.isoformat())
    if not ds.archive.inventory(ds.feed, day, day):
        from ssmd.data.query import held_days_of

        raise DataError(
            f"no data in environment {ds.env} (feed {ds.feed}) on {day}; days with trade "
            f"data: {held_days_of(ds, [TRADE])}. Fix: choose a day from those"
        )
    windows = _windows(ds.archive.gaps(ds.feed, day), day, round(margin_s * SEC), tickers)
    if not windows:
        summary.seconds = time.monotonic() - started
        return summary
    day_start, day_end = day_bounds_ns(day)
    asked = {m for _, _, _, markets in windows for m in markets}
    every = any(not markets for _, _, _, markets in windows)
    known = _known_trade_ids(ds, day, None if every else asked)
    new: dict[str, tuple[dict[str, Any], int]] = {}
    filled: list[tuple[dict[str, Any], int, int]] = []  # (gap, covered to ns, trades added)
    for gap, lo, hi, markets in windows:
        fill = GapFill(gap["start"], gap["end"], gap["reason"], markets)
        every_market: list[str | None] = [None]
        for ticker in markets or every_market:
            params: dict[str, Any] = {"limit": PAGE, "min_ts": lo // SEC, "max_ts": -(-hi // SEC)}
            if ticker is not None:
                params["ticker"] = ticker
            async for trade in rest.paged(TRADES_PATH, "trades", params):
                try:
                    ns = created_ns(str(trade["created_time"]))
                    trade_id = str(trade["trade_id"])
                except (KeyError, ValueError):
                    summary.malformed += 1
                    continue
                if not isinstance(trade.get("ticker"), str):
                    summary.malformed += 1
                    continue
                if not day_start <= ns < day_end:
                    continue  # another day's: its own backfill
                fill.fetched += 1
                if trade_id in known or trade_id in new:
                    continue
                new[trade_id] = (trade, ns)
                fill.added += 1
        summary.gaps.append(fill)
        summary.fetched += fill.fetched
        filled.append((gap, hi, fill.added))
    summary.malformed += _write_trades(ds, day, list(new.values()), summary)
    summary.added = sum(f.added for f in summary.gaps)
    summary.manifest = _write_manifest(ds, day, filled, changed=bool(summary.files))
    summary.seconds = time.monotonic() - started
    return summary


def _write_trades(
    ds: Dataset, day: date, trades: list[tuple[dict[str, Any], int]], summary: BackfillSummary
) -> int:
    """Normalize the new trades and add them to each market's backfill file; the number
    the normalizer refused."""
    if not trades:
        return 0
    trades.sort(key=lambda t: t[1])
    batch = core.normalize_kalshi([_frame(t, ns) for t, ns in trades], [ns for _, ns in trades], 0)
    by_ticker: dict[str, list[dict[str, Any]]] = {}
    for record in core.decode_records(batch.data):
        by_ticker.setdefault(record["ticker"], []).append(record)
    store = ds.archive.normalized_store
    for ticker, records in sorted(by_ticker.items()):
        key = keys.normalized_key(ds.env, ds.feed, BACKFILL_TYPE, day, ticker)
        with contextlib.suppress(FileNotFoundError):  # trades backfilled before
            records = core.decode_records(core.read_archive(store.get(key)).data) + records
        records.sort(key=lambda r: int(r["receive_ts"]))
        writer = core.ArchiveWriter(3)
        writer.write(core.encode_records(records))
        store.put_atomic(key, writer.flush())
        store.put_atomic(keys.meta_key(key), scan_object(store, key, "normalized").to_json())
        summary.files.append(key)
    return len(batch.problems)


def _write_manifest(
    ds: Dataset, day: date, filled: list[tuple[dict[str, Any], int, int]], *, changed: bool
) -> str | None:
    """The backfill's manifest, written when trades were added or a gap was covered
    further than before; its key, or None when nothing changed."""
    store = ds.archive.normalized_store
    key = keys.manifest_key(ds.env, ds.feed, BACKFILL_TYPE, day)
    try:
        before = orjson.loads(store.get(key))
    except FileNotFoundError:
        before = {}
    done = {(g["start_ns"], g["reason"]): g for g in before.get("backfilled_gaps", [])}
    now = iso_ns(time.time_ns())
    for gap, to_ns, added in filled:
        held = done.get((gap["start_ns"], gap["reason"]))
        if held is not None and held["to_ns"] >= to_ns and not added:
            continue
        changed = True
        done[(gap["start_ns"], gap["reason"])] = {
            "start_ns": gap["start_ns"],
            "start": gap["start"],
            "reason": gap["reason"],
            "markets": gap.get("markets", []),
            "to_ns": max(to_ns, held["to_ns"]) if held else to_ns,
            "to": iso_ns(max(to_ns, held["to_ns"]) if held else to_ns),
            "trades": added + (held["trades"] if held else 0),
            "at": now,
            "source": keys.REST_BACKFILL_SOURCE,
        }
    if not changed:
        return None
    manifest = build_manifest(store, ds.env, ds.feed, BACKFILL_TYPE, day, status="sealed")
    manifest.update(
        {
            "source": keys.REST_BACKFILL_SOURCE,
            "quality_score": None,  # the day's quality is the archiver's manifests' own
            "backfilled_gaps": sorted(done.values(), key=lambda g: (g["start_ns"], g["reason"])),
        }
    )
    return write_manifest(store, manifest)
