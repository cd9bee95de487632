"""The client of the gateway of the MCP server and `ssmd tui`: REST for markets, trades,
health and data issues; the WebSocket for a market's whole live book (REST gives only its
top) and, for the TUI, its live messages.

Every failure is a GatewayError whose message an agent can act on: the gateway's own
error message (it names the parameter or the market), or that the gateway does not
answer at its URL and how to point at another one.

A client opened for a further venue of an environment (`--feed kraken`) speaks that
venue's tickers: the gateway of the environment serves them as `kraken:TICKER`, and the
client adds and removes that prefix (a gateway run for the venue alone has none).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from typing import Any, Final
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import httpx
import orjson
import websockets
from websockets.asyncio.client import connect

from ssmd.exceptions import GatewayError
from ssmd.gateway.symbols import SEPARATOR

__all__ = ["KEY_ENV", "GatewayClient"]

KEY_ENV: Final = "SSMD_GATEWAY_API_KEY"  # the API key the MCP server presents, if any
BOOK_WAIT: Final = 5.0  # seconds for the gateway to answer a subscribe with the book
# An idle connection is dropped before the gateway closes it (uvicorn's keep-alive timeout,
# 5 s): reusing one the gateway is closing at that moment fails the request.
KEEPALIVE_EXPIRY: Final = 3.0
MCP_FIX: Final = "give `ssmd mcp serve` its URL with --gateway"


class GatewayClient:
    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        timeout: float = 10.0,
        *,
        fix: str = MCP_FIX,
        venue: str | None = None,
    ) -> None:
        """`fix` ends the message of a gateway that does not answer: how to name another.
        `venue`: the further venue whose markets the client is for (None: the gateway's
        own)."""
        self.base_url = base_url.rstrip("/")
        self.venue = venue
        self._prefix: str | None = None if venue else ""  # known once the gateway says
        self._headers = {"X-API-Key": api_key} if api_key else {}
        self._fix = fix
        self.http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=self._headers,
            timeout=timeout,
            limits=httpx.Limits(keepalive_expiry=KEEPALIVE_EXPIRY),
        )

    @property
    def has_key(self) -> bool:
        return bool(self._headers)

    async def aclose(self) -> None:
        await self.http.aclose()

    def _unreachable(self, exc: Exception) -> GatewayError:
        return GatewayError(
            f"the gateway at {self.base_url} does not answer ({type(exc).__name__}). Fix: start "
            f"it (`ssmd up` or `ssmd gateway run`), or {self._fix}"
        )

    @staticmethod
    def _refused(resp: httpx.Response) -> GatewayError:
        try:
            body = resp.json()
            message, code = str(body["message"]), str(body.get("code", "error"))
        except (ValueError, KeyError, TypeError):
            message, code = f"HTTP {resp.status_code}: {resp.text[:200]}", "error"
        return GatewayError(message, resp.status_code, code)

    async def request(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        body: Any = None,
        ok: tuple[int, ...] = (200, 201),
    ) -> Any:
        """The JSON answer; GatewayError for a status outside `ok` or no answer."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            resp = await self.http.request(
                method,
                path,
                params=query,
                content=None if body is None else orjson.dumps(body),
                headers={"Content-Type": "application/json"} if body is not None else None,
            )
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None
        if resp.status_code not in ok:
            raise self._refused(resp)
        return orjson.loads(resp.content)

    async def get(self, path: str, **params: Any) -> Any:
        return await self.request("GET", path, params)

    async def health(self) -> tuple[int, dict[str, Any]]:
        """(status, body) of /v1/health: 503 is an answer too (the gateway says what is wrong)."""
        try:
            resp = await self.http.get("/v1/health")
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None
        try:
            body = orjson.loads(resp.content)
        except orjson.JSONDecodeError:
            body = {"status": "unknown", "problems": [resp.text[:200]]}
        return resp.status_code, body

    # ---- markets, in the client's venue's tickers ------------------------------------------

    async def _symbol_prefix(self) -> str:
        """What goes before the venue's tickers at this gateway (its health says which
        venues it serves); GatewayError when it does not serve the venue."""
        if self._prefix is None:
            _, body = await self.health()
            further = body.get("venues") or {}
            if body.get("feed") == self.venue:
                self._prefix = ""
            elif self.venue in further:
                self._prefix = f"{self.venue}{SEPARATOR}"
            else:
                served = ", ".join([str(body.get("feed")), *further])
                raise GatewayError(
                    f"the gateway at {self.base_url} serves {served}, not {self.venue}. "
                    f"Fix: {self._fix}"
                )
        return self._prefix

    async def _path(self, ticker: str, tail: str = "") -> str:
        symbol = await self._symbol_prefix() + ticker
        return f"/v1/markets/{quote(symbol, safe='')}{tail}"  # a ticker may hold a '/'

    async def _of_venue(self, params: dict[str, Any]) -> dict[str, Any]:
        """`params` of a route that lists one venue's (`venue=`, the gateway's own by
        default), for the client's venue, its `ticker` named by symbol."""
        prefix = await self._symbol_prefix()
        if not prefix:
            return params
        ticker = params.get("ticker")
        return {**params, "venue": self.venue, **({"ticker": prefix + ticker} if ticker else {})}

    async def markets(self, **params: Any) -> Any:
        """A page of /v1/markets of the client's venue."""
        return await self.get("/v1/markets", **await self._of_venue(params))

    async def market(self, ticker: str) -> Any:
        return await self.get(await self._path(ticker))

    async def trades(self, ticker: str, limit: int) -> Any:
        body = await self.get(await self._path(ticker, "/trades"), limit=limit)
        prefix = await self._symbol_prefix()
        for trade in body["trades"]:  # each a trade message, named by symbol too
            self._unprefixed(trade, prefix)
        return self._unprefixed(body, prefix)

    # ---- data issues, of the client's venue ------------------------------------------------

    async def report_issue(self, report: dict[str, Any]) -> Any:
        """POST /v1/data-issues: `report` of a market of the client's venue (`ticker`), or
        of every one (no `ticker`); the issue as the gateway stored it."""
        prefix = await self._symbol_prefix()
        ticker = report.get("ticker")
        body = {**report, "ticker": prefix + ticker} if ticker else report
        query = {"venue": self.venue} if prefix else None
        issue = await self.request("POST", "/v1/data-issues", query, body)
        return self._unprefixed(issue, prefix)

    async def issues(self, **params: Any) -> Any:
        """/v1/data-issues of the client's venue (`status`, `ticker`, `from`, `to`, `limit`)."""
        body = await self.get("/v1/data-issues", **await self._of_venue(params))
        prefix = await self._symbol_prefix()
        for issue in body["issues"]:
            self._unprefixed(issue, prefix)
        return body

    @staticmethod
    def _unprefixed(msg: dict[str, Any], prefix: str) -> dict[str, Any]:
        """The venue's tickers where the gateway named its markets by symbol: `ticker`,
        and `symbols` (the stream's subscribed and unsubscribed replies)."""
        if not prefix:
            return msg
        ticker, symbols = msg.get("ticker"), msg.get("symbols")
        if isinstance(ticker, str):
            msg["ticker"] = ticker.removeprefix(prefix)
        if isinstance(symbols, list):
            msg["symbols"] = [s.removeprefix(prefix) if isinstance(s, str) else s for s in symbols]
        return msg

    def _ws_url(self, symbol: str) -> str:
        parts = urlsplit(self.base_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        query = urlencode({"symbols": symbol}, quote_via=quote)
        return urlunsplit((scheme, parts.netloc, parts.path + "/v1/stream", query, ""))

    async def book(self, ticker: str) -> dict[str, Any]:
        """The market's whole live book, as the gateway's `orderbook` message: subscribe on a
        WebSocket of its own, take the book it answers with, close."""
        try:
            async with (
                asyncio.timeout(BOOK_WAIT),
                contextlib.aclosing(self.stream(ticker)) as messages,
            ):
                async for msg in messages:
                    kind = msg.get("type")
                    if kind == "orderbook" and msg.get("ticker") == ticker:
                        return msg
                    if kind == "error":
                        code = str(msg.get("code"))
                        raise GatewayError(
                            str(msg.get("message")), 404 if code == "unknown_symbol" else 400, code
                        )
        except TimeoutError:
            raise GatewayError(
                f"the gateway at {self.base_url} sent no book of {ticker} within {BOOK_WAIT:g} s"
            ) from None
        raise GatewayError("the gateway closed the stream before sending the book", code="closed")

    async def stream(self, ticker: str) -> AsyncGenerator[dict[str, Any], None]:
        """The market's messages as they come (`orderbook`: the whole book on every change,
        conflated for a slow reader; `trade`; `status`; `error`) until the gateway closes
        the stream: then, or when it does not answer, a GatewayError."""
        prefix = await self._symbol_prefix()
        try:
            async with connect(
                self._ws_url(prefix + ticker),
                additional_headers=self._headers,
                compression=None,
                max_size=1 << 24,
                open_timeout=BOOK_WAIT,
            ) as ws:
                async for raw in ws:
                    msg = orjson.loads(raw)
                    if isinstance(msg, dict):
                        yield self._unprefixed(msg, prefix)
        except websockets.ConnectionClosedError as exc:
            raise GatewayError(
                f"the gateway closed the stream: {exc.rcvd.reason if exc.rcvd else exc}",
                code="closed",
            ) from None
        except (OSError, TimeoutError, websockets.InvalidHandshake) as exc:
            raise self._unreachable(exc) from None
        raise GatewayError("the gateway closed the stream", code="closed")
