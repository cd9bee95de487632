"""`KrakenSimulator`: a local Kraken spot WebSocket v2 (public channels) and the public
REST the connector reads (`AssetPairs`, `SystemStatus`), on one port.

Protocol (docs/venues/kraken.md):
- WebSocket at `/v2`. On connect the venue sends a `status` update (`system`,
  `api_version: "v2"`, an integer `connection_id`, `version`). Requests are
  `{"method": ..., "params": {...}, "req_id": n}`: `ping` gets `pong` with `req_id`,
  `time_in`, `time_out`; `subscribe`/`unsubscribe` get one ack per symbol echoing the
  effective parameters (`success: true`, `result`), or a refusal (`success: false`,
  `error`, `symbol` at the top level): an unknown pair or a v1 name (`XBT/USD`) is
  `Currency pair not supported`, unsubscribing what is not subscribed is `Subscription
  Not Found` (whose `method` still reads `subscribe`, as the venue's does).
- `book` (depth 10, 25, 100, 500 or 1000): a snapshot of `min(depth, levels)` per side,
  best first, then updates of the levels that changed inside the depth window (`qty` 0
  deletes; a level that moves into the window after a delete comes as an insert; a level
  pushed out by a better one gets no delete); now and then a price repeats within one
  update (the last one counts). Every message carries the CRC32 of the top 10 levels.
- `trade` (batched, taker `side`, `ord_type`, an integer `trade_id` per pair; no
  snapshot unless asked), `ticker` (a snapshot, then an update on every trade), and
  `instrument` (no symbol; `data` is an object of `assets` and `pairs` with their
  precisions). Numbers are JSON numbers printed at the pair's precision, trailing zeros
  included. `{"channel": "heartbeat"}` (no `type`) goes out about once a second on a
  connection that has a subscription and nothing else to send.
- REST: `GET /0/public/AssetPairs` (legacy keys, v1 `wsname`, `pair_decimals`,
  `lot_decimals`, string `tick_size`/`ordermin`/`costmin`, `status`),
  `GET /0/public/SystemStatus`.

Faults (`inject`, or `faults` at construction as (seconds, kind) pairs): `disconnect`
(abrupt close, no close frame), `stall` (silence: no data, no pong, socket open),
`malformed_frame`, `unknown_type` (a channel the venue does not have), `corrupt_checksum`
(the next book message carries a wrong checksum), `missed_update` (the next book update is
not sent, though the book changed), `venue_error` (an unsolicited error reply),
`reject_subscription` (the next subscription request is refused for every symbol).
Ground truth: the exact frames sent per connection (`frames`), the faults applied
(`faults_applied`) and each pair's book as a client subscribed at a depth holds it
(`levels`).
"""

from __future__ import annotations

import asyncio
import http
import itertools
import logging
import random
import time
import zlib
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from ssmd.sim.kraken.universe import KrPair, fmt, make_universe
from ssmd.sim.venue_server import VenueServer
from ssmd.sim.wsshell import SimSocket

__all__ = ["WS_PATH", "KrFault", "KrakenSimulator", "checksum"]

log = logging.getLogger(__name__)

WS_PATH = "/v2"
DEPTHS = (10, 25, 100, 500, 1000)
CHECKSUM_LEVELS = 10
HEARTBEAT_EVERY = 1.0


class KrFault(StrEnum):
    DISCONNECT = "disconnect"
    STALL = "stall"
    MALFORMED_FRAME = "malformed_frame"
    UNKNOWN_TYPE = "unknown_type"
    CORRUPT_CHECKSUM = "corrupt_checksum"
    MISSED_UPDATE = "missed_update"
    VENUE_ERROR = "venue_error"
    REJECT_SUBSCRIPTION = "reject_subscription"


