"""The archive over HTTP: `/v1/history/{kind}`, `/v1/history/book`, `/v1/inventory`,
`/v1/quality` (docs/gateway.md).

Every answer comes from ssmd.data (scan, book_at, the inventory), the one reader of
the archive. Rows are streamed: the table is read in batches as the client takes them
(Polars' streaming engine over ssmd.data.scan), rendered a chunk at a time in the
format asked for (ssmd.gateway.formats: json, ndjson, csv, arrow, parquet), so what a
request holds is a few batches, never the day. A request gives at most `limit` rows
(the gateway's `history_limit` when it names none, `history_max_limit` at most); when
more match, the answer says so and carries a `next` cursor for the following page.

A cursor is the day of the page's last row and how many rows of that day (in the
window, in scan order) were given: the next page reads from that day on and skips
them, so a page never reads days before its own. Scan order is the archive's, which
holds still for sealed days; a day still open (or exported between two pages) may
order its rows differently from one page to the next.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, Final

import orjson
from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from ssmd.exceptions import ArchiveError, DataError, HistoryError
from ssmd.gateway.formats import FORMATS, PageWriter, page_writer
from ssmd.store import keys

if TYPE_CHECKING:
    import polars as pl

    from ssmd.data.source import Dataset
    from ssmd.gateway.service import Gateway
    from ssmd.gateway.tenants import Policy

__all__ = ["register"]

DAY_NS: Final = 86_400 * 1_000_000_000
CHUNK_ROWS: Final = 5_000  # rows rendered and written at a time
TIME_FORMS: Final = (
    "a date (YYYY-MM-DD), a time (YYYY-MM-DDTHH:MM:SS[.fff]Z, ISO 8601) or UTC nanoseconds"
)
# Table names clients may also use: the book's deltas are its rows over time.
_ALIASES: Final = {"orderbook": "book_delta"}


def _bad(message: str) -> HistoryError:
    return HistoryError(400, "bad_request", message)


def _not_found(exc: DataError) -> HistoryError:
    return HistoryError(404, "not_found", str(exc))


# ---- parameters ---------------------------------------------------------------------------


def _time(value: str | None, name: str, *, required: bool = False) -> str | int | None:
    """A time parameter as ssmd.data takes it (digits: UTC nanoseconds), checked."""
    from ssmd.data.query import window

    if value is None or not value.strip():
        if required:
            raise _bad(f"{name} is required: {TIME_FORMS}")
        return None
    text = value.strip()
    moment: str | int = int(text) if text.isdigit() else text
    try:
        window(moment)
    except (ValueError, OverflowError):
        raise _bad(f"{name}={value!r} is not {TIME_FORMS}") from None
    return moment


def _tickers(value: str | None) -> list[str] | None:
    names = sorted({t.strip() for t in (value or "").split(",") if t.strip()})
    return names or None


@dataclass(frozen=True)
class Page:
    """Where a page starts: the first day it reads and the rows of that day to skip."""

    day: date | None  # None: the window's first day (the first page)
    skip: int = 0


def _fingerprint(kind: str, start_ns: int, end_ns: int, tickers: list[str] | None) -> str:
    text = f"{kind}|{start_ns}|{end_ns}|{','.join(tickers or [])}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _cursor_out(fingerprint: str, day: date, skip: int) -> str:
    data = orjson.dumps({"q": fingerprint, "d": day.isoformat(), "o": skip})
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _cursor_in(value: str | None, fingerprint: str) -> Page:
    if not value:
        return Page(None)
    try:
        data = orjson.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
        page = Page(date.fromisoformat(data["d"]), int(data["o"]))
        same = data["q"] == fingerprint
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        raise _bad("cursor is not one this gateway gave; pass `next` as it came") from None
    if not same or page.skip < 0:
        raise _bad("cursor belongs to another query: page with the same kind, tickers, from and to")
    return page


# ---- rows -----------------------------------------------------------------------------------


@dataclass
class _Progress:
    """What the page gave so far, for its cursor: the day of the last row and how many
    rows of that day (in the window, in scan order) were given, this page's or before."""

    day: date
    run: int
    rows: int = 0

    def add(self, chunk: pl.DataFrame) -> None:
        import polars as pl

        days = chunk.get_column("receive_ts").dt.epoch("ns") // DAY_NS
        last = int(days[-1])
        same = int((days == last).cast(pl.Int64).sum())
        last_day = keys.day_of_ns(last * DAY_NS)
        # Rows of a day are together in scan order: the trailing run is the last day's.
        if same == chunk.height and last_day == self.day:
            self.run += same
        else:
            self.run = int(days.rle().struct.field("len")[-1])
            self.day = last_day
        self.rows += chunk.height


