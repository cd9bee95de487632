"""Data issues over REST: `POST /v1/data-issues` (report), `GET /v1/data-issues` (list),
`GET /v1/data-issues/{id}` (one).

Reports are stored in the security master database with their reporter (the API key's
name) and journaled to `{env}.journal.data_issue` through the gateway's NATS connection;
when NATS is away the entry stays in the outbox for the next secmaster run. The routes
are behind the API keys like every other non-open route (app.KeyMiddleware). The store
is opened per request in a worker thread: reports are rare, and a connection per
request needs no locking against the market listings' own connection.

On a gateway of several venues (ssmd.gateway.symbols) an issue is its venue's: stored
under that venue's feed with the venue's own ticker (as `ssmd data issues` and the
archive name it; the environment's one database holds every venue's), and named by its
symbol in what the routes take and answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Final, TypeVar

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from ssmd import issues
from ssmd.exceptions import BadRequest, IssueError
from ssmd.issues.model import STATUSES, DataIssue, parse_time
from ssmd.issues.store import MAX_LIST
from ssmd.secmaster.journal import MSG_ID, Journal

if TYPE_CHECKING:
    from ssmd.gateway.auth import ApiKey
    from ssmd.gateway.service import Gateway
    from ssmd.gateway.tenants import Policy
    from ssmd.secmaster.db import Store

__all__ = ["router"]

log = logging.getLogger(__name__)

T = TypeVar("T")
PUBLISH_WAIT: Final = 5.0  # seconds for JetStream's ack before the entry is left to the outbox
MAX_BODY: Final = 16_384


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"type": "error", "code": code, "message": message}, status_code=status)


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


class _NoStore(Exception):
    pass


class _Issues:
    """The gateway's access to data issues: the store per request, the journal once."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self._journal_ready = False

    def _call(self, fn: Callable[[Store], T]) -> T:
        opener = self.gw.settings.store
        store = opener() if opener is not None else None
        if store is None:
            raise _NoStore
        try:
            return fn(store)
        finally:
            store.close()

    async def call(self, fn: Callable[[Store], T]) -> T:
        return await asyncio.to_thread(self._call, fn)

    async def publish(self, entry: issues.Entry) -> bool:
        """Publish the entry now; False (left in the outbox) when NATS does not take it."""
        nc = self.gw.feed.nc
        if nc is None or not nc.is_connected:
            return False
        js = nc.jetstream()
        try:
            async with asyncio.timeout(PUBLISH_WAIT):
                if not self._journal_ready:
                    s = self.gw.settings
                    await Journal(js, s.env, replicas=s.nats.replicas).ensure_stream()
                    self._journal_ready = True
                await js.publish(entry.subject, entry.payload, headers={MSG_ID: entry.msg_id})
        except Exception as exc:  # NATS away or slow: the outbox keeps it
            log.warning("data issue journal entry left in the outbox: %s", type(exc).__name__)
            return False
        with contextlib.suppress(_NoStore):
            await self.call(lambda store: store.outbox_done([entry.outbox_id]))
        return True


def _unavailable(env: str, exc: Exception) -> JSONResponse:
    if isinstance(exc, _NoStore):
        return _error(
            503,
            "unavailable",
            f"environment {env} has no security master database yet, where data issues are "
            f"kept. Fix: run `ssmd market sync --env {env}` (or `ssmd up`)",
        )
    return _error(503, "unavailable", f"the security master database is unavailable: {exc}")


def _venue_of(gw: Gateway, venue: str | None, symbol: str | None) -> tuple[str, str | None]:
    """The venue of a request about data issues and its market's ticker in that venue: the
    venue of the symbol, else `venue` (default the own); BadRequest for a venue the
    gateway does not serve, or one the symbol is not of."""
    asked = gw.venue(venue)
    if symbol is None:
        return asked, None
    of_symbol, ticker = gw.symbols.split(symbol)
    if venue and of_symbol != asked:
        raise BadRequest(
            f"{symbol} is a market of {of_symbol}, not of venue={venue}. Fix: name it by its "
            f"symbol ({gw.symbols.symbol(asked, symbol)}), or leave venue out"
        )
    return of_symbol, ticker


def _refusal(policy: Policy, venue: str, symbol: str | None) -> str | None:
    """What a tenant may not report on: the market, or every market of a venue outside
    its entitlements (None when it may)."""
    if symbol is not None:
        return None if policy.allows(symbol) else symbol
    return None if venue in policy.entitled_venues else f"venue {venue}"