def checksum(pair: KrPair, bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> int:
    """Kraken's CRC32: the top 10 asks then the top 10 bids, each price then qty, every
    number as its digits at the pair's precision without the point or leading zeros."""
    text = "".join(f"{p}{q}" for p, q in asks[:CHECKSUM_LEVELS])
    text += "".join(f"{p}{q}" for p, q in bids[:CHECKSUM_LEVELS])
    return zlib.crc32(text.encode()) & 0xFFFFFFFF


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class _Conn:
    number: int
    ws: SimSocket
    book: dict[str, int] = field(default_factory=dict)  # symbol -> depth
    sent: dict[str, tuple[dict[int, int], dict[int, int]]] = field(default_factory=dict)
    trade: set[str] = field(default_factory=set)
    ticker: set[str] = field(default_factory=set)
    instrument: bool = False
    stalled: bool = False
    pending: list[KrFault] = field(default_factory=list)
    last_sent: float = 0.0

    @property
    def subscribed(self) -> bool:
        return bool(self.book or self.trade or self.ticker or self.instrument)


def _response(status: int, body: bytes) -> Response:
    headers = Headers([("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return Response(status, http.HTTPStatus(status).phrase, headers, body)


class KrakenSimulator(VenueServer):
    """Async context manager; `ws_url` and `rest_url` are valid once entered."""

    ws_path = WS_PATH

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 1,
        pairs: int = 4,
        rate: float | None = 50.0,
        record_frames: bool = True,
        repeat_probability: float = 0.05,
        faults: list[tuple[float, str]] | None = None,
    ) -> None:
        super().__init__(
            host=host, port=port, rate=rate, record_frames=record_frames, faults=faults
        )
        for _, kind in faults or []:
            KrFault(kind)  # an unknown fault fails here, not when it is due
        self.seed = seed
        self.repeat_probability = repeat_probability
        self.pairs = make_universe(seed, pairs)
        self._by_symbol = {p.symbol: p for p in self.pairs}
        self._rng = random.Random(seed)
        self._conns: dict[int, _Conn] = {}
        self._numbers = itertools.count(1)

    def _background(self) -> list[Coroutine[Any, Any, None]]:
        work = [self._heartbeats()]
        if self.rate:
            work.append(self._flow())
        return work

    # ---- ground truth ----------------------------------------------------------------
    def symbols(self) -> list[str]:
        return [p.symbol for p in self.pairs]

    def pair(self, symbol: str) -> KrPair:
        return self._by_symbol[symbol]

    def levels(
        self, symbol: str, depth: int = 10
    ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """A pair's (bids, asks) as a client subscribed at `depth` holds them, best first,
        in units of 10^-price_decimals and 10^-qty_decimals."""
        return self._by_symbol[symbol].top(depth)

    def open_connections(self) -> list[int]:
        return sorted(n for n, c in self._conns.items() if c.subscribed)

    # ---- faults ----------------------------------------------------------------------
    def inject(self, kind: str, connection: int | None = None) -> None:
        """Applies a fault to one connection (by number) or to every open one."""
        fault = KrFault(kind)
        targets = (
            [self._conns[connection]] if connection is not None else list(self._conns.values())
        )
        for conn in targets:
            self._apply(conn, fault)

    def _apply(self, conn: _Conn, fault: KrFault) -> None:
        if fault is KrFault.DISCONNECT:
            self.faults_applied.append((fault.value, conn.number, ""))
            conn.ws.abort()
        elif fault is KrFault.STALL:
            self.faults_applied.append((fault.value, conn.number, ""))
            conn.stalled = True
        elif fault in (KrFault.MALFORMED_FRAME, KrFault.UNKNOWN_TYPE, KrFault.VENUE_ERROR):
            text = {
                KrFault.MALFORMED_FRAME: '{"channel":"book","type":"update","data":[{"symbol":',
                KrFault.UNKNOWN_TYPE: '{"channel":"mystery","type":"update","data":[]}',
                KrFault.VENUE_ERROR: orjson.dumps(
                    {
                        "error": "Exceeded msg rate",
                        "method": "subscribe",
                        "success": False,
                        "time_in": _now(),
                        "time_out": _now(),
                    }
                ).decode(),
            }[fault]
            self.faults_applied.append((fault.value, conn.number, text))
            self._spawn_send(conn, text)
        else:
            conn.pending.append(fault)

    def _take(self, conn: _Conn, fault: KrFault, detail: str) -> bool:
        if fault not in conn.pending:
            return False
        conn.pending.remove(fault)
        self.faults_applied.append((fault.value, conn.number, detail))
        return True

    # ---- frames ----------------------------------------------------------------------
    def _spawn_send(self, conn: _Conn, text: str) -> None:
        task = asyncio.ensure_future(self._send(conn, text))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _send(self, conn: _Conn, text: str) -> None:
        if conn.stalled:
            return
        if await self._write(conn.ws, conn.number, text) and text.startswith('{"channel"'):
            conn.last_sent = time.monotonic()  # channel data; replies do not count

    @staticmethod
    def _levels(pair: KrPair, levels: list[tuple[int, int]]) -> str:
        pd, qd = pair.price_decimals, pair.qty_decimals
        return ",".join(f'{{"price":{fmt(p, pd)},"qty":{fmt(q, qd)}}}' for p, q in levels)

    def _book_frame(
        self,
        pair: KrPair,
        kind: str,
        bids: list[tuple[int, int]],
        asks: list[tuple[int, int]],
        crc: int,
    ) -> str:
        return (
            f'{{"channel":"book","type":"{kind}","data":[{{"symbol":"{pair.symbol}",'
            f'"bids":[{self._levels(pair, bids)}],"asks":[{self._levels(pair, asks)}],'
            f'"checksum":{crc},"timestamp":"{_now()}"}}]}}'
        )

    async def _snapshot(self, conn: _Conn, pair: KrPair, depth: int) -> None:
        bids, asks = pair.top(depth)
        conn.sent[pair.symbol] = (dict(bids), dict(asks))
        crc = checksum(pair, bids, asks)
        if self._take(conn, KrFault.CORRUPT_CHECKSUM, pair.symbol):
            crc ^= 0x5A5A5A5A
        await self._send(conn, self._book_frame(pair, "snapshot", bids, asks, crc))

    def _diff(
        self, pair: KrPair, old: dict[int, int], new: dict[int, int], full: dict[int, int]
    ) -> list[tuple[int, int]]:
        """The levels to send: deletes of levels gone from the book (not of those pushed
        out of the window), then every level new or changed in the window."""
        out = [(p, 0) for p in old if p not in new and p not in full]
        for p, q in new.items():
            if old.get(p) != q:
                if self._rng.random() < self.repeat_probability:
                    out.append((p, q + 1))  # a repeated price: the later one counts
                out.append((p, q))
        return out

    async def _book_update(self, pair: KrPair) -> None:
        for conn in list(self._conns.values()):
            depth = conn.book.get(pair.symbol)
            if depth is None or pair.symbol not in conn.sent:
                continue
            bids, asks = pair.top(depth)
            old_bids, old_asks = conn.sent[pair.symbol]
            new_bids, new_asks = dict(bids), dict(asks)
            bid_changes = self._diff(pair, old_bids, new_bids, pair.bids)
            ask_changes = self._diff(pair, old_asks, new_asks, pair.asks)
            if not bid_changes and not ask_changes:
                continue
            conn.sent[pair.symbol] = (new_bids, new_asks)
            if self._take(conn, KrFault.MISSED_UPDATE, pair.symbol):
                continue
            crc = checksum(pair, bids, asks)
            if self._take(conn, KrFault.CORRUPT_CHECKSUM, pair.symbol):
                crc ^= 0x5A5A5A5A
            await self._send(conn, self._book_frame(pair, "update", bid_changes, ask_changes, crc))

    def _ticker_frame(self, pair: KrPair, kind: str) -> str:
        pd, qd = pair.price_decimals, pair.qty_decimals
        best_bid, best_ask = pair.best()
        bid = best_bid if best_bid is not None else 0
        ask = best_ask if best_ask is not None else 0
        last = pair.last if pair.last is not None else bid
        return (
            f'{{"channel":"ticker","type":"{kind}","data":[{{"symbol":"{pair.symbol}",'
            f'"bid":{fmt(bid, pd)},"bid_qty":{fmt(pair.bids.get(bid, 0), qd)},'
            f'"ask":{fmt(ask, pd)},"ask_qty":{fmt(pair.asks.get(ask, 0), qd)},'
            f'"last":{fmt(last, pd)},"volume":{fmt(pair.volume, qd)},'
            f'"vwap":{fmt(last, pd)},"low":{fmt(min(bid, last), pd)},'
            f'"high":{fmt(max(ask, last), pd)},"change":0.0,"change_pct":0.00,'
            f'"timestamp":"{_now()}"}}]}}'
        )

    # ---- order flow ------------------------------------------------------------------
    async def _flow(self) -> None:
        assert self.rate
        interval = 1.0 / self.rate
        while True:
            await asyncio.sleep(interval)
            pair = self._rng.choice(self.pairs)
            if self._rng.random() < 0.8:
                await self.book_change(pair)
            else:
                await self.trade(pair)
            self.events += 1

    async def book_change(self, pair: KrPair) -> None:
        """An order placed, changed or cancelled near the top of one side."""
        bid = self._rng.random() < 0.5
        side = pair.bids if bid else pair.asks
        best_bid, best_ask = pair.best()
        roll = self._rng.random()
        if side and roll < 0.35:
            ranked = sorted(side, reverse=bid)
            del side[ranked[min(len(ranked) - 1, self._rng.randint(0, 12))]]
        else:
            steps = self._rng.randint(0, 15) * pair.tick
            if bid:
                top = best_bid if best_bid is not None else 1000
                price = top + pair.tick - steps if roll > 0.9 else top - steps
                if best_ask is not None and price >= best_ask:
                    price = best_ask - pair.tick
            else:
                top = best_ask if best_ask is not None else 2000
                price = top - pair.tick + steps if roll > 0.9 else top + steps
                if best_bid is not None and price <= best_bid:
                    price = best_bid + pair.tick
            if price > 0:
                side[price] = self._rng.randint(1, 9_000) * 10 ** (pair.qty_decimals // 2)
        await self._book_update(pair)

    async def trade(self, pair: KrPair) -> None:
        """A taker takes part of the best level (one or two fills); then the book moves."""
        buy = self._rng.random() < 0.5
        side = pair.asks if buy else pair.bids
        if not side:
            return
        fills = []
        for _ in range(self._rng.randint(1, 2)):
            if not side:
                break
            price = min(side) if buy else max(side)
            qty = max(1, side[price] // self._rng.randint(2, 4))
            side[price] -= qty
            if side[price] == 0:
                del side[price]
            pair.last_trade_id += 1
            pair.last = price
            pair.volume += qty
            fills.append((price, qty, pair.last_trade_id))
        pd, qd = pair.price_decimals, pair.qty_decimals
        ts = _now()
        items = ",".join(
            f'{{"symbol":"{pair.symbol}","side":"{"buy" if buy else "sell"}",'
            f'"price":{fmt(p, pd)},"qty":{fmt(q, qd)},"ord_type":"market",'
            f'"trade_id":{tid},"timestamp":"{ts}"}}'
            for p, q, tid in fills
        )
        trade_frame = f'{{"channel":"trade","type":"update","data":[{items}]}}'
        for conn in list(self._conns.values()):
            if pair.symbol in conn.trade:
                await self._send(conn, trade_frame)
        await self._book_update(pair)
        for conn in list(self._conns.values()):
            if pair.symbol in conn.ticker:
                await self._send(conn, self._ticker_frame(pair, "update"))

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_EVERY / 2)
            now = time.monotonic()
            for conn in list(self._conns.values()):
                if conn.subscribed and now - conn.last_sent >= HEARTBEAT_EVERY:
                    await self._send(conn, '{"channel":"heartbeat"}')

    # ---- WebSocket -------------------------------------------------------------------
    async def _handler(self, ws: SimSocket) -> None:
        conn = _Conn(next(self._numbers), ws)
        self._conns[conn.number] = conn
        self.connections_opened += 1
        try:
            status = {
                "channel": "status",
                "type": "update",
                "data": [
                    {
                        "system": "online",
                        "api_version": "v2",
                        "connection_id": 10_000_000_000_000_000_000 + conn.number,
                        "version": "2.0.10",
                    }
                ],
            }
            await self._send(conn, orjson.dumps(status).decode())
            async for message in ws.messages():
                if conn.stalled:
                    continue
                text = message if isinstance(message, str) else message.decode(errors="replace")
                await self._request(conn, text)
        finally:
            self._conns.pop(conn.number, None)

    def _reply(self, method: str, req_id: Any, time_in: str, **fields: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"method": method, **fields, "time_in": time_in}
        body["time_out"] = _now()
        if req_id is not None:
            body["req_id"] = req_id
        return body

    async def _request(self, conn: _Conn, text: str) -> None:
        time_in = _now()
        try:
            body = orjson.loads(text)
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("method"), str):
            error = {"error": "Malformed request", "success": False, "time_in": time_in}
            await self._send(conn, orjson.dumps(error | {"time_out": _now()}).decode())
            return
        method, req_id = body["method"], body.get("req_id")
        params = body.get("params") if isinstance(body.get("params"), dict) else {}
        assert isinstance(params, dict)
        if method == "ping":
            await self._send(conn, orjson.dumps(self._reply("pong", req_id, time_in)).decode())
        elif method in ("subscribe", "unsubscribe"):
            await self._subscription(conn, method, params, req_id, time_in)
        else:
            refusal = self._reply(
                method, req_id, time_in, success=False, error=f"Unknown method {method}"
            )
            await self._send(conn, orjson.dumps(refusal).decode())

    async def _subscription(
        self, conn: _Conn, method: str, params: dict[str, Any], req_id: Any, time_in: str
    ) -> None:
        channel = params.get("channel")

        async def refuse(error: str, symbol: str | None = None) -> None:
            # The venue's refusal reads `subscribe` even for an unsubscribe.
            fields: dict[str, Any] = {"error": error, "success": False}
            if symbol is not None:
                fields["symbol"] = symbol
            reply = self._reply("subscribe", req_id, time_in, **fields)
            await self._send(conn, orjson.dumps(reply).decode())

        async def ack(result: dict[str, Any]) -> None:
            reply = self._reply(method, req_id, time_in, result=result, success=True)
            await self._send(conn, orjson.dumps(reply).decode())

        if channel == "instrument":
            conn.instrument = method == "subscribe"
            await ack({"channel": "instrument", "snapshot": True})
            if conn.instrument:
                await self._send(conn, orjson.dumps(self._instrument()).decode())
            return
        symbols = params.get("symbol")
        if channel not in ("book", "trade", "ticker") or not isinstance(symbols, list):
            await refuse(f"Unsupported channel or missing symbol: {channel}")
            return
        depth = params.get("depth", 10)
        if channel == "book" and depth not in DEPTHS:
            await refuse(f"Invalid depth {depth}")
            return
        rejected = method == "subscribe" and self._take(
            conn, KrFault.REJECT_SUBSCRIPTION, ",".join(map(str, symbols))
        )
        for symbol in symbols:
            pair = self._by_symbol.get(symbol) if isinstance(symbol, str) else None
            if pair is None or rejected:
                await refuse(
                    "Subscription rejected"
                    if rejected
                    else f"Currency pair not supported {symbol}",
                    str(symbol),
                )
                continue
            held = {"book": conn.book, "trade": conn.trade, "ticker": conn.ticker}[channel]
            if method == "unsubscribe":
                if symbol not in held:
                    await refuse("Subscription Not Found", symbol)
                    continue
                if channel == "book":
                    conn.book.pop(symbol, None)
                    conn.sent.pop(symbol, None)
                elif channel == "trade":
                    conn.trade.discard(symbol)
                else:
                    conn.ticker.discard(symbol)
                await ack({"channel": channel, "symbol": symbol})
                continue
            if symbol in held:
                await refuse("Already subscribed", symbol)
                continue
            if channel == "book":
                conn.book[symbol] = depth
                await ack({"channel": "book", "depth": depth, "snapshot": True, "symbol": symbol})
                await self._snapshot(conn, pair, depth)
            elif channel == "trade":
                conn.trade.add(symbol)
                await ack({"channel": "trade", "snapshot": False, "symbol": symbol})
            else:
                conn.ticker.add(symbol)
                result = {"channel": "ticker", "event_trigger": "trades", "snapshot": True}
                await ack(result | {"symbol": symbol})
                if params.get("snapshot", True) is not False:
                    await self._send(conn, self._ticker_frame(pair, "snapshot"))

    def _instrument(self) -> dict[str, Any]:
        assets = sorted({a for p in self.pairs for a in (p.base, p.quote)})
        return {
            "channel": "instrument",
            "type": "snapshot",
            "data": {
                "assets": [
                    {"id": a, "status": "enabled", "precision": 10, "precision_display": 5}
                    for a in assets
                ],
                "pairs": [
                    {
                        "symbol": p.symbol,
                        "base": p.base,
                        "quote": p.quote,
                        "status": "online",
                        "price_precision": p.price_decimals,
                        "qty_precision": p.qty_decimals,
                        "price_increment": float(fmt(p.tick, p.price_decimals)),
                        "qty_increment": float(fmt(1, p.qty_decimals)),
                        "qty_min": float(fmt(10 ** (p.qty_decimals // 2), p.qty_decimals)),
                        "cost_min": "0.5",
                        "marginable": False,
                        "has_index": True,
                    }
                    for p in self.pairs
                ],
            },
        }

    # ---- REST ------------------------------------------------------------------------
    def _asset_pair(self, p: KrPair) -> dict[str, Any]:
        return {
            "altname": p.key if not p.key.startswith("X") else p.wsname.replace("/", ""),
            "wsname": p.wsname,
            "aclass_base": "currency",
            "base": p.base,
            "aclass_quote": "currency",
            "quote": p.quote,
            "pair_decimals": p.price_decimals,
            "cost_decimals": 5,
            "lot_decimals": p.qty_decimals,
            "lot_multiplier": 1,
            "tick_size": fmt(p.tick, p.price_decimals),
            "ordermin": fmt(10 ** (p.qty_decimals // 2), p.qty_decimals),
            "costmin": "0.5",
            "status": p.status,
        }

    def _process_request(self, request: Request) -> Response | None:
        path = request.path.partition("?")[0]
        if path == WS_PATH:
            return None
        if path == "/0/public/AssetPairs":
            result = {p.key: self._asset_pair(p) for p in self.pairs}
            return _response(200, orjson.dumps({"error": [], "result": result}))
        if path == "/0/public/SystemStatus":
            status = {"status": "online", "timestamp": _now()}
            return _response(200, orjson.dumps({"error": [], "result": status}))
        return _response(404, orjson.dumps({"error": ["EGeneral:Unknown method"]}))