class _Rows:
    """One page of a table, read in batches as the response is written."""

    def __init__(self, frame: pl.LazyFrame, limit: int) -> None:
        self.batches: Iterator[pl.DataFrame] = frame.collect_batches(
            chunk_size=CHUNK_ROWS, lazy=True
        )
        self.limit = limit
        self.given = 0
        self.truncated = False

    def next_chunk(self) -> pl.DataFrame | None:
        """The next rows of the page (None at its end); reads the archive (a thread)."""
        for chunk in self.batches:
            if chunk.height == 0:
                continue
            room = self.limit - self.given
            if chunk.height > room:
                self.truncated = True  # the page asked for one row more than it gives
                chunk = chunk.head(room)
                if chunk.height == 0:
                    return None
            self.given += chunk.height
            return chunk
        return None


async def _stream(
    rows: _Rows,
    first: pl.DataFrame | None,
    writer: PageWriter,
    progress: _Progress,
    fingerprint: str,
) -> AsyncIterator[bytes]:
    yield writer.head()
    chunk = first
    while chunk is not None:
        progress.add(chunk)
        yield await asyncio.to_thread(writer.rows, chunk)
        chunk = None if rows.truncated else await asyncio.to_thread(rows.next_chunk)
    cursor = _cursor_out(fingerprint, progress.day, progress.run) if rows.truncated else None
    yield writer.tail(progress.rows, cursor)


# ---- routes ---------------------------------------------------------------------------------


