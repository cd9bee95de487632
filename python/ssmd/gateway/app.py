"""The FastAPI application: REST routes, the WebSocket stream, the web page, auth.

Open without a key: `/v1/health`, `/metrics` (what supervisors and Prometheus scrape;
counts and subscribed tickers, nothing private), `/` and `/static/...`. Everything else needs one
when keys are configured: HTTP answers 401 JSON, a WebSocket is accepted and then
closed with 4401 (browsers cannot read an HTTP status of a refused upgrade).

The gateway's own listener (listener.py) serves `/v1/stream` itself; the route here
serves it under any other ASGI server (stream.py).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import TYPE_CHECKING, Final
from urllib.parse import parse_qsl

import orjson
from fastapi import FastAPI, Query, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from ssmd import __version__
from ssmd.exceptions import BadRequest
from ssmd.gateway import history, issues, stream
from ssmd.gateway.auth import ApiKey, KeyRing
from ssmd.gateway.markets import Filters
from ssmd.gateway.tenants import Policy
from ssmd.obs.metrics import CONTENT_TYPE, expose

if TYPE_CHECKING:
    from ssmd.gateway.service import Gateway

__all__ = ["create_app"]

log = logging.getLogger(__name__)

_OPEN: Final = ("/v1/health", "/v1/live", "/metrics", "/", "/favicon.ico")


def error_response(status: int, code: str, message: str, **headers: str) -> JSONResponse:
    return JSONResponse(
        {"type": "error", "code": code, "message": message}, status_code=status, headers=headers
    )


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _query(scope: Scope) -> dict[str, str]:
    return dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))


def _is_open(path: str) -> bool:
    return path in _OPEN or path.startswith("/static/")


def authenticate(keys: KeyRing | None, scope: Scope) -> tuple[bool, ApiKey | None, str]:
    """(allowed, key, reason): reason is `missing` or `invalid` when refused."""
    if keys is None:
        return True, None, ""
    return stream.check_key(keys, _headers(scope), _query(scope))


class KeyMiddleware:
    """HTTP requests outside the open paths need a valid key (WebSockets check their own)."""

    def __init__(self, app: ASGIApp, gw: Gateway) -> None:
        self.app, self.gw = app, gw

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not _is_open(scope["path"]):
            ok, key, reason = authenticate(self.gw.settings.keys, scope)
            if not ok:
                self.gw.metrics.auth_failures.labels(reason).inc()
                resp = error_response(
                    401, "unauthorized", stream.REFUSED[reason], **{"WWW-Authenticate": "Bearer"}
                )
                await resp(scope, receive, send)
                return
            scope.setdefault("state", {})["api_key"] = key
            policy = self.gw.settings.tenants.of(key)
            if policy is not None:
                policy.usage.requests += 1
        await self.app(scope, receive, send)


def _policy(gw: Gateway, request: Request) -> Policy | None:
    key: ApiKey | None = request.scope.get("state", {}).get("api_key")
    return gw.settings.tenants.of(key)


def forbidden(policy: Policy, tickers: list[str]) -> JSONResponse:
    policy.refuse("entitlement")
    return error_response(403, "forbidden", policy.forbidden_message(tickers))


def create_app(gw: Gateway) -> FastAPI:
    settings = gw.settings

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await gw.start()
        try:
            yield
        finally:
            await gw.stop()

    app = FastAPI(
        title="ssmd gateway",
        version=__version__,
        description="Live order books, trades and market statuses over WebSocket and REST "
        "(docs/gateway.md).",
        lifespan=lifespan,
        docs_url=None,
    )
    app.add_middleware(KeyMiddleware, gw=gw)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for e in exc.errors():
            where = ".".join(str(x) for x in e.get("loc", ()) if x != "query")
            parts.append(f"{where}: {e.get('msg', 'invalid')}")
        return error_response(400, "bad_request", "; ".join(parts) or "invalid request")

    @app.exception_handler(BadRequest)
    async def _bad(_request: Request, exc: BadRequest) -> JSONResponse:
        return error_response(400, "bad_request", str(exc))

    # ---- page and docs ------------------------------------------------------------------

    app.mount("/static", StaticFiles(directory=settings.static_dir, check_dir=False), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> Response:
        page = settings.static_dir / "index.html"
        if not page.is_file():
            return error_response(404, "not_found", "the web page is not installed")
        return FileResponse(page, media_type="text/html")

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        # The page fetches the schema itself: pass on the key it was opened with.
        key = request.query_params.get("api_key")
        url = app.openapi_url or "/openapi.json"
        if key:
            url += "?" + str(request.url.include_query_params(api_key=key).query)
        return get_swagger_ui_html(openapi_url=url, title="ssmd gateway")

    # ---- REST ---------------------------------------------------------------------------

    @app.get("/v1/health", summary="Health: NATS, stream lag, connector freshness")
    async def health() -> JSONResponse:
        ok, body = gw.health()
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/v1/live", summary="Liveness: the process answers, whatever its health")
    async def live() -> dict[str, bool]:
        # What a liveness probe asks: the gateway rides out NATS or a venue being away
        # (its health is 503 meanwhile); a restart would only drop its clients.
        return {"live": True}

    @app.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(gw.metrics.expose(), media_type=CONTENT_TYPE)

    @app.get(
        "/metrics/tenants",
        summary="Prometheus metrics of every tenant's usage (operator's keys only)",
        response_class=PlainTextResponse,
    )
    async def tenant_metrics(request: Request) -> Response:
        if _policy(gw, request) is not None:
            return error_response(
                403,
                "forbidden",
                "/metrics/tenants shows every tenant's usage and takes an operator's key "
                "(gateway_api_keys); a tenant sees its own at /v1/usage",
            )
        return PlainTextResponse(expose(settings.tenants.registry), media_type=CONTENT_TYPE)

    @app.get("/v1/markets", summary="Markets, by ticker or most active first, with filters")
    async def markets(
        request: Request,
        status: str | None = Query(None, description="Comma-separated: open, closed, halted, ..."),
        series: str | None = Query(None, description="Comma-separated series tickers"),
        event: str | None = Query(None, description="Comma-separated event tickers"),
        q: str | None = Query(None, description="Text in the ticker or title"),
        sort: str = Query(
            "ticker",
            description="ticker, or activity: open markets that traded lately first, most "
            "active on top, then the other open markets, then the rest",
        ),
        limit: int = Query(100, ge=1, le=1000),
        cursor: str | None = Query(None, description="next_cursor of the previous page"),
        venue: str | None = Query(
            None, description="Which venue's markets (the gateway's own by default)"
        ),
    ) -> Response:
        venue = gw.venue(venue)
        f = Filters.parse(status, series, event, q)
        policy = _policy(gw, request)
        if policy is not None:
            prefix = gw.symbols.prefix(venue)
            f = replace(
                f,
                allow=lambda ticker: policy.allows(prefix + ticker),
                likes=policy.ticker_likes(),
                none_entitled=venue not in policy.entitled_venues,
            )
        page = await gw.venue_markets[venue].page(f, limit, cursor, sort)
        return Response(orjson.dumps(page), media_type="application/json")

    # `:path`: a symbol may hold a '/' (Kraken's BTC/USD), which arrives decoded; the
    # trades route comes first, so that `.../trades` is not taken for a symbol.
    @app.get("/v1/markets/{symbol:path}/trades", summary="Recent trades of a market, newest first")
    async def trades(
        request: Request, symbol: str, limit: int = Query(100, ge=1, le=1000)
    ) -> Response:
        policy = _policy(gw, request)
        if policy is not None and not policy.allows(symbol):
            return forbidden(policy, [symbol])
        venue, ticker = gw.symbols.split(symbol)
        if not await gw.venue_markets[venue].exists(ticker):
            return error_response(404, "not_found", f"unknown market {symbol}")
        items = gw.feeds[venue].state.trades.recent(ticker, limit)
        body = b'{"ticker":%b,"trades":[%b]}' % (
            orjson.dumps(symbol),
            ",".join(items).encode(),
        )
        return Response(body, media_type="application/json")

    @app.get("/v1/markets/{symbol:path}", summary="One market")
    async def market(request: Request, symbol: str) -> Response:
        policy = _policy(gw, request)
        if policy is not None and not policy.allows(symbol):
            return forbidden(policy, [symbol])
        venue, ticker = gw.symbols.split(symbol)
        found = await gw.venue_markets[venue].one(ticker)
        if found is None:
            return error_response(404, "not_found", f"unknown market {symbol}")
        return Response(orjson.dumps(found), media_type="application/json")

    @app.get("/v1/usage", summary="Tenants: entitlements, limits and usage")
    async def usage(request: Request) -> Response:
        """A tenant's key sees its own tenant only; an operator's key every tenant."""
        policy = _policy(gw, request)
        if policy is not None:
            return Response(orjson.dumps(policy.to_dict()), media_type="application/json")
        tenants = [p.to_dict() for _, p in sorted(gw.settings.tenants.by_name.items())]
        return Response(orjson.dumps({"tenants": tenants}), media_type="application/json")

    app.include_router(issues.router(gw))  # /v1/data-issues
    history.register(app, gw)  # /v1/history/{kind}, /v1/history/book, /v1/inventory, /v1/quality

    # ---- WebSocket ----------------------------------------------------------------------

    @app.websocket("/v1/stream")
    async def stream_route(websocket: WebSocket) -> None:
        await websocket.accept()
        conn = stream.AsgiConnection(websocket)
        try:
            await stream.session(gw, conn)
        finally:
            await conn.stop()

    return app
