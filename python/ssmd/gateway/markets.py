"""Market listings for the REST API: the security master store when the environment has
one, else the markets seen on the stream; both with the gateway's live book and trade.

The store is only read. A sync may be writing the SQLite file at the same moment (WAL
mode: readers are not blocked), and it may not exist yet when the gateway starts: it
is opened on first use and again after a failure. Queries run in a worker thread, one
at a time (a Store is one connection).

Pages are ordered by ticker (`sort=ticker`, the default), or most active first
(`sort=activity`): open markets that traded lately by their activity (state.Market.activity)
then ticker, then the other open markets, then every other market, each by ticker. The
cursor says where the next page starts (a ticker, or a place in that order),
base64url-encoded so that clients treat it as opaque. The activity ranking is made again
for each page: a market whose rank moved between two pages can show twice or not at all.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final, TypeVar

from ssmd.exceptions import BadRequest
from ssmd.gateway import render
from ssmd.gateway.state import Market, MarketState
from ssmd.secmaster.model import iso_from_ns, series_of_ticker
from ssmd.secmaster.status import SSMD_STATUSES

if TYPE_CHECKING:
    from ssmd.secmaster.db import Store

__all__ = ["SORTS", "Filters", "Markets"]

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_LIMIT: Final = 1000
_TEXT: Final = (
    "event_ticker",
    "series_ticker",
    "category",
    "title",
    "subtitle",
    "yes_sub_title",
    "no_sub_title",
    "status",
    "open_time",
    "close_time",
    "expiration_time",
    "result",
    "venue",
    "tick_size",
    "min_order_size",
)
_DECIMALS: Final = ("price_decimals", "size_decimals")
_PRICES: Final = ("settlement_value", "yes_bid", "yes_ask", "last_price")
_SIZES: Final = ("volume", "open_interest")
_COLUMNS: Final = ("ticker", *_TEXT, *_DECIMALS, *(f"{p}_e6" for p in _PRICES + _SIZES))
_CHUNK: Final = 500
SORTS: Final = ("ticker", "activity")
# The parts of sort=activity, in order; a cursor names one and where in it to go on.
_ACTIVE, _OPEN, _OTHER = "active", "open", "other"


@dataclass(frozen=True)
class Filters:
    statuses: tuple[str, ...] = ()
    series: tuple[str, ...] = ()
    events: tuple[str, ...] = ()
    q: str = ""
    # The markets a tenant is entitled to (None: every market).
    allow: Callable[[str], bool] | None = field(default=None, compare=False)
    # LIKE patterns that every market `allow` takes matches: the store is asked for those
    # rows only (none: no narrowing).
    likes: tuple[str, ...] = ()
    # A tenant entitled to none of the venue's markets: an empty page at once, rather
    # than the security master read page by page to find nothing to keep.
    none_entitled: bool = False

    @classmethod
    def parse(
        cls, status: str | None, series: str | None, event: str | None, q: str | None
    ) -> Filters:
        def words(v: str | None) -> tuple[str, ...]:
            return tuple(w.strip() for w in (v or "").split(",") if w.strip())

        statuses = words(status)
        bad = [s for s in statuses if s not in SSMD_STATUSES]
        if bad:
            raise BadRequest(
                f"status {', '.join(bad)} is not a market status; expected any of "
                f"{', '.join(SSMD_STATUSES)} (comma-separated)"
            )
        return cls(statuses, words(series), words(event), (q or "").strip())


def encode_cursor(ticker: str) -> str:
    return base64.urlsafe_b64encode(ticker.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        after = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        after = ""
    if not after:
        raise BadRequest("cursor is not one this API returned; start again without it")
    return after


def _int(v: object) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


class Markets:
    """The markets of one venue (`venue`, the environment's feed)."""

    def __init__(
        self, state: MarketState, store: Callable[[], Store | None] | None, venue: str
    ) -> None:
        self.state = state
        self.venue = venue
        self._open = store
        self._store: Store | None = None
        self._lock = threading.Lock()
        self._warned = False

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                with contextlib.suppress(Exception):
                    self._store.close()
                self._store = None

    # ---- store access -------------------------------------------------------------------

    def _with_store(self, fn: Callable[[Store], T]) -> tuple[bool, T | None]:
        """(True, fn(store)) when there is a store, (False, None) when not or it failed."""
        if self._open is None:
            return False, None
        with self._lock:
            try:
                if self._store is None:
                    self._store = self._open()
                if self._store is None:
                    return False, None
                return True, fn(self._store)
            except Exception as exc:  # fall back to the stream; try the store again next time
                if not self._warned:
                    log.warning("market store unavailable (%s); using the stream", exc)
                    self._warned = True
                if self._store is not None:
                    with contextlib.suppress(Exception):
                        self._store.close()
                self._store = None
                return False, None

    async def _store_call(self, fn: Callable[[Store], T]) -> tuple[bool, T | None]:
        return await asyncio.to_thread(self._with_store, fn)

    async def known(self, tickers: list[str]) -> set[str]:
        """Which of `tickers` the security master holds (empty when there is none)."""

        def query(store: Store) -> set[str]:
            found: set[str] = set()
            for i in range(0, len(tickers), _CHUNK):
                part = tickers[i : i + _CHUNK]
                rows = store.query(
                    "SELECT ticker FROM markets WHERE venue = ? AND "
                    f"ticker IN ({', '.join('?' * len(part))})",
                    [self.venue, *part],
                )
                found.update(str(r[0]) for r in rows)
            return found

        _, found = await self._store_call(query)
        return found or set()

    # ---- shapes -------------------------------------------------------------------------

    def _live(self, ticker: str, out: dict[str, Any]) -> dict[str, Any]:
        state = self.state
        out["symbol"] = state.symbol_prefix + ticker  # what the stream and the paths take
        m = state.markets.get(ticker)
        if m is not None and m.status is not None:
            out["status"] = m.status
        out["activity"] = 0.0 if m is None else round(m.activity(_now_ms()), 3)
        view = state.books.view(ticker, 1)
        out["book"] = (
            None
            if view is None
            else {
                "best_bid": _top(view.bids),
                "best_ask": _top(view.asks),
                "valid": view.valid,
            }
        )
        out["last_trade"] = (
            {"price": render.price(m.last_price_e6), "ts": m.last_trade_ms}
            if m is not None and m.last_trade_ms
            else None
        )
        return out

    def _from_row(self, row: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"ticker": row["ticker"]}
        for k in (*_TEXT, *_DECIMALS):
            out[k] = row.get(k)
        for k in _PRICES:
            out[k] = render.price(_int(row.get(f"{k}_e6")))
        for k in _SIZES:
            out[k] = render.size(_int(row.get(f"{k}_e6")))
        out["source"] = "secmaster"
        return self._live(str(row["ticker"]), out)

    def _from_stream(self, m: Market) -> dict[str, Any]:
        out: dict[str, Any] = {"ticker": m.ticker}
        for k in (*_TEXT, *_DECIMALS):
            out[k] = None
        out.update(
            venue=self.venue,
            event_ticker=m.event_ticker,
            series_ticker=series_of_ticker(m.ticker),
            title=m.title,
            status=m.status,
            open_time=iso_from_ns(m.open_ns),
            close_time=iso_from_ns(m.close_ns),
        )
        for k in (*_PRICES, *_SIZES):
            out[k] = None
        out["last_price"] = render.price(m.last_price_e6)
        out["source"] = "stream"
        return self._live(m.ticker, out)

    # ---- queries ------------------------------------------------------------------------

    async def page(
        self, f: Filters, limit: int, cursor: str | None, sort: str = "ticker"
    ) -> dict[str, Any]:
        if not 1 <= limit <= MAX_LIMIT:
            raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}")
        if sort not in SORTS:
            raise BadRequest(f"sort must be one of {', '.join(SORTS)}")
        if f.none_entitled:
            return {"markets": [], "next_cursor": None}
        if sort == "activity":
            return await self._by_activity(f, limit, cursor)
        items = await self._by_ticker(f, limit + 1, decode_cursor(cursor))
        more = len(items) > limit
        items = items[:limit]
        return {
            "markets": items,
            "next_cursor": encode_cursor(items[-1]["ticker"]) if more and items else None,
        }

    async def _by_ticker(
        self, f: Filters, n: int, after: str | None, open_now: bool | None = None
    ) -> list[dict[str, Any]]:
        """Up to `n` markets after `after`, by ticker; `open_now` True: open ones only,
        False: all but the open ones."""
        allow = f.allow
        if allow is None:
            used, rows = await self._store_call(
                lambda s: _store_page(s, self.venue, f, n, after, open_now)
            )
            if used and rows is not None:
                return [self._from_row(r) for r in rows]
            return [self._from_stream(m) for m in self._stream_page(f, n, after, open_now)]
        # Entitled markets only: pages of the store read on until n of them are found.
        out: list[dict[str, Any]] = []
        while len(out) < n:
            got = await self._by_ticker(replace(f, allow=None), n, after, open_now)
            out += [m for m in got if allow(str(m["ticker"]))]
            if len(got) < n:
                break
            after = str(got[-1]["ticker"])
        return out[:n]

    async def _by_activity(self, f: Filters, limit: int, cursor: str | None) -> dict[str, Any]:
        """A page of sort=activity: the active open markets, then the other open ones,
        then the rest (module docstring)."""
        part, place = _parse_activity_cursor(cursor)
        active = await self._active(f)
        shown = {str(m["ticker"]) for m in active}
        page: list[tuple[dict[str, Any], str]] = []  # (market, cursor to go on after it)
        if part == _ACTIVE:
            start = int(place)
            for i, m in enumerate(active[start : start + limit + 1], start + 1):
                page.append((m, _activity_cursor(_ACTIVE, i)))
            part, place = _OPEN, ""
        for name, open_now in ((_OPEN, True), (_OTHER, False)):
            if part != name:
                continue
            after: str | None = place or None
            while len(page) <= limit:
                want = limit + 1 - len(page)
                got = await self._by_ticker(f, want, after, open_now)
                fresh = [m for m in got if m["ticker"] not in shown]
                page += [(m, _activity_cursor(name, m["ticker"])) for m in fresh]
                if len(got) < want:
                    break  # this part is done
                after = str(got[-1]["ticker"])
            part, place = _OTHER, ""
        more = len(page) > limit
        page = page[:limit]
        return {
            "markets": [m for m, _ in page],
            "next_cursor": page[-1][1] if more and page else None,
        }

    async def _active(self, f: Filters) -> list[dict[str, Any]]:
        """Open markets matching `f` that traded lately, most active first."""
        if f.statuses and "open" not in f.statuses:
            return []
        now = _now_ms()
        weights = {t: a for t, m in self.state.markets.items() if (a := m.activity(now)) > 0}
        tickers = sorted(weights)
        used, rows = await self._store_call(lambda s: _store_rows(s, self.venue, f, tickers))
        if used and rows is not None:
            items = [self._from_row(r) for r in rows]
        else:
            found = (self.state.markets[t] for t in tickers)
            items = [self._from_stream(m) for m in found if _matches(m, f)]
        items = [m for m in items if m["status"] == "open"]
        if f.allow is not None:
            items = [m for m in items if f.allow(str(m["ticker"]))]
        items.sort(key=lambda m: (-weights[str(m["ticker"])], str(m["ticker"])))
        return items

    def _stream_page(
        self, f: Filters, n: int, after: str | None, open_now: bool | None = None
    ) -> list[Market]:
        out: list[Market] = []
        for t in sorted(self.state.markets):
            if after is not None and t <= after:
                continue
            m = self.state.markets[t]
            if open_now is not None and (m.status == "open") != open_now:
                continue
            if _matches(m, f):
                out.append(m)
                if len(out) >= n:
                    break
        return out

    async def one(self, ticker: str) -> dict[str, Any] | None:
        used, row = await self._store_call(lambda s: _store_one(s, self.venue, ticker))
        if used and row is not None:
            return self._from_row(row)
        m = self.state.markets.get(ticker)
        return None if m is None else self._from_stream(m)

    async def exists(self, ticker: str) -> bool:
        if self.state.knows(ticker):
            return True
        return ticker in await self.known([ticker])


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _matches(m: Market, f: Filters) -> bool:
    """Whether a market known from the stream passes the filters."""
    q = f.q.lower()
    return not (
        (f.statuses and m.status not in f.statuses)
        or (f.series and series_of_ticker(m.ticker) not in f.series)
        or (f.events and m.event_ticker not in f.events)
        or (q and q not in m.ticker.lower() and q not in (m.title or "").lower())
    )