def register(app: FastAPI, gw: Gateway) -> None:
    """Add the history routes to the gateway's app (all behind its API keys)."""
    settings = gw.settings

    def dataset(venue: str) -> Dataset:
        opener = gw.feeds[venue].settings.dataset
        if opener is None:
            raise HistoryError(
                404, "not_found", "this gateway serves no archive (no environment given)"
            )
        return opener()

    @app.exception_handler(HistoryError)
    async def _refused(_request: Any, exc: HistoryError) -> JSONResponse:
        return JSONResponse(
            {"type": "error", "code": exc.code, "message": exc.message}, status_code=exc.status
        )

    @app.get("/v1/history/book", summary="A market's order book at a moment, from the archive")
    async def book(
        request: Request,
        ticker: str = Query(..., description="The market (its symbol)"),
        at: str = Query(..., description="When: a time (ISO 8601, UTC) or UTC nanoseconds"),
        depth: int | None = Query(None, ge=1, description="Levels a side (default: all)"),
    ) -> Response:
        from ssmd.data.books import book_at

        policy = _policy(gw, request)
        if policy is not None and not policy.allows(ticker):
            policy.refuse("entitlement")
            raise HistoryError(403, "forbidden", policy.forbidden_message([ticker]))
        moment = _time(at, "at", required=True)
        venue, name = gw.symbols.split(ticker)
        ds = dataset(venue)
        try:
            result = await asyncio.to_thread(book_at, name, moment or 0, depth, dataset=ds)
        except DataError as exc:
            raise _not_found(exc) from None
        except ValueError as exc:
            raise _bad(f"at: {exc}") from None
        except ArchiveError as exc:
            raise HistoryError(500, "archive_damaged", str(exc)) from None
        # Named as asked: a further venue's symbol, not the ticker its archive holds.
        body = {**result.to_dict(), "ticker": ticker}
        return Response(orjson.dumps(body), media_type="application/json")

    @app.get(
        "/v1/history/{kind}",
        summary="Rows of an archived table (trade, ticker, book_delta, ...), streamed",
    )
    async def history(
        request: Request,
        kind: str,
        start: str | None = Query(None, alias="from", description=TIME_FORMS),
        end: str | None = Query(
            None, alias="to", description=TIME_FORMS + "; default: the end of from's day"
        ),
        tickers: str | None = Query(None, description="Comma-separated markets (default: all)"),
        venue: str | None = Query(
            None, description="Whose archive: a venue the gateway serves (default: its own)"
        ),
        limit: int | None = Query(None, description="Rows at most (the gateway's default)"),
        fmt: str = Query("json", alias="format", description="json, ndjson, csv, arrow or parquet"),
        cursor: str | None = Query(None, description="`next` of the previous page"),
    ) -> Response:
        from ssmd.data.kinds import parse_kinds
        from ssmd.data.query import scan, window

        if fmt not in FORMATS:
            raise _bad(f"format={fmt!r}: expected one of {', '.join(FORMATS)}")
        rows_max = settings.history_max_limit
        wanted = settings.history_limit if limit is None else limit
        policy = _policy(gw, request)
        cap = policy.limits.history_rows if policy is not None else None
        if policy is not None and cap is not None and cap < rows_max:
            rows_max = cap
            wanted = min(wanted, cap) if limit is None else wanted
            if wanted > cap:
                policy.refuse("history_rows")
                raise _bad(
                    f"limit={wanted} is more than tenant {policy.name} may have in one request "
                    f"({cap} rows, its history_rows limit). Fix: ask for {cap} or fewer and "
                    "page with `next`"
                )
        if wanted < 1:
            raise _bad("limit must be 1 or more")
        if wanted > rows_max:
            raise _bad(
                f"limit={wanted} is more than this gateway gives in one request "
                f"({rows_max} rows). Fix: ask for {rows_max} or fewer and page with `next`"
            )
        try:
            (table,) = parse_kinds(_ALIASES.get(kind, kind))
        except DataError as exc:
            raise HistoryError(404, "not_found", f"{exc}; the point-in-time book is book") from None
        except ValueError:
            raise HistoryError(
                404, "not_found", f"{kind} names several tables: ask for one of them"
            ) from None
        first = _time(start, "from", required=True)
        last = _time(end, "to")
        try:
            win = window(first or 0, last)
        except ValueError as exc:
            raise _bad(f"to: {exc}") from None
        symbols = _tickers(tickers)
        venue, names = _one_venue(gw, venue, symbols)
        # What a cursor pages through: the markets, or a venue's (the tenant's) markets.
        scope = symbols or ([f"venue={venue}"] if venue != gw.symbols.own else None)
        if policy is not None:
            denied = policy.forbidden(symbols or [])
            if denied:
                policy.refuse("entitlement")
                raise HistoryError(403, "forbidden", policy.forbidden_message(denied))
            pattern = policy.pattern_of(venue)
            if not symbols and pattern is not None:
                scope = [*(scope or []), pattern]
            policy.usage.history_rows += wanted
        fingerprint = _fingerprint(table, win.start_ns, win.end_ns, scope)
        page = _cursor_in(cursor, fingerprint)
        start_ns = win.start_ns
        if page.day is not None:
            start_ns = max(start_ns, _day_start_ns(page.day))
        ds = dataset(venue)

        def plan() -> tuple[_Rows, pl.DataFrame | None, PageWriter]:
            frame = scan(table, start_ns, win.end_ns, tickers=names, dataset=ds)
            if policy is not None and not names:
                frame = policy.entitled_rows(frame, venue)
            rows = _Rows(frame.slice(page.skip, wanted + 1), wanted)
            return rows, rows.next_chunk(), page_writer(fmt, table, frame.collect_schema())

        try:
            # The plan and the first rows before the answer starts: refusals get a status.
            rows, head, writer = await asyncio.to_thread(plan)
        except DataError as exc:
            raise _not_found(exc) from None
        except ArchiveError as exc:
            raise HistoryError(500, "archive_damaged", str(exc)) from None
        progress = _Progress(keys.day_of_ns(start_ns), page.skip)
        return StreamingResponse(
            _stream(rows, head, writer, progress, fingerprint), media_type=FORMATS[fmt]
        )

    @app.get("/v1/inventory", summary="What the archive holds per day and data type")
    async def inventory(
        start: str | None = Query(None, alias="from", description="First day (YYYY-MM-DD)"),
        end: str | None = Query(None, alias="to", description="Last day (YYYY-MM-DD)"),
        venue: str | None = Query(
            None, description="Whose archive: a venue the gateway serves (default: its own)"
        ),
    ) -> Response:
        first, last = _day(start, "from"), _day(end, "to")
        ds = dataset(gw.venue(venue))
        rows = await asyncio.to_thread(ds.archive.inventory, ds.feed, first, last)
        if not rows:
            raise HistoryError(
                404,
                "not_found",
                f"no data in environment {ds.env} (feed {ds.feed}) from "
                f"{first or 'the first day'} to {last or 'today'}; "
                f"days with data: {await asyncio.to_thread(_held_days, ds)}",
            )
        body = {"env": ds.env, "feed": ds.feed, "inventory": rows}
        return Response(orjson.dumps(body), media_type="application/json")

    @app.get("/v1/quality", summary="A day's quality report: gaps, counts, quality_score")
    async def quality(
        request: Request,
        day: str = Query(..., alias="date", description="YYYY-MM-DD"),
        venue: str | None = Query(
            None, description="Whose archive: a venue the gateway serves (default: its own)"
        ),
    ) -> Response:
        when = _day(day, "date")
        assert when is not None
        venue = gw.venue(venue)
        ds = dataset(venue)
        report = await asyncio.to_thread(ds.archive.quality, ds.feed, when)
        if not report["found"]:
            raise HistoryError(
                404,
                "not_found",
                f"no data in environment {ds.env} (feed {ds.feed}) on {when}; days with "
                f"data: {await asyncio.to_thread(_held_days, ds)}",
            )
        gap_list = await asyncio.to_thread(ds.archive.gaps, ds.feed, when)
        policy = _policy(gw, request)
        report["gap_list"] = gap_list if policy is None else policy.entitled_gaps(gap_list, venue)
        return Response(orjson.dumps({"env": ds.env, **report}), media_type="application/json")


