"""The FastAPI application: REST routes, the WebSocket stream, the web page, auth.

Open without a key: `/v1/health`, `/metrics` (what supervisors and Prometheus scrape;
counts and subscribed tickers, nothing private), `/` and `/static/...`. Everything else needs one
when keys are configured: HTTP answers 401 JSON, a WebSocket is accepted and then
closed with 4401 (browsers cannot read an HTTP status of a refused upgrade).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl

import orjson
from fastapi import FastAPI, Query, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from ssmd import __version__
from ssmd.gateway import wire
from ssmd.gateway.auth import ApiKey, KeyRing, presented_key
from ssmd.gateway.markets import BadRequest, Filters

if TYPE_CHECKING:
    from ssmd.gateway.hub import Client
    from ssmd.gateway.service import Gateway

__all__ = ["create_app"]

log = logging.getLogger(__name__)

CLOSE_UNAUTHORIZED: Final = 4401
CLOSE_TOO_MANY: Final = 4429
_OPEN: Final = ("/v1/health", "/metrics", "/", "/favicon.ico")
_ACTIONS: Final = ("subscribe", "unsubscribe")


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
    presented = presented_key(_headers(scope), _query(scope))
    if not presented:
        return False, None, "missing"
    key = keys.match(presented)
    return (key is not None), key, ("" if key is not None else "invalid")


_REFUSED: Final = {
    "missing": "an API key is required: send X-API-Key, Authorization: Bearer, or ?api_key=",
    "invalid": "the API key is not valid",
}


class KeyMiddleware:
    """HTTP requests outside the open paths need a valid key (WebSockets check their own)."""

    def __init__(self, app: ASGIApp, gw: Gateway) -> None:
        self.app, self.gw = app, gw

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not _is_open(scope["path"]):
            ok, key, reason = authenticate(self.gw.settings.keys, scope)
            if not ok:
                self.gw.metrics.auth_failures.inc(reason)
                resp = error_response(
                    401, "unauthorized", _REFUSED[reason], **{"WWW-Authenticate": "Bearer"}
                )
                await resp(scope, receive, send)
                return
            scope.setdefault("state", {})["api_key"] = key
        await self.app(scope, receive, send)


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

    @app.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(gw.metrics.expose(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/markets", summary="Markets, by ticker or most active first, with filters")
    async def markets(
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
    ) -> Response:
        f = Filters.parse(status, series, event, q)
        page = await gw.markets.page(f, limit, cursor, sort)
        return Response(orjson.dumps(page), media_type="application/json")

    @app.get("/v1/markets/{ticker}", summary="One market")
    async def market(ticker: str) -> Response:
        found = await gw.markets.one(ticker)
        if found is None:
            return error_response(404, "not_found", f"unknown market {ticker}")
        return Response(orjson.dumps(found), media_type="application/json")

    @app.get("/v1/markets/{ticker}/trades", summary="Recent trades of a market, newest first")
    async def trades(ticker: str, limit: int = Query(100, ge=1, le=1000)) -> Response:
        if not await gw.markets.exists(ticker):
            return error_response(404, "not_found", f"unknown market {ticker}")
        items = gw.feed.trades.recent(ticker, limit)
        body = b'{"ticker":%b,"trades":[%b]}' % (
            orjson.dumps(ticker),
            ",".join(items).encode(),
        )
        return Response(body, media_type="application/json")

    # ---- WebSocket ----------------------------------------------------------------------

    @app.websocket("/v1/stream")
    async def stream(websocket: WebSocket) -> None:
        await websocket.accept()
        ok, key, reason = authenticate(settings.keys, websocket.scope)
        if not ok:
            gw.metrics.auth_failures.inc(reason)
            await _close(websocket, CLOSE_UNAUTHORIZED, _REFUSED[reason])
            return
        client = gw.hub.connect(key)
        if client is None:
            assert key is not None
            gw.metrics.auth_failures.inc("connection_limit")
            await _close(
                websocket,
                CLOSE_TOO_MANY,
                f"key {key.name} has its {key.connections} connections open already",
            )
            return
        try:
            await _serve(gw, websocket, client)
        finally:
            gw.hub.disconnect(client)

    return app


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    # A client that stopped reading cannot take the close frame either: bounded wait.
    with contextlib.suppress(Exception):
        async with asyncio.timeout(5.0):
            await websocket.close(code, reason[:120])


async def _serve(gw: Gateway, websocket: WebSocket, client: Client) -> None:
    hub = gw.hub
    symbols = websocket.query_params.get("symbols")
    if symbols:
        await hub.subscribe(client, [s.strip() for s in symbols.split(",") if s.strip()])

    if wire.FRAMES in (websocket.scope.get("extensions") or {}):

        async def send(frames: list[bytes]) -> None:
            await websocket.send({"type": "websocket.send", "frames": b"".join(frames)})

    else:  # another ASGI server: one message at a time

        async def send(frames: list[bytes]) -> None:
            for frame in frames:
                await websocket.send({"type": "websocket.send", "text": wire.payload(frame)})

    writer = asyncio.create_task(hub.pump(client, send))
    reader = asyncio.create_task(_read(gw, websocket, client))
    closed = asyncio.create_task(client.closed.wait())
    try:
        await asyncio.wait({writer, reader, closed}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (writer, reader, closed):
            task.cancel()
        for task in (writer, reader, closed):
            with contextlib.suppress(BaseException):
                await task
    if client.close_code is not None and client.close_code != 1000:
        await _close(websocket, client.close_code, client.close_reason)
    elif writer.done() and not writer.cancelled() and writer.exception() is not None:
        log.info("client %d: send failed: %s", client.number, writer.exception())


async def _read(gw: Gateway, websocket: WebSocket, client: Client) -> None:
    """Client messages, one at a time, until the client goes away."""
    hub = gw.hub
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is None:
            hub.error(client, "bad_request", "send JSON text frames, not binary ones")
            continue
        await _handle(gw, client, text)


async def _handle(gw: Gateway, client: Client, text: str) -> None:
    hub = gw.hub
    try:
        msg: Any = orjson.loads(text)
    except orjson.JSONDecodeError:
        hub.error(client, "bad_json", "the message is not valid JSON")
        return
    if not isinstance(msg, dict):
        hub.error(client, "bad_request", 'expected a JSON object like {"action":"subscribe",...}')
        return
    action = msg.get("action")
    if action is None:
        hub.error(client, "bad_request", 'the message has no "action"')
    elif action not in _ACTIONS:
        shown = action if isinstance(action, str) else type(action).__name__
        hub.error(
            client,
            "unknown_action",
            f"unknown action {str(shown)[:40]!r}; expected subscribe or unsubscribe",
        )
    elif action == "subscribe":
        await hub.subscribe(client, msg.get("symbols"))
    else:
        hub.unsubscribe(client, msg.get("symbols"))