def _activity_cursor(part: str, place: int | str) -> str:
    return encode_cursor(f"{part}:{place}")


def _parse_activity_cursor(cursor: str | None) -> tuple[str, str]:
    """(part, place) of a sort=activity cursor; the start when there is none."""
    if not cursor:
        return _ACTIVE, "0"
    part, _, place = (decode_cursor(cursor) or "").partition(":")
    if (part == _ACTIVE and place.isdigit()) or (part in (_OPEN, _OTHER) and place):
        return part, place
    raise BadRequest(
        "cursor is not one this API returned for sort=activity; start again without it"
    )


def _top(levels: Iterable[tuple[int, int]]) -> list[float | int | None] | None:
    for p, s in levels:
        return [render.price(p), render.size(s)]
    return None


def _like(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _store_page(
    store: Store, venue: str, f: Filters, n: int, after: str | None, open_now: bool | None = None
) -> list[dict[str, Any]]:
    where, params = _store_filters(venue, f)
    if open_now is not None:
        where.append("status = 'open'" if open_now else "status <> 'open'")
    if after is not None:
        where.append("ticker > ?")
        params.append(after)
    sql = f"SELECT {', '.join(_COLUMNS)} FROM markets"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY ticker LIMIT {int(n)}"
    return [dict(zip(_COLUMNS, r, strict=True)) for r in store.query(sql, params)]


def _store_rows(store: Store, venue: str, f: Filters, tickers: list[str]) -> list[dict[str, Any]]:
    """The venue's stored markets among `tickers` that pass the filters."""
    where, params = _store_filters(venue, f)
    out: list[dict[str, Any]] = []
    for i in range(0, len(tickers), _CHUNK):
        part = tickers[i : i + _CHUNK]
        sql = f"SELECT {', '.join(_COLUMNS)} FROM markets WHERE "
        sql += " AND ".join([*where, f"ticker IN ({', '.join('?' * len(part))})"])
        out += [dict(zip(_COLUMNS, r, strict=True)) for r in store.query(sql, [*params, *part])]
    return out


def _store_filters(venue: str, f: Filters) -> tuple[list[str], list[Any]]:
    """The WHERE terms and their parameters for the venue's markets that pass the filters."""
    where: list[str] = ["venue = ?"]
    params: list[Any] = [venue]
    for col, values in (
        ("status", f.statuses),
        ("series_ticker", f.series),
        ("event_ticker", f.events),
    ):
        if values:
            where.append(f"{col} IN ({', '.join('?' * len(values))})")
            params.extend(values)
    if f.likes:
        where.append("(" + " OR ".join(["ticker LIKE ? ESCAPE '\\'"] * len(f.likes)) + ")")
        params.extend(f.likes)
    if f.q:
        where.append(
            "(LOWER(ticker) LIKE ? ESCAPE '\\' OR LOWER(COALESCE(title, '')) LIKE ? ESCAPE '\\' "
            "OR LOWER(COALESCE(yes_sub_title, '')) LIKE ? ESCAPE '\\')"
        )
        params.extend([_like(f.q)] * 3)
    return where, params


def _store_one(store: Store, venue: str, ticker: str) -> dict[str, Any] | None:
    rows = store.query(
        f"SELECT {', '.join(_COLUMNS)} FROM markets WHERE venue = ? AND ticker = ?",
        [venue, ticker],
    )
    return dict(zip(_COLUMNS, rows[0], strict=True)) if rows else None
