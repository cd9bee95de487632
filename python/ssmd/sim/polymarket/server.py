"""`PolymarketSimulator`: a local Polymarket CLOB market channel (WebSocket) and the
read-only REST the connector reads (Gamma `/markets`, CLOB `/book`), on one port.

Protocol (docs/venues/polymarket.md):
- WebSocket at `/ws/market`. The first frame must be the initial subscription
  `{"type": "market", "assets_ids": [...]}`; anything else (a `PING` included) closes
  the connection with 1008 "invalid subscription payload". No ack: the answer is the
  initial dump, one JSON array of `book` objects for the known tokens (`[]` when none
  is known), unless `initial_dump` is false; tokens beyond `asset_cap` get no dump.
  A second initial form gets the text `INVALID OPERATION`;
  `{"operation": "subscribe"|"unsubscribe", "assets_ids": [...]}` changes the set
  (a subscribe sends the new tokens' books). The text `PING` gets the text `PONG`.
- Events: `price_change` (current schema: one item per token, mirrored for the other
  token of the market, absolute sizes, the token's best bid/ask after the change),
  `last_trade_price` after a trade and then a `book` of both tokens, `tick_size_change`
  followed by both books. Every value is a string; timestamps are Unix milliseconds.
  `book` levels are worst first and carry the venue's summary hash (computed from the
  token's listing fields: min_order_size, tick_size, neg_risk, last_trade_price).
- REST: `GET /markets` (Gamma: stringified arrays, `limit` capped at 100, `offset`
  beyond 10,000 is 422, `closed` defaults to false, `condition_ids` at most 100),
  `GET /markets/{id}`, `GET /book?token_id=` (CLOB, with the hash).

Faults (`inject`, or `faults` at construction as (seconds, kind) pairs): `disconnect`
(abrupt close), `stall` (silence: no data, no PONG, socket open), `malformed_frame`,
`unknown_type`, `corrupt_hash` (a book whose hash does not match its content),
`missed_update` (the next price_change is not sent to the connection, though the
market's book changed), `invalid_operation` (the venue's error text). Ground truth: the
exact frames sent per connection (`frames`), the faults applied (`faults_applied`)
and each token's book (`levels`).
"""

from __future__ import annotations

import asyncio
import http
import logging
import random
import time
import urllib.parse
from collections.abc import Coroutine
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

import orjson
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from ssmd.sim.polymarket.book import ONE, book_hash, dec
from ssmd.sim.polymarket.universe import PmMarket, make_universe
from ssmd.sim.venue_server import VenueServer
from ssmd.sim.wsshell import SimSocket

__all__ = ["WS_PATH", "PmFault", "PolymarketSimulator"]

log = logging.getLogger(__name__)

WS_PATH = "/ws/market"
GAMMA_LIMIT = 100
GAMMA_MAX_OFFSET = 10_000
ASSET_CAP = 500


class PmFault(StrEnum):
    DISCONNECT = "disconnect"
    STALL = "stall"
    MALFORMED_FRAME = "malformed_frame"
    UNKNOWN_TYPE = "unknown_type"
    CORRUPT_HASH = "corrupt_hash"
    MISSED_UPDATE = "missed_update"
    INVALID_OPERATION = "invalid_operation"


@dataclass
class _Conn:
    number: int
    ws: SimSocket
    assets: set[str] = field(default_factory=set)
    subscribed: bool = False
    stalled: bool = False
    pending: list[PmFault] = field(default_factory=list)


def _response(status: int, body: bytes, content_type: str = "application/json") -> Response:
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return Response(status, http.HTTPStatus(status).phrase, headers, body)


