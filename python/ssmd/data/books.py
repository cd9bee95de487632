"""Point-in-time order books from the archive: `book_at` and `top_of_book`.

    import ssmd.data
    book = ssmd.data.book_at("KXBTCD-26DEC0317-T118000", "2026-12-03T12:00:00Z", env="kalshi-sim")
    book.valid, book.reason, book.bids[:3], book.asks[:3]     # (price_e6, size_e6), best first
    tob = ssmd.data.top_of_book("KXBTCD-...", "2026-12-03T12:00Z", "2026-12-03T13:00Z", every="1s")

A book is rebuilt with the Rust BookSet from the market's order-book records (its
snapshots and deltas) as the archive holds them, in archive order, up to the last
record received at or before the time asked. Each day of a market is indexed once
per process: a pass over its records that keeps a checkpoint of the book every
CHECKPOINT_EVERY records, so a later question replays at most that many deltas
from the nearest checkpoint at or before it. A day starts from the book the day
before ended with (days are split by receive time, books are not).

Validity: a book is valid when it comes from a snapshot and no gap that affects its
market began after that snapshot (the day's manifests list the gaps: a disconnect,
a sequence gap on its subscription, a hole in the stream, archiver downtime; lost
trades do not touch books). Across such a gap the book is marked invalid with the
gap's reason until the next snapshot, never continued as if nothing happened.
"""

from __future__ import annotations

import bisect
import re
from collections import OrderedDict, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from ssmd import core
from ssmd.data.query import DateLike, window
from ssmd.data.source import DataFile, Dataset
from ssmd.exceptions import ArchiveError, DataError
from ssmd.store import keys

__all__ = [
    "CHECKPOINT_EVERY",
    "LOOKBACK_DAYS",
    "BookAt",
    "book_at",
    "book_record_at",
    "top_of_book",
]

CHECKPOINT_EVERY = 10_000  # records replayed at most from a checkpoint
LOOKBACK_DAYS = 7  # days searched back for the snapshot a book starts from
CACHE_BYTES = 512 << 20  # decompressed records kept for indexed days, at most
_BOOK_TYPE = "orderbook"
_NOT_BOOK_GAPS = ("records_lost",)  # lost trades or lifecycle events leave books exact


@dataclass(frozen=True)
class BookAt:
    """A market's book at a moment. Prices and sizes in 1e-6 units, best first; asks
    are YES asks derived from NO bids (ask = 1 - NO bid)."""

    ticker: str
    at_ns: int
    valid: bool
    reason: str | None  # why the book is not valid
    bids: list[tuple[int, int]]
    asks: list[tuple[int, int]]
    as_of_ns: int | None  # receive time of the last record applied (None: none)
    snapshot_ns: int | None  # receive time of the snapshot it comes from

    def to_dict(self) -> dict[str, Any]:
        return {
            "ticker": self.ticker,
            "at_ns": self.at_ns,
            "valid": self.valid,
            "reason": self.reason,
            "bids": [{"price_e6": p, "size_e6": s} for p, s in self.bids],
            "asks": [{"price_e6": p, "size_e6": s} for p, s in self.asks],
            "as_of_ns": self.as_of_ns,
            "snapshot_ns": self.snapshot_ns,
        }


@dataclass
class _DayIndex:
    """One market's order-book records of one day, replayable from checkpoints."""

    data: bytes
    ends: list[int]  # end offset of each record in `data`
    seen: list[int]  # running maximum of the records' receive times
    snapshots: list[int]  # indices of the snapshot records
    snapshot_ns: list[int]  # their receive times
    carried_snapshot_ns: int | None  # the snapshot the day's start state came from
    # (records applied, checkpoint record or None before any snapshot), first at 0
    checkpoints: list[tuple[int, bytes | None]] = field(default_factory=list)
    end_state: bytes | None = None

    @property
    def size(self) -> int:
        return len(self.data) + 16 * len(self.ends)

    def start(self, i: int) -> int:
        return self.ends[i - 1] if i > 0 else 0

    def applied_by(self, at_ns: int) -> int:
        """How many records were received at or before `at_ns`."""
        return bisect.bisect_right(self.seen, at_ns)

    def snapshot_before(self, count: int) -> int | None:
        """Receive time of the last snapshot among the first `count` records (or the one
        carried from the day before)."""
        i = bisect.bisect_left(self.snapshots, count)
        return self.snapshot_ns[i - 1] if i > 0 else self.carried_snapshot_ns


