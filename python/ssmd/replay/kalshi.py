"""The `kalshi` target: the archive served as Kalshi's own WebSocket and the REST
market endpoints a client reads at start, so that a client written for Kalshi (the
project's connector, a trading bot) runs on an archived day unchanged.

    ws://HOST:PORT/trade-api/ws/v2      auth headers checked as the simulator does
    http://HOST:PORT/trade-api/v2/...   markets, markets/{ticker}, series, exchange/status

The WebSocket handshake is authenticated as by the simulator (KALSHI-ACCESS-KEY,
-TIMESTAMP and -SIGNATURE over `GET /trade-api/ws/v2`, the simulator's demo key by
default; no clock-skew check, since archive time is not now). Commands and errors
are ssmd.replay.kalshi_client's. Frames go out at the replay's speed; the clock
starts when the first client subscribes to markets, so a client that connects at
once gets the day from its first frame. Replies the capture received (subscribed, ok, error) are
not sent: each client gets replies to its own commands.

Books: a BookSet (ssmd.core) follows the replayed order-book records, starting from
the archive's books at the start (ssmd.data.books), and gives the
`orderbook_snapshot` of a market subscribed during the replay. Snapshots are written
in the wire era of the archived frames (ssmd.sim.frames renders them).

A gap in the archive (a gap notice of the replay) drops every connection with close
code 1011 and the reason; clients reconnect and subscribe again. The close frame
follows the frames written before it, and a client has CLOSE_TIMEOUT to read them and
answer before its socket is dropped.

The server is the simulators' WebSocket shell (ssmd.sim.wsshell): HTTP and WebSocket on
one port, and a client's queued frames written up to 1,024 at a time.

REST lists the markets of the day's archive as open (the archive holds no market
metadata beyond its records): enough for a client to select and subscribe to them.
"""

from __future__ import annotations

import asyncio
import http
import logging
import re
import urllib.parse
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric import rsa
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from ssmd import core
from ssmd.data.stream import raw_frames
from ssmd.replay.kalshi_client import Client
from ssmd.replay.runner import ReplayPlan
from ssmd.replay.source import NOTICE_PREFIX, Entry, frame_ticker
from ssmd.sim.book import ONE
from ssmd.sim.frames import Msg
from ssmd.sim.server import DEMO_KEY_ID, DEMO_PUBLIC_KEY_PATH, REST_PREFIX, WS_PATH
from ssmd.sim.wsshell import SimServer, SimSocket, serve
from ssmd.store import keys
from ssmd.venues.kalshi import auth

__all__ = ["KalshiTarget"]

log = logging.getLogger(__name__)

CLOSE_TIMEOUT = 10.0  # seconds

# Frame type -> the channel a client subscribes to for it.
CHANNEL_OF: dict[bytes, str] = {
    b"orderbook_snapshot": "orderbook_delta",
    b"orderbook_delta": "orderbook_delta",
    b"trade": "trade",
    b"ticker": "ticker",
    b"ticker_v2": "ticker",
    b"market_lifecycle_v2": "market_lifecycle_v2",
    b"event_lifecycle": "market_lifecycle_v2",
    b"multivariate_lookup": "multivariate",
}
_HEAD = re.compile(rb'^\{"type":"([A-Za-z0-9_]+)","sid":(\d+)(?:,"seq":(\d+))?,')
_E6_PER_PRICE = 1_000_000 // ONE  # simulator prices are 1e-4 dollars
_E6_PER_SIZE = 10_000  # simulator sizes are 1e-2 contracts


def _response(status: int, body: bytes, content_type: str = "application/json") -> Response:
    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
        ]
    )
    return Response(status, http.HTTPStatus(status).phrase, headers, body)


def wire_era(frame: bytes) -> str:
    """The wire era of an order-book frame (ssmd.sim.frames.ERAS): C has only the
    `_dollars_fp` fields, B both, A only integer cents."""
    dollars = b"_dollars" in frame
    cents = b'"price":' in frame or b'"yes":' in frame or b'"no":' in frame
    return "B" if dollars and cents else "C" if dollars else "A"