def _own_keys(gw: Gateway, request: Request) -> tuple[str, ...] | None:
    """A tenant's key: the names of the tenant's keys (a tenant sees the issues its own
    keys reported); None for the operator's keys (every issue)."""
    policy = gw.settings.tenants.of(request.scope.get("state", {}).get("api_key"))
    return None if policy is None else policy.keys


def router(gw: Gateway) -> APIRouter:
    r = APIRouter()
    state = _Issues(gw)
    env = gw.settings.env

    def named(issue: DataIssue) -> dict[str, Any]:
        """The issue as the routes answer: its market by symbol, like the stream's messages."""
        body = issue.to_dict()
        if issue.ticker is not None and issue.feed in gw.feeds:
            body["ticker"] = gw.symbols.symbol(issue.feed, issue.ticker)
        return body

    @r.post(
        "/v1/data-issues",
        status_code=201,
        summary="Report data that looks wrong: a market (or none: all), a time range, what",
    )
    async def report_issue(
        request: Request,
        venue: str | None = Query(
            None, description="Whose markets, without a ticker (the gateway's own by default)"
        ),
    ) -> Response:
        raw = await request.body()
        if len(raw) > MAX_BODY:
            return _error(413, "too_large", f"the report is over {MAX_BODY} bytes")
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return _error(400, "bad_json", "the body is not valid JSON")
        try:
            what = issues.parse_report(body)
        except IssueError as exc:
            return _error(400, "bad_request", str(exc))
        feed, ticker = _venue_of(gw, venue, what.ticker)
        key: ApiKey | None = request.scope.get("state", {}).get("api_key")
        policy = gw.settings.tenants.of(key)
        refused = None if policy is None else _refusal(policy, feed, what.ticker)
        if policy is not None and refused is not None:
            policy.refuse("entitlement")
            return _error(403, "forbidden", policy.forbidden_message([refused]))
        reporter = what.reporter(key.name if key is not None else None)
        mine = replace(what, ticker=ticker)  # the venue's own ticker, as its data has it
        try:
            issue, entry = await state.call(
                lambda store: issues.report(store, env, feed, mine, reporter)
            )
        except Exception as exc:
            return _unavailable(env, exc)
        published = await state.publish(entry)
        return _json({**named(issue), "journal": "published" if published else "queued"}, 201)

    @r.get("/v1/data-issues", summary="Data issues, by the time they begin")
    async def list_issues(
        request: Request,
        status: str = Query("open", description="open, resolved or all"),
        ticker: str | None = Query(
            None, description="This market's issues (its symbol) and all-market ones"
        ),
        start: str | None = Query(None, alias="from", description="ISO 8601 time or date"),
        end: str | None = Query(None, alias="to", description="ISO 8601 time or date (exclusive)"),
        limit: int = Query(100, ge=1, le=MAX_LIST),
        venue: str | None = Query(
            None, description="Which venue's issues (the ticker's, else the gateway's own)"
        ),
    ) -> Response:
        own = _own_keys(gw, request)
        feed, market = _venue_of(gw, venue, ticker)
        if status not in (*STATUSES, "all"):
            return _error(400, "bad_request", f"status must be one of {', '.join(STATUSES)}, all")
        try:
            lo = parse_time(start, "from") if start else None
            hi = parse_time(end, "to") if end else None
        except IssueError as exc:
            return _error(400, "bad_request", str(exc))
        try:
            found = await state.call(
                lambda store: issues.list_issues(
                    store,
                    status=None if status == "all" else status,
                    feed=feed,
                    ticker=market,
                    start=lo,
                    end=hi,
                    limit=limit,
                    keys=own,
                )
            )
        except Exception as exc:
            return _unavailable(env, exc)
        return _json({"issues": [named(i) for i in found]})

    @r.get("/v1/data-issues/{issue_id}", summary="One data issue")
    async def one_issue(request: Request, issue_id: int) -> Response:
        own = _own_keys(gw, request)
        try:
            found = await state.call(lambda store: issues.get(store, issue_id))
        except Exception as exc:
            return _unavailable(env, exc)
        if found is None or (own is not None and found.reporter.split("/", 1)[0] not in own):
            return _error(404, "not_found", f"no data issue {issue_id}")
        return _json(named(found))

    return r