_cache: OrderedDict[tuple[Any, ...], _DayIndex] = OrderedDict()


def _remember(key: tuple[Any, ...], index: _DayIndex) -> None:
    _cache[key] = index
    _cache.move_to_end(key)
    while len(_cache) > 1 and sum(i.size for i in _cache.values()) > CACHE_BYTES:
        _cache.popitem(last=False)


def _checkpoint_of(books: Any, ticker: str, receive_ns: int) -> bytes | None:
    for name, record in books.checkpoint(receive_ns, everything=True):
        if name == ticker:
            return bytes(record)
    return None


def _day_records(files: list[DataFile]) -> bytes:
    """The records of a market's order-book files of a day (sealed, then spooled)."""
    parts: list[bytes] = []
    for f in files:
        contents = core.read_archive(f.load())
        if contents.truncated_tail is not None and f.sealed:
            offset, length = contents.truncated_tail
            raise ArchiveError(
                f"{f.location}: archive ends inside a zstd frame ({length} bytes at byte {offset})"
            )
        parts.append(contents.data)
    return b"".join(parts)


def _index(
    ds: Dataset, ticker: str, day: date, depth_left: int, files: list[DataFile] | None = None
) -> _DayIndex | None:
    """The day's index (built on first use, from the previous day's end state), or None
    when neither this day nor the LOOKBACK_DAYS before it hold the market's book.
    `files`: the market's book files of the day, when the caller listed them already."""
    if files is None:
        files = ds.normalized_files(_BOOK_TYPE, day, tickers=[ticker])
    key = (ds.env, ds.feed, ticker, day, tuple((f.location, f.size) for f in files))
    held = _cache.get(key)
    if held is not None:
        _cache.move_to_end(key)
        return held
    data = _day_records(files)
    heads = core.record_heads(data) if data else []
    kinds = [h[1] for h in heads]
    first_snapshot = kinds.index("book_snapshot") if "book_snapshot" in kinds else len(kinds)
    # The day starts from the day before unless a snapshot comes before any delta.
    needs_before = first_snapshot == len(kinds) or "book_delta" in kinds[:first_snapshot]
    before = None
    if needs_before and depth_left > 0:
        before = _index(ds, ticker, day - timedelta(days=1), depth_left - 1)
    if not data and before is None:
        return None
    seen: list[int] = []
    top = 0
    for h in heads:
        top = max(top, h[0])
        seen.append(top)
    snapshots = [i for i, k in enumerate(kinds) if k == "book_snapshot"]
    index = _DayIndex(
        data=data,
        ends=[end for _, end in core.record_spans(data)] if data else [],
        seen=seen,
        snapshots=snapshots,
        snapshot_ns=[heads[i][0] for i in snapshots],
        carried_snapshot_ns=before.snapshot_before(len(before.ends)) if before else None,
    )
    books = core.BookSet(ignore_seqs=True)
    start_state = before.end_state if before else None
    if start_state is not None:
        books.apply(start_state)
    index.checkpoints.append((0, start_state))
    for first in range(0, len(index.ends), CHECKPOINT_EVERY):
        last = min(first + CHECKPOINT_EVERY, len(index.ends))
        books.apply(data[index.start(first) : index.ends[last - 1]])
        index.checkpoints.append((last, _checkpoint_of(books, ticker, seen[last - 1])))
    index.end_state = index.checkpoints[-1][1]
    _remember(key, index)
    return index


class _Gaps:
    """The gaps that break one market's book, per day, read once per call."""

    def __init__(self, ds: Dataset, ticker: str) -> None:
        self.ds, self.ticker = ds, ticker
        self.by_day: dict[date, list[dict[str, Any]]] = {}

    def of(self, day: date) -> list[dict[str, Any]]:
        if day not in self.by_day:
            self.by_day[day] = [
                g
                for g in self.ds.gaps(day)
                if g["reason"] not in _NOT_BOOK_GAPS
                and (not g["markets"] or self.ticker in g["markets"])
            ]
        return self.by_day[day]

    def reason(self, since_ns: int, at_ns: int) -> str | None:
        """The reason of the first gap that began in (since_ns, at_ns]."""
        day, last_day = keys.day_of_ns(since_ns), keys.day_of_ns(at_ns)
        while day <= last_day:
            for gap in self.of(day):
                if since_ns < gap["start_ns"] <= at_ns:
                    return f"{gap['reason']} from {gap['start']}"
            day += timedelta(days=1)
        return None