class PolymarketSimulator(VenueServer):
    """Async context manager; `ws_url` and `rest_url` are valid once entered."""

    ws_path = WS_PATH

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 1,
        markets: int = 4,
        rate: float | None = 50.0,
        record_frames: bool = True,
        price_style: str = "mixed",
        wrap_probability: float = 0.1,
        asset_cap: int = ASSET_CAP,
        faults: list[tuple[float, str]] | None = None,
    ) -> None:
        for _, kind in faults or []:
            PmFault(kind)  # an unknown fault fails here, not when it is due
        super().__init__(
            host=host, port=port, rate=rate, record_frames=record_frames, faults=faults
        )
        self.seed = seed
        self.price_style = price_style
        self.wrap_probability = wrap_probability
        self.asset_cap = asset_cap
        self.markets = make_universe(seed, markets)
        self._by_token: dict[str, PmMarket] = {}
        for m in self.markets:
            for t in m.tokens:
                self._by_token[t] = m
        self._rng = random.Random(seed)
        self._conns: dict[int, _Conn] = {}
        self._numbers = 0
        self._last_ms = 0

    def _background(self) -> list[Coroutine[Any, Any, None]]:
        return [self._flow()] if self.rate else []

    # ---- ground truth ----------------------------------------------------------------
    def tokens(self) -> list[str]:
        return [t for m in self.markets for t in m.tokens]

    def market_of(self, token: str) -> PmMarket:
        return self._by_token[token]

    def levels(
        self, token: str
    ) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        """A token's (bids, asks), best first, on its own price scale."""
        m = self._by_token[token]
        bids, asks = m.book.levels(m.is_yes(token))
        return list(reversed(bids)), list(reversed(asks))

    def open_connections(self) -> list[int]:
        return sorted(n for n, c in self._conns.items() if c.subscribed)

    # ---- faults ----------------------------------------------------------------------
    def inject(self, kind: str, connection: int | None = None) -> None:
        """Applies a fault to one connection (by number) or to every open one."""
        fault = PmFault(kind)
        targets = (
            [self._conns[connection]] if connection is not None else list(self._conns.values())
        )
        for conn in targets:
            self._apply(conn, fault)

    def _apply(self, conn: _Conn, fault: PmFault) -> None:
        if fault is PmFault.DISCONNECT:
            self.faults_applied.append((fault.value, conn.number, ""))
            conn.ws.abort()
        elif fault is PmFault.STALL:
            self.faults_applied.append((fault.value, conn.number, ""))
            conn.stalled = True
        elif fault in (PmFault.MALFORMED_FRAME, PmFault.UNKNOWN_TYPE, PmFault.INVALID_OPERATION):
            text = {
                PmFault.MALFORMED_FRAME: '{"event_type":"price_change","market":"0x',
                PmFault.UNKNOWN_TYPE: orjson.dumps(
                    {"event_type": "mystery_event", "market": "0x00", "timestamp": self._ms()}
                ).decode(),
                PmFault.INVALID_OPERATION: "INVALID OPERATION",
            }[fault]
            self.faults_applied.append((fault.value, conn.number, text))
            self._spawn_send(conn, text)
        elif fault is PmFault.CORRUPT_HASH:
            token = next(iter(sorted(conn.assets & self._by_token.keys())), None)
            if token is not None:
                self.faults_applied.append((fault.value, conn.number, token))
                self._spawn_send(conn, orjson.dumps([self._book(token, corrupt=True)]).decode())
        else:
            conn.pending.append(fault)

    # ---- frames ----------------------------------------------------------------------
    def _ms(self) -> str:
        ms = max(int(time.time() * 1000), self._last_ms)
        self._last_ms = ms
        return str(ms)

    def _price(self, p: Decimal) -> str:
        text = dec(p)
        if self.price_style != "mixed":
            return text
        roll = self._rng.random()
        if roll < 0.15 and text.startswith("0."):
            return text[1:]  # ".48"
        if roll < 0.3 and "." in text:
            return text + "0"  # "0.480"
        return text

    def _book(self, token: str, *, corrupt: bool = False) -> dict[str, Any]:
        m = self._by_token[token]
        bids, asks = m.book.levels(m.is_yes(token))
        summary: dict[str, Any] = {
            "market": m.condition_id,
            "asset_id": token,
            "timestamp": self._ms(),
            "hash": "",
            "bids": [{"price": self._price(p), "size": dec(s)} for p, s in bids],
            "asks": [{"price": self._price(p), "size": dec(s)} for p, s in asks],
            "min_order_size": m.min_order_size,
            "tick_size": dec(m.tick),
            "neg_risk": m.neg_risk,
            "last_trade_price": m.last_trade_price,
        }
        digest = book_hash(summary)
        if corrupt:
            digest = digest[::-1]
        return {
            "event_type": "book",
            "market": m.condition_id,
            "asset_id": token,
            "timestamp": summary["timestamp"],
            "hash": digest,
            "tick_size": summary["tick_size"],
            "last_trade_price": m.last_trade_price,
            "bids": summary["bids"],
            "asks": summary["asks"],
        }

    def _spawn_send(self, conn: _Conn, text: str) -> None:
        task = asyncio.ensure_future(self._send(conn, text))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _send(self, conn: _Conn, text: str) -> None:
        if not conn.stalled:
            await self._write(conn.ws, conn.number, text)

    async def _publish(self, market: PmMarket, build: Any) -> None:
        """Sends `build(assets)` (a JSON-able value or None) to every subscribed connection."""
        for conn in list(self._conns.values()):
            if not conn.subscribed:
                continue
            wanted = conn.assets & set(market.tokens)
            if not wanted:
                continue
            payload = build(wanted)
            if payload is None:
                continue
            if (
                isinstance(payload, dict)
                and payload.get("event_type") == "price_change"
                and PmFault.MISSED_UPDATE in conn.pending
            ):
                conn.pending.remove(PmFault.MISSED_UPDATE)
                self.faults_applied.append(
                    (PmFault.MISSED_UPDATE.value, conn.number, market.condition_id)
                )
                continue
            if isinstance(payload, dict) and self._rng.random() < self.wrap_probability:
                payload = [payload]
            await self._send(conn, orjson.dumps(payload).decode())

    # ---- order flow ------------------------------------------------------------------
    async def _flow(self) -> None:
        assert self.rate
        interval = 1.0 / self.rate
        while True:
            await asyncio.sleep(interval)
            market = self._rng.choice(self.markets)
            roll = self._rng.random()
            if roll < 0.75:
                await self.price_change(market)
            elif roll < 0.97:
                await self.trade(market)
            else:
                await self.tick_size_change(market)
            self.events += 1

    async def price_change(self, market: PmMarket) -> None:
        """One level of the YES book changes (placed or cancelled orders), sent mirrored."""
        book = market.book
        bid = self._rng.random() < 0.5
        best_bid, best_ask = book.best(True)
        steps = self._rng.randint(0, 4)
        if bid:
            price = best_ask - market.tick * (1 + steps)
        else:
            price = best_bid + market.tick * (1 + steps)
        if not Decimal(0) < price < ONE:
            return
        side = book.bids if bid else book.asks
        if price in side and self._rng.random() < 0.3:
            size = Decimal(0)
        else:
            size = Decimal(self._rng.randint(1, 400)) + Decimal(self._rng.randint(0, 99)) / 100
        book.set(bid, price, size)
        yes_best = book.best(True)
        no_best = book.best(False)
        items = {
            market.yes_token: {
                "asset_id": market.yes_token,
                "price": self._price(price),
                "size": dec(size),
                "side": "BUY" if bid else "SELL",
                "hash": book_hash(
                    {"asset_id": market.yes_token, "price": dec(price), "t": self._ms()}
                ),
                "best_bid": dec(yes_best[0]),
                "best_ask": dec(yes_best[1]),
            },
            market.no_token: {
                "asset_id": market.no_token,
                "price": self._price(ONE - price),
                "size": dec(size),
                "side": "SELL" if bid else "BUY",
                "hash": book_hash(
                    {"asset_id": market.no_token, "price": dec(price), "t": self._ms()}
                ),
                "best_bid": dec(no_best[0]),
                "best_ask": dec(no_best[1]),
            },
        }
        ts = self._ms()

        def build(wanted: set[str]) -> dict[str, Any]:
            return {
                "event_type": "price_change",
                "market": market.condition_id,
                "timestamp": ts,
                "price_changes": [items[t] for t in market.tokens if t in wanted],
            }

        await self._publish(market, build)

    async def trade(self, market: PmMarket) -> None:
        """A taker lifts the best YES ask or hits the best YES bid; then both books."""
        book = market.book
        buy = self._rng.random() < 0.5
        side = book.asks if buy else book.bids
        if not side:
            return
        price = min(side) if buy else max(side)
        size = min(side[price], Decimal(self._rng.randint(1, 50)))
        book.set(not buy, price, side[price] - size)
        market.last_trade_price = dec(price)
        ts = self._ms()

        def last_trade(wanted: set[str]) -> dict[str, Any] | None:
            if market.yes_token not in wanted:
                return None
            return {
                "event_type": "last_trade_price",
                "asset_id": market.yes_token,
                "market": market.condition_id,
                "price": self._price(price),
                "size": dec(size),
                "side": "BUY" if buy else "SELL",
                "fee_rate_bps": "0",
                "timestamp": ts,
                "transaction_hash": "0x" + book_hash({"t": ts, "m": market.condition_id}) * 2,
            }

        await self._publish(market, last_trade)
        await self._publish(
            market, lambda wanted: [self._book(t) for t in market.tokens if t in wanted]
        )

    async def tick_size_change(self, market: PmMarket) -> None:
        """The tick changes (prices neared 0 or 1 on the venue); both books follow."""
        old = market.tick
        new = Decimal("0.001") if old != Decimal("0.001") else Decimal("0.01")
        market.tick = new
        ts = self._ms()

        def change(wanted: set[str]) -> list[dict[str, Any]]:
            return [
                {
                    "event_type": "tick_size_change",
                    "asset_id": t,
                    "market": market.condition_id,
                    "old_tick_size": dec(old),
                    "new_tick_size": dec(new),
                    "timestamp": ts,
                }
                for t in market.tokens
                if t in wanted
            ]

        await self._publish(market, change)
        await self._publish(
            market, lambda wanted: [self._book(t) for t in market.tokens if t in wanted]
        )

    # ---- WebSocket -------------------------------------------------------------------
    def _dump(self, assets: list[str]) -> str:
        known = [a for a in dict.fromkeys(assets) if a in self._by_token][: self.asset_cap]
        return orjson.dumps([self._book(a) for a in known]).decode()

    async def _handler(self, ws: SimSocket) -> None:
        self._numbers += 1
        conn = _Conn(self._numbers, ws)
        self._conns[conn.number] = conn
        self.connections_opened += 1
        try:
            async for message in ws.messages():
                text = message if isinstance(message, str) else message.decode(errors="replace")
                if conn.stalled:
                    continue
                await self._command(conn, text)
        finally:
            self._conns.pop(conn.number, None)

    async def _command(self, conn: _Conn, text: str) -> None:
        if text.strip() == "PING":
            if not conn.subscribed:
                await conn.ws.close(1008, "invalid subscription payload")
                return
            await self._send(conn, "PONG")
            return
        try:
            body = orjson.loads(text)
        except orjson.JSONDecodeError:
            body = None
        ids = body.get("assets_ids") if isinstance(body, dict) else None
        valid_ids = isinstance(ids, list) and all(isinstance(i, str) for i in ids)
        if not conn.subscribed:
            kind = body.get("type") if isinstance(body, dict) else None
            if not (isinstance(kind, str) and kind.lower() == "market" and valid_ids):
                await conn.ws.close(1008, "invalid subscription payload")
                return
            assert isinstance(ids, list)
            conn.assets = set(ids)
            conn.subscribed = True
            if body.get("initial_dump", True) is not False:
                await self._send(conn, self._dump(ids))
            return
        operation = body.get("operation") if isinstance(body, dict) else None
        if operation in ("subscribe", "unsubscribe") and valid_ids and "type" not in body:
            assert isinstance(ids, list)
            if operation == "subscribe":
                new = [i for i in ids if i not in conn.assets]
                conn.assets.update(ids)
                await self._send(conn, self._dump(new))
            else:
                conn.assets.difference_update(ids)
            return
        await self._send(conn, "INVALID OPERATION")

    # ---- REST ------------------------------------------------------------------------
    def _gamma(self, m: PmMarket) -> dict[str, Any]:
        best_bid, best_ask = m.book.best(True)
        return {
            "id": m.gamma_id,
            "question": m.question,
            "conditionId": m.condition_id,
            "slug": m.slug,
            "questionID": "0x" + m.condition_id[2:][::-1],
            "outcomes": orjson.dumps(["Yes", "No"]).decode(),
            "outcomePrices": orjson.dumps([dec(best_bid), dec(ONE - best_bid)]).decode(),
            "clobTokenIds": orjson.dumps([m.yes_token, m.no_token]).decode(),
            "active": m.active,
            "closed": m.closed,
            "archived": False,
            "acceptingOrders": m.active and not m.closed,
            "enableOrderBook": True,
            "negRisk": m.neg_risk,
            "orderPriceMinTickSize": float(m.tick),
            "orderMinSize": int(m.min_order_size),
            "bestBid": float(best_bid),
            "bestAsk": float(best_ask),
            "volume": "0",
            "endDate": "2027-01-01T00:00:00Z",
        }

    def _process_request(self, request: Request) -> Response | None:
        path, _, query = request.path.partition("?")
        if path == WS_PATH:
            return None
        params = urllib.parse.parse_qs(query)

        def one(name: str, default: str = "") -> str:
            return params.get(name, [default])[-1]

        if path == "/markets":
            try:
                limit = min(int(one("limit", "20")), GAMMA_LIMIT)
                offset = int(one("offset", "0"))
            except ValueError:
                return _response(422, b'{"error":"limit and offset must be integers"}')
            if offset > GAMMA_MAX_OFFSET:
                return _response(422, b'{"error":"offset too large"}')
            closed = one("closed", "false").lower() == "true"
            wanted = [c for v in params.get("condition_ids", []) for c in v.split(",") if c]
            if len(wanted) > 100:
                return _response(422, b'{"error":"at most 100 condition_ids"}')
            rows = [m for m in self.markets if m.closed == closed]
            if wanted:
                rows = [m for m in rows if m.condition_id in wanted]
            page = rows[offset : offset + limit]
            return _response(200, orjson.dumps([self._gamma(m) for m in page]))
        if path.startswith("/markets/"):
            key = path.removeprefix("/markets/")
            for m in self.markets:
                if key in (m.gamma_id, m.condition_id):
                    return _response(200, orjson.dumps(self._gamma(m)))
            return _response(404, b'{"error":"market not found"}')
        if path == "/book":
            token = one("token_id")
            if token not in self._by_token:
                return _response(404, b'{"error":"No orderbook exists for the requested token id"}')
            book = self._book(token)
            m = self._by_token[token]
            body = {
                "market": m.condition_id,
                "asset_id": token,
                "timestamp": book["timestamp"],
                "hash": book["hash"],
                "bids": book["bids"],
                "asks": book["asks"],
                "min_order_size": m.min_order_size,
                "tick_size": book["tick_size"],
                "neg_risk": m.neg_risk,
                "last_trade_price": m.last_trade_price,
            }
            return _response(200, orjson.dumps(body))
        return _response(404, b'{"error":"not found"}')