class KalshiTarget:
    def __init__(
        self,
        p: ReplayPlan,
        *,
        host: str = "127.0.0.1",
        port: int = 8765,
        keys_by_id: dict[str, rsa.RSAPublicKey] | None = None,
        allow_unauthenticated: bool = False,
        max_queue: int = 10_000,
    ) -> None:
        self.plan = p
        self.host, self._port = host, port
        self.keys = (
            keys_by_id
            if keys_by_id is not None
            else {DEMO_KEY_ID: auth.load_public_key(DEMO_PUBLIC_KEY_PATH)}
        )
        self.allow_unauthenticated = allow_unauthenticated
        self.max_queue = max_queue
        self.book_set = core.BookSet(ignore_seqs=True)
        self.clients: set[Client] = set()
        self.markets: set[str] = set()
        self.era = "C"
        self.market_ids: dict[str, str] = {}
        self.last_seq: dict[tuple[str | None, int], int] = {}  # (conn, sid) of the capture
        self.first_subscribe = asyncio.Event()
        self.frames = 0
        self.dropped = 0  # connections dropped at gaps
        self._now_ns = p.start_ns
        self._server: SimServer | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.port

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}{WS_PATH}"

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.port}{REST_PREFIX}"

    async def start(self) -> None:
        p = self.plan
        self.markets = p.ds.tickers_of([keys.day_of_ns(p.start_ns)])
        if p.tickers is not None:
            self.markets &= p.tickers
        for frame in raw_frames(p.ds, p.start_ns, p.end_ns, msgtypes=["orderbook_snapshot"]):
            self.era = wire_era(frame.frame)
            break
        self._server = await serve(
            self._handler,
            self._process_request,
            self.host,
            self._port,
            max_size=1 << 20,
            # A closing client first reads what was written before the close (frames up
            # to a gap, the day's last ones): as long as websockets' own default.
            close_timeout=CLOSE_TIMEOUT,
        )

    async def ready(self) -> None:
        """Wait for the first subscription naming markets: the clock starts then (a
        global channel alone, such as lifecycle, does not start it)."""
        await self.first_subscribe.wait()

    async def stop(self) -> bool:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        return True

    def state(self) -> dict[str, Any]:
        return {
            "ws_url": self.ws_url if self._server is not None else None,
            "clients": len(self.clients),
            "frames": self.frames,
            "dropped_connections": self.dropped,
            "era": self.era,
        }

    async def books(self, records: list[tuple[str, bytes]]) -> None:
        for _, record in records:
            self.book_set.apply(record)

    # ---- frames -----------------------------------------------------------------------

    async def send(self, entries: list[Entry]) -> None:
        frames = [e.frame for e in entries if e.frame is not None]
        if frames:
            conns = {f.conn_id for f in frames}
            for conn in conns:
                mine = [f for f in frames if f.conn_id == conn]
                batch = core.normalize_kalshi(
                    [f.frame for f in mine], [f.receive_ns for f in mine], int(conn or 0)
                )
                self.book_set.apply(batch.data)
        for entry in entries:
            self._now_ns = entry.receive_ns
            if entry.frame is not None:
                self._route(entry.frame.conn_id, entry.frame.frame)
            elif entry.event is not None:
                rec = entry.event.record
                if rec["event"] == "gap" and str(rec["reason"]).startswith(NOTICE_PREFIX):
                    await self._drop_all(str(rec["reason"]))
        for client in list(self.clients):
            await client.wait_room()

    def _route(self, conn: str | None, frame: bytes) -> None:
        m = _HEAD.match(frame)
        if m is None:
            return  # not a subscription's frame (a reply, malformed): not sent
        typ = m[1]
        channel = CHANNEL_OF.get(typ)
        if channel is None:
            return
        self.frames += 1
        ticker = frame_ticker(frame)
        sequenced = m[3] is not None
        if sequenced:
            key = (conn, int(m[2]))
            seq, last = int(m[3]), self.last_seq.get((conn, int(m[2])))
            self.last_seq[key] = seq if last is None else max(last, seq)
            if last is not None and seq > last + 1:
                for client in self.clients:
                    client.lost(channel, seq - last - 1)
        if typ == b"orderbook_snapshot" and ticker is not None:
            mid = re.search(rb'"market_id":"([^"]*)"', frame)
            if mid is not None:
                self.market_ids[ticker] = mid[1].decode()
        tail = frame[m.end() :]
        for client in self.clients:
            client.deliver(channel, ticker, tail, typ, sequenced)

    def snapshot(self, ticker: str, seq: int) -> bytes | None:
        """An orderbook_snapshot of the market as the replay stands (sid 0: the client
        puts its own), or None when the archive has no book of it yet."""
        view = self.book_set.view(ticker)
        if view is None:
            return None
        yes = sorted((p // _E6_PER_PRICE, s // _E6_PER_SIZE) for p, s in view.bids)
        no = sorted((ONE - p // _E6_PER_PRICE, s // _E6_PER_SIZE) for p, s in view.asks)
        msg = Msg(
            "orderbook_delta",
            "orderbook_snapshot",
            ticker,
            self._now_ns / 1e9,
            {"market_id": self.market_ids.get(ticker, ""), "yes": yes, "no": no},
        )
        return msg.frame(self.era, 0, seq)

    async def _drop_all(self, reason: str) -> None:
        log.info("replay gap: dropping %d connection(s): %s", len(self.clients), reason)
        self.dropped += len(self.clients)
        for client in list(self.clients):
            await client.drop(reason)

    # ---- connections --------------------------------------------------------------------

    async def _handler(self, ws: SimSocket) -> None:
        assert ws.request is not None
        client = Client(
            ws,
            self.markets,
            self.snapshot,
            # A handshake that carried a signature had it checked (see _authenticate);
            # one without was let in by allow_unauthenticated, for public channels only.
            authenticated=auth.HEADER_KEY in ws.request.headers,
            max_queue=self.max_queue,
        )
        self.clients.add(client)
        watcher = asyncio.create_task(self._watch_subscribe(client))
        try:
            await client.run()
        finally:
            watcher.cancel()
            self.clients.discard(client)

    async def _watch_subscribe(self, client: Client) -> None:
        await client.subscribed.wait()
        self.first_subscribe.set()

    def _process_request(self, request: Request) -> Response | None:
        bare, _, query = request.path.partition("?")
        if bare == WS_PATH:
            return self._authenticate(request)
        if bare == REST_PREFIX or bare.startswith(REST_PREFIX + "/"):
            status, body = self._rest(bare[len(REST_PREFIX) :], urllib.parse.parse_qs(query))
            return _response(status, orjson.dumps(body))
        return _response(404, b'{"error":{"code":"not_found","message":"not found"}}')

    def _authenticate(self, request: Request) -> Response | None:
        h = request.headers
        key_id = h.get(auth.HEADER_KEY)
        ts, sig = h.get(auth.HEADER_TIMESTAMP), h.get(auth.HEADER_SIGNATURE)
        if not (key_id or ts or sig) and self.allow_unauthenticated:
            return None
        pub = self.keys.get(key_id or "")
        if (
            not key_id
            or not ts
            or not sig
            or pub is None
            or not ts.isdigit()
            or not auth.verify(pub, sig, ts, "GET", WS_PATH)
        ):
            return _response(401, b"authentication failed", "text/plain")
        return None

    def _market(self, ticker: str) -> dict[str, Any]:
        event = ticker.rsplit("-", 1)[0]
        return {
            "ticker": ticker,
            "event_ticker": event,
            "series_ticker": ticker.split("-", 1)[0],
            "status": "active",
        }

    def _rest(self, path: str, q: dict[str, list[str]]) -> tuple[int, Any]:
        parts = [p for p in path.split("/") if p]
        if parts == ["exchange", "status"]:
            return 200, {"exchange_active": True, "trading_active": True}
        if parts == ["series"]:
            names = sorted({t.split("-", 1)[0] for t in self.markets})
            return 200, {"series": [{"ticker": s} for s in names]}
        if parts == ["markets"]:
            wanted = set(",".join(q.get("tickers", [])).split(",")) - {""}
            series = q.get("series_ticker", [""])[0]
            status = q.get("status", [""])[0]
            found = [
                self._market(t)
                for t in sorted(self.markets)
                if (not wanted or t in wanted)
                and (not series or t.split("-", 1)[0] == series)
                and status in ("", "open", "active")
            ]
            return 200, {"markets": found, "cursor": ""}
        if len(parts) == 2 and parts[0] == "markets":
            if parts[1] not in self.markets:
                return 404, {"error": {"code": "market_not_found", "message": "market not found"}}
            return 200, {"market": self._market(parts[1])}
        return 404, {"error": {"code": "not_found", "message": "not found"}}