class _Replay:
    """A BookSet following one market through a day's index."""

    def __init__(self, index: _DayIndex, ticker: str, count: int) -> None:
        self.index, self.ticker = index, ticker
        done, state = max((c for c in index.checkpoints if c[0] <= count), key=lambda c: c[0])
        self.books = core.BookSet(ignore_seqs=True)
        self.invalid: str | None = None
        if state is not None:
            self._apply(state)
        self.done = done
        self.advance(count)

    def _apply(self, data: bytes) -> None:
        for event in self.books.apply(data):
            if isinstance(event, core.InvalidatedEvent) and event.ticker == self.ticker:
                self.invalid = event.reason
            elif isinstance(event, core.ResyncedEvent) and event.ticker == self.ticker:
                self.invalid = None

    def advance(self, count: int) -> None:
        if count > self.done:
            index = self.index
            self._apply(index.data[index.start(self.done) : index.ends[count - 1]])
            self.done = count

    def view(self, depth: int) -> core.BookView | None:
        return self.books.view(self.ticker, depth)


def _book(ticker: str, at_ns: int, depth: int, replay: _Replay, gaps: _Gaps) -> BookAt:
    index, count = replay.index, replay.done
    view = replay.view(depth)
    snapshot_ns = index.snapshot_before(count)
    as_of = index.seen[count - 1] if count else None
    if view is None or snapshot_ns is None:
        return BookAt(
            ticker,
            at_ns,
            False,
            f"no snapshot in the {LOOKBACK_DAYS} days before",
            [],
            [],
            as_of,
            None,
        )
    reason = replay.invalid if not view.valid else None
    if reason is None and not view.valid:
        reason = "invalid"
    if reason is None:
        reason = gaps.reason(snapshot_ns, at_ns)
    return BookAt(
        ticker,
        at_ns,
        reason is None,
        reason,
        view.bids,
        view.asks,
        as_of,
        snapshot_ns,
    )


def _at_ns(value: DateLike | int) -> int:
    if isinstance(value, int):
        return value
    if not isinstance(value, datetime) and (isinstance(value, date) or len(value.strip()) <= 10):
        raise ValueError(f"{value!r} is a day; give a time (YYYY-MM-DDTHH:MM:SSZ)")
    return window(value).start_ns


def book_at(
    ticker: str,
    at: DateLike | int,
    depth: int | None = None,
    *,
    env: str | None = None,
    data_dir: str | Path | None = None,
    config_dir: str | Path | None = None,
    feed: str | None = None,
    dataset: Dataset | None = None,
) -> BookAt:
    """The market's book after every record received at or before `at` (a time, or
    UTC nanoseconds), `depth` levels a side (default: all). DataError when the market
    has no order-book records in the LOOKBACK_DAYS before (naming close tickers)."""
    ds = dataset or Dataset.open(env, data_dir=data_dir, config_dir=config_dir, feed=feed)
    at_ns = _at_ns(at)
    day = keys.day_of_ns(at_ns)
    index = _index(ds, ticker, day, LOOKBACK_DAYS)
    if index is None:
        raise _unknown(ds, ticker, day)
    replay = _Replay(index, ticker, index.applied_by(at_ns))
    return _book(ticker, at_ns, depth or 0, replay, _Gaps(ds, ticker))


def book_record_at(
    ticker: str, at_ns: int, *, dataset: Dataset, files: list[DataFile] | None = None
) -> bytes | None:
    """The market's book after every record received before `at_ns`, as the `book`
    checkpoint record the connector publishes for late readers (a BookSet restores it
    exactly, an invalid book as invalid); None when the market has no order-book
    records in the LOOKBACK_DAYS before. A replay starts its consumers' books with it.
    `files`: the market's book files of `at_ns`'s day, when the caller listed them."""
    index = _index(dataset, ticker, keys.day_of_ns(at_ns), LOOKBACK_DAYS, files)
    if index is None:
        return None
    count = index.applied_by(at_ns - 1)
    if count == 0 and index.checkpoints[0][1] is None:
        return None  # nothing before: the day's own snapshot comes in the replay
    replay = _Replay(index, ticker, count)
    return _checkpoint_of(replay.books, ticker, at_ns)


