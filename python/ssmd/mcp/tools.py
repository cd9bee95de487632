"""The MCP server's tools: each a thin call of an existing service, its answer made
compact JSON with its units stated.

Live data comes from the gateway (REST, and its WebSocket for a whole book), archived
data through `ssmd.data` (the one reader of the archive), data issues through the
gateway's `/v1/data-issues`, field history from the security master. Prices are
dollars, sizes contracts, times Unix milliseconds (`*_ms`, `ts`) or ISO 8601 UTC text.
Tables are columnar: `columns` then `rows`, one list per row.

Every call is bounded: a row limit with a default and a maximum, a time range of at most
MAX_RANGE_DAYS. Going past a bound is an error that names it, never a silent cut.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Final, TypeVar

import httpx
import orjson
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from ssmd.exceptions import GatewayError, SsmdError
from ssmd.gateway import render
from ssmd.gateway.tenants import Policy
from ssmd.mcp.gateway import GatewayClient

if TYPE_CHECKING:
    import polars as pl

    from ssmd.config import ResolvedEnvironment
    from ssmd.data.source import Dataset

__all__ = ["MAX_RANGE_DAYS", "MAX_ROWS", "Tools"]

T = TypeVar("T")

MAX_ROWS: Final = 5000  # history rows a call may return
DEFAULT_ROWS: Final = 500
MAX_RANGE_DAYS: Final = 7  # history: the widest time range a call may ask for
MAX_MARKETS: Final = 1000
MAX_TRADES: Final = 1000
STATUS_SPAN: Final = 1.0  # seconds between the two samples system_status takes rates over
REPORTER: Final = "mcp"  # the label reports carry after the API key's name
_NS_PER_DAY: Final = 86_400 * 10**9
# Columns in 1e-6 contracts; every other *_e6 column is 1e-6 dollars.
_SIZE_COLUMNS: Final = frozenset(
    {"size_e6", "delta_e6", "yes_bid_size_e6", "yes_ask_size_e6", "volume_e6", "open_interest_e6"}
)
_MARKET_COLUMNS: Final = (
    "ticker",
    "title",
    "status",
    "yes_bid",
    "yes_ask",
    "last_price",
    "volume",
    "open_interest",
    "close_time",
    "best_bid",
    "best_ask",
    "book_valid",
    "last_trade_ms",
)


def dumps(body: Any) -> str:
    return orjson.dumps(body).decode()


def _at_most(value: int, bound: int, what: str) -> int:
    if not 1 <= value <= bound:
        raise ToolError(f"{what} must be 1..{bound}; got {value}")
    return value


def _day(value: str, what: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ToolError(f"{what} {value!r} is not a date; give YYYY-MM-DD (UTC)") from None


def _ladder(levels: list[Any], depth: int) -> list[Any]:
    return levels[:depth] if depth else levels


@dataclass
class Tools:
    """What the tools call: the gateway, the environment's archive and security master."""

    gateway: GatewayClient
    env: ResolvedEnvironment
    feed: str
    _dataset: Dataset | None = field(default=None, init=False)
    _tenant: tuple[Policy | None] | None = field(default=None, init=False)

    # ---- plumbing -------------------------------------------------------------------------

    def dataset(self) -> Dataset:
        if self._dataset is None:
            from ssmd.data.source import Dataset

            self._dataset = Dataset.from_environment(self.env, self.feed)
        return self._dataset

    async def _thread(self, fn: Callable[[], T]) -> T:
        """Run blocking work (archive reads, SQL) off the event loop; errors of ssmd's own
        (an unknown ticker with the closest names, a range without data, a bad value)
        become tool errors with their message."""
        try:
            return await asyncio.to_thread(fn)
        except (SsmdError, ValueError) as exc:
            raise ToolError(str(exc)) from None

    async def tenant(self) -> Policy | None:
        """The tenant of the server's API key, as the gateway describes it (/v1/usage);
        None for an operator's key or none. The archive tools read the archive here, not
        through the gateway, so they hold a tenant's key to its entitlements and its
        history_rows limit themselves, with the gateway's own rules (docs/tenants.md)."""
        if self._tenant is None:
            if not self.gateway.has_key:
                self._tenant = (None,)
            else:
                body = await self._gw("/v1/usage")
                policy = Policy.from_dict(body, self.feed) if "tenant" in body else None
                self._tenant = (policy,)
        return self._tenant[0]

    async def _entitled(self, tickers: list[str]) -> Policy | None:
        """The key's tenant after checking it may see `tickers`; ToolError naming the
        markets it may not."""
        policy = await self.tenant()
        denied = policy.forbidden(tickers) if policy is not None else []
        if policy is not None and denied:
            raise ToolError(policy.forbidden_message(denied))
        return policy

    async def _gw(self, path: str, **params: Any) -> Any:
        try:
            return await self.gateway.get(path, **params)
        except GatewayError as exc:
            raise ToolError(str(exc)) from None

    async def _unknown_market(self, ticker: str) -> ToolError:
        """An error for a ticker the gateway does not know, with the closest known ones
        (from the markets sharing its series, else the first page of all)."""
        from ssmd.data.kinds import closest

        known: list[str] = []
        for q in (ticker.split("-", 1)[0], None):
            try:
                page = await self.gateway.markets(q=q, limit=MAX_MARKETS)
            except GatewayError:
                break
            known = [m["ticker"] for m in page.get("markets", [])]
            if known:
                break
        hint = closest(ticker, known) or "; nothing close"
        return ToolError(
            f"unknown market {ticker!r}{hint}. Fix: find tickers with list_markets(query=...)"
        )

    async def _market_call(self, call: Awaitable[Any], ticker: str) -> Any:
        try:
            return await call
        except GatewayError as exc:
            if exc.status == 404:
                raise await self._unknown_market(ticker) from None
            raise ToolError(str(exc)) from None

    # ---- live: markets, books, trades (gateway) ---------------------------------------------

    async def list_markets(
        self,
        query: Annotated[
            str | None, Field(description="Text in the ticker or title (case-insensitive)")
        ] = None,
        status: Annotated[
            str | None,
            Field(description="Comma-separated: open, closed, halted, initialized, settled, ..."),
        ] = None,
        series: Annotated[str | None, Field(description="Comma-separated series tickers")] = None,
        sort: Annotated[
            str, Field(description="ticker, or activity (most actively traded open markets first)")
        ] = "ticker",
        limit: Annotated[int, Field(description=f"Markets per page, 1..{MAX_MARKETS}")] = 50,
        cursor: Annotated[str | None, Field(description="next_cursor of the previous page")] = None,
    ) -> str:
        """List or search markets (live, from the gateway): ticker, title, status, quotes as of
        the last security-master sync, the live top of book and last trade. Pages: pass
        next_cursor back as cursor."""
        _at_most(limit, MAX_MARKETS, "limit")
        try:
            page = await self.gateway.markets(
                q=query, status=status, series=series, sort=sort, limit=limit, cursor=cursor
            )
        except GatewayError as exc:
            raise ToolError(str(exc)) from None
        rows = []
        for m in page["markets"]:
            book = m.get("book") or {}
            last = m.get("last_trade") or {}
            rows.append(
                [
                    m["ticker"],
                    m.get("title"),
                    m.get("status"),
                    m.get("yes_bid"),
                    m.get("yes_ask"),
                    m.get("last_price"),
                    m.get("volume"),
                    m.get("open_interest"),
                    m.get("close_time"),
                    book.get("best_bid"),
                    book.get("best_ask"),
                    book.get("valid"),
                    last.get("ts"),
                ]
            )
        return dumps(
            {
                "units": "prices in dollars; sizes, volume and open_interest in contracts; "
                "best_bid/best_ask as [price, size]; last_trade_ms Unix ms; times ISO 8601 UTC",
                "columns": _MARKET_COLUMNS,
                "rows": rows,
                "next_cursor": page.get("next_cursor"),
            }
        )

    async def market_details(
        self,
        ticker: Annotated[str, Field(description="Market ticker")],
        history_limit: Annotated[
            int, Field(description="Latest field changes to include, 1..500")
        ] = 20,
    ) -> str:
        """One market: every reference field the gateway serves (titles, status, times,
        quotes, live top of book, last trade, activity) and its latest field changes from
        the security master (status moves, close-time updates, results)."""
        _at_most(history_limit, 500, "history_limit")
        market = await self._market_call(self.gateway.market(ticker), ticker)

        def history() -> list[dict[str, Any]] | None:
            from ssmd.secmaster.db import SQLITE_FILE, open_store

            env = self.env
            if not env.database_url and not (env.data_dir / SQLITE_FILE).exists():
                return None
            with open_store(env, migrate=False) as store:
                return store.history(ticker, env.feed.name)[-history_limit:]

        changes = await self._thread(history)
        return dumps(
            {
                "units": "prices in dollars, volume/open_interest in contracts, times ISO 8601 "
                "UTC, last_trade.ts Unix ms",
                "market": market,
                "field_history": None
                if changes is None
                else [
                    {k: c[k] for k in ("changed_at", "field", "old_value", "new_value", "source")}
                    for c in changes
                ],
            }
        )

    async def live_book(
        self,
        ticker: Annotated[str, Field(description="Market ticker")],
        depth: Annotated[int, Field(description="Levels per side, 1..1000; 0 for all")] = 10,
    ) -> str:
        """The market's live order book from the gateway: YES bids best (highest) first, YES
        asks (1 - NO bid) best (lowest) first, each level [price, size]. valid is false while
        the book is not known exact (after a gap, until the connector resyncs it)."""
        if not 0 <= depth <= 1000:
            raise ToolError(f"depth must be 0..1000 (0: every level); got {depth}")
        try:
            book = await self.gateway.book(ticker)
        except GatewayError as exc:
            if exc.code == "unknown_symbol":
                raise await self._unknown_market(ticker) from None
            raise ToolError(str(exc)) from None
        return dumps(
            {
                "units": "price in dollars, size in contracts, ts Unix ms",
                "ticker": ticker,
                "valid": book.get("valid"),
                "ts": book.get("ts"),
                "bids": _ladder(book.get("bids", []), depth),
                "asks": _ladder(book.get("asks", []), depth),
                "levels": {"bids": len(book.get("bids", [])), "asks": len(book.get("asks", []))},
            }
        )

    async def recent_trades(
        self,
        ticker: Annotated[str, Field(description="Market ticker")],
        limit: Annotated[int, Field(description=f"Trades, newest first, 1..{MAX_TRADES}")] = 50,
    ) -> str:
        """The market's recent trades the gateway holds (the last minutes), newest first.
        side is the taker's side in YES terms: buy (took YES), sell (took NO)."""
        _at_most(limit, MAX_TRADES, "limit")
        body = await self._market_call(self.gateway.trades(ticker, limit), ticker)
        return dumps(
            {
                "units": "price in dollars (YES), size in contracts, ts Unix ms",
                "ticker": ticker,
                "columns": ["ts", "price", "size", "side"],
                "rows": [[t["ts"], t["price"], t["size"], t["side"]] for t in body["trades"]],
            }
        )

    # ---- archive (ssmd.data) ----------------------------------------------------------------

    async def book_at(
        self,
        ticker: Annotated[str, Field(description="Market ticker")],
        at: Annotated[str, Field(description="ISO 8601 UTC time, e.g. 2026-12-03T12:00:00Z")],
        depth: Annotated[int, Field(description="Levels per side, 1..1000; 0 for all")] = 10,
    ) -> str:
        """The market's book as it was at a past time, rebuilt from the archive. valid is false
        (with the reason) when a gap or a bad record broke it since its last snapshot."""
        if not 0 <= depth <= 1000:
            raise ToolError(f"depth must be 0..1000 (0: every level); got {depth}")
        from ssmd.data.books import book_at
        from ssmd.secmaster.model import iso_from_ns

        await self._entitled([ticker])
        book = await self._thread(lambda: book_at(ticker, at, depth, dataset=self.dataset()))
        return dumps(
            {
                "units": "price in dollars, size in contracts, times ISO 8601 UTC",
                "ticker": ticker,
                "at": iso_from_ns(book.at_ns),
                "valid": book.valid,
                "reason": book.reason,
                "bids": [[render.price(p), render.size(s)] for p, s in book.bids],
                "asks": [[render.price(p), render.size(s)] for p, s in book.asks],
                "as_of": iso_from_ns(book.as_of_ns),
                "snapshot_at": iso_from_ns(book.snapshot_ns),
            }
        )

    async def history(
        self,
        kind: Annotated[
            str,
            Field(
                description="trade, ticker, book_delta, book_level, lifecycle, event_lifecycle, "
                "status, connector_event, spot_level (a spot pair's book levels) or spot_ticker"
            ),
        ],
        start: Annotated[
            str, Field(description="ISO 8601 UTC time, or a date YYYY-MM-DD (its whole day)")
        ],
        end: Annotated[
            str | None,
            Field(
                description="ISO 8601 UTC time (exclusive), or a date (inclusive); "
                "default: the end of start's day"
            ),
        ] = None,
        tickers: Annotated[
            list[str] | None, Field(description="Markets to keep (default: all)")
        ] = None,
        limit: Annotated[
            int, Field(description=f"Most rows to return, 1..{MAX_ROWS}")
        ] = DEFAULT_ROWS,
    ) -> str:
        """A slice of archived data (by receive time) as one table. More rows than limit, or a
        range over MAX_RANGE_DAYS days, is an error saying so: narrow the range or the
        tickers. Prices in dollars, sizes in contracts, *_ms times in Unix ms."""
        _at_most(limit, MAX_ROWS, "limit")
        from ssmd.data.query import scan, window

        policy = await self._entitled(tickers or [])
        rows_max = policy.limits.history_rows if policy is not None else None
        if policy is not None and rows_max is not None and limit > rows_max:
            raise ToolError(
                f"limit={limit} is more than tenant {policy.name} may have in one call "
                f"({rows_max} rows, its history_rows limit). Fix: ask for {rows_max} or fewer"
            )

        def read() -> pl.DataFrame:
            win = window(start, end)
            if win.end_ns - win.start_ns > MAX_RANGE_DAYS * _NS_PER_DAY:
                raise ValueError(
                    f"the range {win.describe()} is longer than {MAX_RANGE_DAYS} days, the limit "
                    "of one call. Fix: ask for a shorter range (several calls for more)"
                )
            lazy = scan(kind, start, end, tickers=tickers, dataset=self.dataset())
            if policy is not None and not tickers:
                lazy = policy.entitled_rows(lazy)
            return lazy.head(limit + 1).collect()

        frame = await self._thread(read)
        if frame.height > limit:
            raise ToolError(
                f"{kind} from {start} to {end or 'the end of that day'} holds more than {limit} "
                f"rows, the limit of this call (limit= goes up to {MAX_ROWS}). Fix: narrow the "
                "time range or name tickers"
            )
        columns, units, table = _compact(frame)
        return dumps(
            {"kind": kind, "units": units, "columns": columns, "rows": table, "count": len(table)}
        )

    # ---- the archive's health ---------------------------------------------------------------

    async def inventory(
        self,
        start: Annotated[str | None, Field(description="First day YYYY-MM-DD (UTC)")] = None,
        end: Annotated[str | None, Field(description="Last day YYYY-MM-DD (UTC)")] = None,
    ) -> str:
        """What the archive holds per day and data type: records, bytes, files, markets,
        sealed or open, gaps and quality score (0..1, 1 = nothing known missing)."""
        first = _day(start, "start") if start else None
        last = _day(end, "end") if end else None
        rows = await self._thread(lambda: self.dataset().archive.inventory(self.feed, first, last))
        cols = ["date", "data_type", "records", "bytes", "files", "markets", "status", "gaps",
                "quality_score", "pending_records"]  # fmt: skip
        return dumps(
            {"feed": self.feed, "columns": cols, "rows": [[r[c] for c in cols] for r in rows]}
        )

    async def gaps(self, day: Annotated[str, Field(description="The day YYYY-MM-DD (UTC)")]) -> str:
        """The day's gaps (what the archive knows is missing): start, end, duration in
        seconds, reason, markets affected (empty: every market), detail."""
        when = _day(day, "day")
        rows = await self._thread(lambda: self.dataset().archive.gaps(self.feed, when))
        policy = await self.tenant()
        if policy is not None:
            rows = policy.entitled_gaps(rows)
        cols = ["start", "end", "duration_s", "reason", "markets", "detail"]
        return dumps({"feed": self.feed, "date": day, "columns": cols,
                      "rows": [[g.get(c) for c in cols] for g in rows]})  # fmt: skip

    async def quality(
        self, day: Annotated[str, Field(description="The day YYYY-MM-DD (UTC)")]
    ) -> str:
        """The day's quality report from its manifests (quality_score 0..1, gap seconds by
        reason, malformed and quarantined counts; found is false before the archiver wrote
        any) and the open data issues reported for that day."""
        when = _day(day, "day")
        report = await self._thread(lambda: self.dataset().archive.quality(self.feed, when))
        if not report["found"]:
            report["note"] = (
                "no manifest for this day yet: the archiver writes a day's manifests when it "
                "seals files of the day (raw files when their UTC hour closes) and when it "
                "stops; history() reads the open data meanwhile"
            )
        try:
            issues = await self.gateway.issues(
                status="open", **{"from": day, "to": str(when + timedelta(1))}
            )
            report["data_issues"] = issues["issues"]
        except GatewayError as exc:
            report["data_issues"] = None
            report["data_issues_error"] = str(exc)
        return dumps(report)

    async def system_status(self) -> str:
        """Is the system up and is data flowing: the gateway's health (NATS, stream lag, how
        fresh the connector's data is, clients, books) and, when `ssmd up` runs on this data
        dir, its components and the figures its status line shows (rates over 1 s)."""
        from ssmd.up import procs
        from ssmd.up.status import Sampler
        from ssmd.upstate import read_state, running_nats_url

        out: dict[str, Any] = {"env": self.env.name, "gateway": self.gateway.base_url}
        try:
            code, body = await self.gateway.health()
            out["gateway_health"] = {"http_status": code, **body}
        except GatewayError as exc:
            out["gateway_health"] = {"status": "unreachable", "problems": [str(exc)]}
        data_dir = self.env.data_dir
        state = read_state(data_dir) if running_nats_url(data_dir) is not None else None
        up: dict[str, Any] = {"data_dir": str(data_dir), "running": state is not None}
        if state is not None:
            boot = state.get("boot_id") or procs.boot_id()
            up["components"] = {
                name: "running" if procs.is_running(rec, boot) else "stopped"
                for name, rec in (state.get("children") or {}).items()
            }
            ends = state.get("endpoints") or {}
            # A client of its own: the gateway's carries the API key, which the other
            # components have no business seeing.
            async with httpx.AsyncClient(timeout=5.0) as http:
                sampler = Sampler.from_endpoints(http, ends, state.get("web_url"))
                await sampler.sample()
                await asyncio.sleep(STATUS_SPAN)
                up["figures"] = (await sampler.sample(up["components"])).as_dict()
        out["ssmd_up"] = up
        return dumps(out)

    # ---- data issues (gateway) --------------------------------------------------------------

    async def report_data_issue(
        self,
        start: Annotated[str, Field(description="When the problem starts, ISO 8601 UTC")],
        end: Annotated[str, Field(description="When it ends, ISO 8601 UTC")],
        description: Annotated[
            str, Field(description="What looks wrong, and how you saw it (up to 4,000 chars)")
        ],
        ticker: Annotated[
            str | None, Field(description="The market; leave out for every market")
        ] = None,
    ) -> str:
        """Report data that looks wrong (a market, a time range, what). Stored with its
        reporter, published to the journal and shown with the day's quality until a person
        resolves it. Returns the issue with its id."""
        body = {"ticker": ticker, "start": start, "end": end, "description": description,
                "reporter": REPORTER}  # fmt: skip
        try:
            issue = await self.gateway.report_issue(
                {k: v for k, v in body.items() if v is not None}
            )
        except GatewayError as exc:
            raise ToolError(str(exc)) from None
        return dumps(issue)

    async def list_data_issues(
        self,
        status: Annotated[str, Field(description="open, resolved or all")] = "open",
        ticker: Annotated[str | None, Field(description="This market's issues")] = None,
        limit: Annotated[int, Field(description="1..1000")] = 50,
    ) -> str:
        """Data issues reported so far (default: the open ones), by the time they begin."""
        _at_most(limit, 1000, "limit")
        try:
            body = await self.gateway.issues(status=status, ticker=ticker, limit=limit)
        except GatewayError as exc:
            raise ToolError(str(exc)) from None
        return dumps(body)

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.list_markets,
            self.market_details,
            self.live_book,
            self.recent_trades,
            self.book_at,
            self.history,
            self.inventory,
            self.gaps,
            self.quality,
            self.system_status,
            self.report_data_issue,
            self.list_data_issues,
        ]


def _compact(frame: pl.DataFrame) -> tuple[list[str], dict[str, str], list[list[Any]]]:
    """Columns, their units and rows: *_e6 as dollars or contracts (the name without
    _e6), times as Unix ms (`_ts` -> `_ms`); the seed schema's float price/size copies are
    left out (the exact columns are there)."""
    import polars as pl

    exprs, units = [], {}
    names = set(frame.columns)
    for name, dtype in frame.schema.items():
        if name in ("price", "size") and f"{name}_e6" in names:
            continue
        if isinstance(dtype, pl.Datetime):
            out = name[:-3] + "_ms" if name.endswith("_ts") else name + "_ms"
            exprs.append(pl.col(name).dt.epoch("ms").alias(out))
            units[out] = "Unix ms"
        elif name.endswith("_e6"):
            out = name[:-3]
            exprs.append((pl.col(name) / 1_000_000).round(6).alias(out))
            units[out] = "contracts" if name in _SIZE_COLUMNS else "dollars"
        else:
            exprs.append(pl.col(name))
    table = frame.select(exprs)
    return table.columns, units, [list(r) for r in table.rows()]