def _one_venue(
    gw: Gateway, venue: str | None, symbols: list[str] | None
) -> tuple[str, list[str] | None]:
    """The venue of a history request and its markets' tickers in that venue's archive:
    the venue of its symbols (one), or `venue` (default the own) when it names none."""
    if not symbols:
        return gw.venue(venue), None
    split = [gw.symbols.split(s) for s in symbols]
    venues = {v for v, _ in split} | ({gw.venue(venue)} if venue else set())
    if len(venues) > 1:
        raise _bad(
            f"tickers of one venue per request: these are of {', '.join(sorted(venues))}. "
            "Fix: one request per venue"
        )
    return venues.pop(), [t for _, t in split]


def _day(value: str | None, name: str) -> date | None:
    if value is None or not value.strip():
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise _bad(f"{name}={value!r} is not a date (YYYY-MM-DD)") from None


def _policy(gw: Gateway, request: Request) -> Policy | None:
    return gw.settings.tenants.of(request.scope.get("state", {}).get("api_key"))


def _day_start_ns(day: date) -> int:
    return day.toordinal() * DAY_NS - date(1970, 1, 1).toordinal() * DAY_NS


def _held_days(ds: Dataset) -> str:
    """The days with data of any record type, as short ranges."""
    from ssmd import core
    from ssmd.data.query import held_days_of

    return held_days_of(ds, core.RECORD_TYPES)