def book_records_at(
    tickers: Iterable[str], at_ns: int, *, dataset: Dataset
) -> list[tuple[str, bytes]]:
    """(ticker, book_record_at) of each market that has a book then, in ticker order; the
    day's book files are listed once for all of them."""
    day = keys.day_of_ns(at_ns)
    by_key: dict[str, list[DataFile]] = defaultdict(list)
    for f in dataset.normalized_files(_BOOK_TYPE, day):
        by_key[f.key].append(f)
    out = []
    for ticker in sorted(tickers):
        key = keys.normalized_key(dataset.env, dataset.feed, _BOOK_TYPE, day, ticker)
        record = book_record_at(ticker, at_ns, dataset=dataset, files=by_key.get(key, []))
        if record is not None:
            out.append((ticker, record))
    return out


def _unknown(ds: Dataset, ticker: str, day: date) -> DataError:
    from ssmd.data.kinds import closest

    days = [day - timedelta(days=i) for i in range(LOOKBACK_DAYS + 1)]
    known = sorted(ds.tickers_of(days))
    return DataError(
        f"no order-book data for {ticker!r} in environment {ds.env} from {days[-1]} to "
        f"{day}{closest(ticker, known) or '; markets with data then: ' + ', '.join(known[:5])}. "
        "Fix: check the ticker and the time"
    )


_EVERY = re.compile(r"(\d+)(ns|us|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1_000, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


def _every_ns(every: str) -> int:
    m = _EVERY.fullmatch(every.strip())
    if m is None or int(m[1]) == 0:
        raise ValueError(f"every={every!r} is not a positive duration such as 500ms, 1s, 5m, 1h")
    return int(m[1]) * _UNIT_NS[m[2]]


def top_of_book(
    ticker: str,
    start: DateLike,
    end: DateLike,
    every: str = "1s",
    *,
    env: str | None = None,
    data_dir: str | Path | None = None,
    config_dir: str | Path | None = None,
    feed: str | None = None,
    dataset: Dataset | None = None,
) -> pl.DataFrame:
    """The market's best bid and ask at `start`, `start + every`, ... before `end`:
    columns ts, valid, reason, bid_e6, bid_size_e6, ask_e6, ask_size_e6 (null when a
    side is empty or the book invalid). One pass over the records per day."""
    ds = dataset or Dataset.open(env, data_dir=data_dir, config_dir=config_dir, feed=feed)
    win = window(start, end)
    step = _every_ns(every)
    rows: dict[str, list[Any]] = {
        c: [] for c in ("ts", "valid", "reason", "bid_e6", "bid_size_e6", "ask_e6", "ask_size_e6")
    }
    gaps = _Gaps(ds, ticker)
    replay: _Replay | None = None
    replay_day: date | None = None
    found = False
    for at_ns in range(win.start_ns, win.end_ns, step):
        day = keys.day_of_ns(at_ns)
        if day != replay_day:
            index = _index(ds, ticker, day, LOOKBACK_DAYS)
            replay = _Replay(index, ticker, index.applied_by(at_ns)) if index else None
            replay_day = day
        if replay is None:
            book = BookAt(ticker, at_ns, False, "no order-book data", [], [], None, None)
        else:
            found = True
            replay.advance(replay.index.applied_by(at_ns))
            book = _book(ticker, at_ns, 1, replay, gaps)
        bid = book.bids[0] if book.valid and book.bids else (None, None)
        ask = book.asks[0] if book.valid and book.asks else (None, None)
        for name, value in zip(rows, (at_ns, book.valid, book.reason, *bid, *ask), strict=True):
            rows[name].append(value)
    if not found:
        raise _unknown(ds, ticker, win.last_day)
    frame = pl.DataFrame(
        rows,
        schema_overrides={
            "ts": pl.Int64,
            "bid_e6": pl.Int64,
            "bid_size_e6": pl.Int64,
            "ask_e6": pl.Int64,
            "ask_size_e6": pl.Int64,
        },
    )
    return frame.with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC")))
