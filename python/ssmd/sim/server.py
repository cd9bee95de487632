"""`Simulator`: the async context manager that runs a local Kalshi (WebSocket + REST on one port)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
import http
import itertools
import logging
import math
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from ssmd.sim.book import BookState
from ssmd.sim.clock import Clock, RealClock
from ssmd.sim.faults import ARMED_KINDS, CONNECTION_KINDS, Fault, FaultKind, Scenario
from ssmd.sim.flow import FlowEngine
from ssmd.sim.frames import ERAS, Msg
from ssmd.sim.rest import RestApi
from ssmd.sim.truth import Truth
from ssmd.sim.universe import Universe
from ssmd.sim.ws import Connection
from ssmd.sim.wsshell import SimServer, SimSocket, serve
from ssmd.venues.kalshi import auth
from ssmd.venues.kalshi.rest import TokenBucket

__all__ = ["DEMO_KEY_ID", "DEMO_PRIVATE_KEY_PATH", "DEMO_PUBLIC_KEY_PATH", "WS_PATH", "Simulator"]

log = logging.getLogger(__name__)

KEYS_DIR = Path(__file__).parent / "keys"
DEMO_KEY_ID = "6d656d6f-7373-4d64-8000-000000000001"
DEMO_PRIVATE_KEY_PATH = KEYS_DIR / "demo_private_key.pem"
DEMO_PUBLIC_KEY_PATH = KEYS_DIR / "demo_public_key.pem"
WS_PATH = "/trade-api/ws/v2"
REST_PREFIX = "/trade-api/v2"
BALANCE_PATH = REST_PREFIX + "/portfolio/balance"  # signed: checks the key like Kalshi


REST_CACHE_ENTRIES = 4096  # bound of the optional edge cache
AUTH_FAILED = b'{"error":{"code":"authentication_failed","message":"authentication failed"}}'


@dataclass
class Armed:
    """A fault armed by its `at`, with how many of its `count` are left to spend."""

    fault: Fault
    left: int


def _response(
    status: int,
    body: bytes,
    content_type: str = "application/json",
    extra: list[tuple[str, str]] | None = None,
) -> Response:
    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
            *(extra or []),
        ]
    )
    return Response(status, http.HTTPStatus(status).phrase, headers, body)


class Simulator:
    """A local Kalshi. Use as ``async with Simulator(...) as sim:``.

    rate: order-flow actions per second of clock (each makes 1-4 frames per fully
    subscribed client); None runs flat out, paced only by the clients (block mode).

    Everything that happens at a time of the simulator clock (order flow, lifecycle
    transitions, scheduled faults and their ends, server pings, pong deadlines, delayed
    acknowledgements) runs on one timeline in time order, so a run on a `ManualClock` is
    the same whatever steps the clock is advanced in.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 0,
        era: str = "C",
        rate: float | None = 200.0,
        markets: int = 200,
        scenario: Scenario | None = None,
        clock: Clock | None = None,
        keys: dict[str, rsa.RSAPublicKey] | None = None,
        allow_unauthenticated: bool = False,
        max_clock_skew: float | None = None,
        ping_interval: float = 10.0,
        pong_timeout: float | None = None,
        max_queue: int = 10_000,
        block_when_full: bool | None = None,
        record_limit: int = 200_000,
        rest_tokens_per_s: float = 200.0,
        rest_bucket: float = 200.0,
        rest_cost: float = 10.0,
        max_connections_per_key: int = 200,
        subpenny: bool | None = None,
        fractional: bool | None = None,
        rest_cache_ttl: float | None = None,
    ) -> None:
        if era not in ERAS:
            raise ValueError(f"era must be one of {ERAS}")
        self.host, self._port = host, port
        self.seed = seed
        self.era = era
        self.rate = rate
        self.scenario = scenario or Scenario()
        self.clock: Clock = clock or RealClock()
        self.key_id = DEMO_KEY_ID
        self.private_key_path = DEMO_PRIVATE_KEY_PATH
        self.keys = (
            keys if keys is not None else {DEMO_KEY_ID: auth.load_public_key(DEMO_PUBLIC_KEY_PATH)}
        )
        self.allow_unauthenticated = allow_unauthenticated
        self.max_clock_skew = max_clock_skew
        self.ping_interval = ping_interval
        self.pong_timeout = pong_timeout
        self.max_queue = max_queue
        # Set unless output is held (`hold_output`); the pace of all writers once released.
        self.output_open = asyncio.Event()
        self.output_open.set()
        self.output_pace: TokenBucket | None = None
        self._flow_task: asyncio.Task[Any] | None = None
        self.block_when_full = rate is None if block_when_full is None else block_when_full
        self.max_connections_per_key = max_connections_per_key
        self.truth = Truth(record_limit)
        self.started_at = self.clock.now()
        self.universe = Universe(
            seed,
            self.started_at,
            markets,
            subpenny=era == "C" if subpenny is None else subpenny,
            hostile=self.scenario.hostile_tickers,
        )
        self.flow = FlowEngine(
            self.universe, seed, fractional=era == "C" if fractional is None else fractional
        )
        self.rest = RestApi(self)
        self.connections: dict[int, Connection] = {}
        self._conn_numbers = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._server: SimServer | None = None
        self._time_faults = sorted(
            (f for f in self.scenario.faults if f.at is not None), key=lambda f: f.at or 0.0
        )
        self._frame_faults = [f for f in self.scenario.faults if f.after_frames is not None]
        self._reject_numbers = {
            f.connection + i
            for f in self.scenario.faults
            if f.kind is FaultKind.REJECT_AUTH and f.connection is not None
            for i in range(f.count)
        }
        self._reject_remaining = 0
        self._armed: list[Armed] = []
        self._bucket = rest_bucket
        self._bucket_cap = rest_bucket
        self._bucket_rate = rest_tokens_per_s
        self._rest_cost = rest_cost
        self._bucket_t = time.monotonic()
        # optional edge cache: (path?query) -> (clock time stored, status, body)
        self.rest_cache_ttl = rest_cache_ttl
        self._rest_cache: OrderedDict[str, tuple[float, int, bytes]] = OrderedDict()
        # the timeline: (clock time, insertion order, callback)
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._timer_order = itertools.count()
        self._wake = asyncio.Event()
        self._sleeping_until = math.inf
        for f in self._time_faults:
            assert f.at is not None
            t = self.started_at + f.at
            self.schedule(t, functools.partial(self._apply, f, t))
        self.frames_published = 0
        self._processed_until = -math.inf
        self.failure: BaseException | None = None  # set when an internal task crashed

    # ---- public API ---------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("simulator not started")
        return self._server.port

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}{WS_PATH}"

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.port}{REST_PREFIX}"

    def auth_headers(self, method: str = "GET", path: str = WS_PATH) -> dict[str, str]:
        """Valid KALSHI-ACCESS-* headers for the demo key (at the simulator's clock time)."""
        key = auth.load_private_key(self.private_key_path)
        return auth.auth_headers(
            self.key_id, key, method, path, now_ms=int(self.clock.now() * 1000)
        )

    def set_era(self, era: str) -> None:
        """Switch the wire format; frames rendered from now on use the new era."""
        if era not in ERAS:
            raise ValueError(f"era must be one of {ERAS}")
        self.era = era

    def book(self, ticker: str) -> BookState:
        """The current book of a market (exact decimal strings, ascending)."""
        return self.universe.markets[ticker].book.state(ticker)

    def books(self) -> dict[str, BookState]:
        return {t: m.book.state(t) for t, m in self.universe.markets.items()}

    async def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until the flow has caught up with the clock and every queued frame was written."""
        async with asyncio.timeout(timeout):
            while (self.failure is None and not self._caught_up()) or any(
                c.out or c.writing for c in self.connections.values() if not c.closed
            ):
                await asyncio.sleep(0)

        if self.failure is not None:
            raise RuntimeError("simulator task failed") from self.failure

    def _caught_up(self) -> bool:
        """The flow has done everything due at the clock's time: it processed up to it, or
        it sleeps until a later time (its next action, transition or timer), as after a
        clock step shorter than the time between two actions."""
        now = self.clock.now()
        if self._processed_until >= now:
            return True
        if self._sleeping_until == math.inf:  # awake: still working
            return False
        due = (
            min(self._sleeping_until, self._timers[0][0]) if self._timers else self._sleeping_until
        )
        return due > now

    def inject(self, fault: Fault) -> None:
        """Apply a fault now (its trigger fields are ignored; a duration counts from now)."""
        self._apply(fault, self.clock.now())

    def schedule(self, t: float, callback: Callable[[], None]) -> None:
        """Run `callback` when the timeline reaches clock time `t` (in time order with the flow)."""
        heapq.heappush(self._timers, (t, next(self._timer_order), callback))
        if t < self._sleeping_until:
            self._wake.set()

    def _run_timers(self, t: float) -> None:
        timers = self._timers
        while timers and timers[0][0] <= t:
            _, _, callback = heapq.heappop(timers)
            callback()

    async def _sleep_until(self, t: float) -> None:
        """Wait for the clock to reach `t`, or for an earlier timer to be scheduled."""
        if self._timers:
            t = min(t, self._timers[0][0])
        if t <= self.clock.now():
            await asyncio.sleep(0)
            return
        self._wake.clear()
        self._sleeping_until = t
        waiter = asyncio.ensure_future(self.clock.wait_until(t))
        woken = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({waiter, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._sleeping_until = math.inf
            waiter.cancel()
            woken.cancel()

    # ---- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> Simulator:
        self._server = await serve(self._handler, self._process_request, self.host, self._port)
        self._flow_task = self.spawn(self._run_flow())
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self._server is not None:
            await self._server.wait_closed()
        self.truth.freeze_books(self.books())

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    # ---- rendered first, sent later (benchmarks) -----------------------------------------

    def hold_output(self) -> None:
        """Queue frames without sending them, with no bound, and let the flow run on
        without waiting for room, until `release_output`. A benchmark renders its frames
        first and then sends only those, so that the simulator's own cost per frame is
        not part of what its client measures."""
        self.output_open.clear()
        for conn in self.connections.values():
            conn.room.set()

    def queued(self) -> int:
        """Frames queued and not sent yet, over every connection."""
        return sum(len(c.out) for c in self.connections.values() if not c.closed)

    def release_output(self, frames_per_s: float | None = None) -> None:
        """Stop the flow and send what was queued: as fast as the clients read, or at
        most `frames_per_s` over all connections together."""
        if self._flow_task is not None:
            self._flow_task.cancel()
        # Bursts of at most 20 ms of frames.
        self.output_pace = (
            TokenBucket(frames_per_s, capacity=max(2.0, frames_per_s / 50))
            if frames_per_s
            else None
        )
        self.output_open.set()
        for conn in self.connections.values():
            conn.wake.set()

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.failure = task.exception()
            log.error("simulator task failed", exc_info=task.exception())

    # ---- engine -------------------------------------------------------------------------

    def publish(self, msgs: list[Msg]) -> None:
        if not msgs:
            return
        self.frames_published += len(msgs)
        for conn in list(self.connections.values()):
            conn.deliver(msgs)

    def _transitions_until(self, t: float) -> None:
        u, flow = self.universe, self.flow
        while True:
            tr = u.pop_due(t)
            if tr is None:
                nt = u.next_time()
                if nt is None or nt > t:
                    return
                continue
            self.publish(flow.transition(tr))

    async def _wait_room(self) -> None:
        for conn in list(self.connections.values()):
            if not conn.closed and not conn.stalled and not conn.room.is_set():
                await conn.room.wait()

    async def _run_flow(self) -> None:
        clock, flow = self.clock, self.flow
        if self.rate is None:
            while True:
                if not any(c.subs for c in self.connections.values()):
                    now = clock.now()
                    self._run_timers(now)
                    self._transitions_until(now)
                    self._processed_until = now
                    await asyncio.sleep(0.005)  # idle: nobody to stream to
                    continue
                now = clock.now()
                self._run_timers(now)
                self._transitions_until(now)
                batch: list[Msg] = []
                for _ in range(64):
                    batch.extend(flow.step(now))
                self.publish(batch)
                self._processed_until = now
                await self._wait_room()
                await asyncio.sleep(0)
        interval = 1.0 / self.rate
        k = 0
        t0 = self.started_at  # the schedule is anchored at construction, not at task start
        while True:
            now = clock.now()
            n = 0
            t = t0 + k * interval
            while t <= now and n < 1000:
                self._run_timers(t)
                self._transitions_until(t)
                self.publish(flow.step(t))
                k += 1
                n += 1
                t = t0 + k * interval
            self._run_timers(min(now, t))
            self._transitions_until(min(now, t))
            self._processed_until = now if n < 1000 else t - interval
            if self.block_when_full:
                await self._wait_room()
            if n >= 1000:
                await asyncio.sleep(0)
                continue
            nt = self.universe.next_time()
            await self._sleep_until(min(t, nt if nt is not None else math.inf))

    # ---- faults -------------------------------------------------------------------------

    def _apply(self, f: Fault, now: float) -> None:
        if f.kind is FaultKind.REJECT_AUTH:
            self._reject_remaining += f.count
            self.truth.fault("reject_auth_armed", None, now, str(f.count))
        elif f.kind in ARMED_KINDS:
            self._armed.append(Armed(f, f.count))
            self.truth.fault(f"{f.kind.value}_armed", f.connection, now, str(f.count))
        elif f.kind in CONNECTION_KINDS:
            targets = [
                c for n, c in self.connections.items() if f.connection is None or n == f.connection
            ]
            for c in targets:
                c.apply(f, now)

    def spend(
        self, kind: FaultKind, channel: str | None = None, connection: int | None = None
    ) -> bool:
        """Spend one of an armed fault of `kind` that applies to a command on `channel` of
        connection `connection` (for a REST request, neither); True if there was one."""
        for armed in self._armed:
            f = armed.fault
            if (
                f.kind is kind
                and armed.left > 0
                and (channel is None or f.channel == channel)
                and (connection is None or f.connection in (None, connection))
            ):
                armed.left -= 1
                return True
        return False

    def _refresh_triggers(self) -> None:
        for conn in self.connections.values():
            ts = [
                f.after_frames
                for f in self._frame_faults
                if f.after_frames is not None
                and (f.connection is None or f.connection == conn.number)
            ]
            conn.next_trigger = min(ts) if ts else 1 << 62

    def fire_frame_faults(self, conn: Connection) -> None:
        due = [
            f
            for f in self._frame_faults
            if (f.connection is None or f.connection == conn.number)
            and f.after_frames is not None
            and conn.data_frames >= f.after_frames
        ]
        for f in due:
            self._frame_faults.remove(f)
            conn.apply(f, self.clock.now())
        self._refresh_triggers()

    # ---- HTTP: handshake auth and REST --------------------------------------------------

    def _process_request(self, request: Request) -> Response | None:
        bare, _, query = request.path.partition("?")
        if bare == WS_PATH:
            return self._authenticate(request)
        if bare == BALANCE_PATH:
            return self._balance(request)
        if bare == REST_PREFIX or bare.startswith(REST_PREFIX + "/"):
            return self._rest(bare, query)
        return _response(404, b'{"error":{"code":"not_found","message":"not found"}}')

    def _balance(self, request: Request) -> Response:
        """GET /portfolio/balance: the one signed REST call (`ssmd key verify`). The
        signature is checked as on the WebSocket upgrade; the demo account holds nothing."""
        h = request.headers
        key_id, ts, sig = (
            h.get(auth.HEADER_KEY),
            h.get(auth.HEADER_TIMESTAMP),
            h.get(auth.HEADER_SIGNATURE),
        )
        pub = self.keys.get(key_id or "")
        if pub is None or not ts or not sig or not auth.verify(pub, sig, ts, "GET", BALANCE_PATH):
            log.info("signed REST request refused (key %s)", key_id or "missing")
            return _response(401, AUTH_FAILED)
        return _response(200, b'{"balance":0,"portfolio_value":0}')

    def _authenticate(self, request: Request) -> Response | None:
        """None accepts the upgrade: with the KALSHI-ACCESS-KEY header's key, or without
        any of the headers when unauthenticated clients are allowed."""
        truth = self.truth
        truth.handshakes += 1
        number = truth.handshakes
        now = self.clock.now()

        def reject(why: str, status: int = 401) -> Response:
            truth.rejected_handshakes += 1
            log.info("handshake %d rejected: %s", number, why)
            return _response(
                status,
                b"authentication failed" if status == 401 else b"too many connections",
                "text/plain",
            )

        if number in self._reject_numbers or self._reject_remaining > 0:
            if number not in self._reject_numbers:
                self._reject_remaining -= 1
            truth.fault("reject_auth", None, now, f"handshake {number}")
            return reject("scheduled fault")
        h = request.headers
        key_id, ts, sig = (
            h.get(auth.HEADER_KEY),
            h.get(auth.HEADER_TIMESTAMP),
            h.get(auth.HEADER_SIGNATURE),
        )
        if not (key_id or ts or sig) and self.allow_unauthenticated:
            return None
        if not key_id or not ts or not sig:
            return reject("missing KALSHI-ACCESS-* header")
        pub = self.keys.get(key_id)
        if pub is None:
            return reject("unknown key id")
        if not ts.isdigit():
            return reject("timestamp is not integer milliseconds")
        if self.max_clock_skew is not None and abs(int(ts) / 1000 - now) > self.max_clock_skew:
            return reject("timestamp outside the allowed skew")
        if not auth.verify(pub, sig, ts, "GET", WS_PATH):
            return reject("bad signature")
        open_for_key = sum(
            1 for c in self.connections.values() if c.rec.key_id == key_id and not c.closed
        )
        if open_for_key >= self.max_connections_per_key:
            return reject("connection cap per key", 429)
        return None

    def _rest(self, path: str, query: str) -> Response:
        self.truth.rest_requests += 1
        if self.spend(FaultKind.REST_401):
            self.truth.fault("rest_401", None, self.clock.now(), path)
            return _response(401, AUTH_FAILED)
        if self.spend(FaultKind.REST_429):
            self.truth.rest_429 += 1
            self.truth.fault("rest_429", None, self.clock.now(), path)
            return _response(429, b'{"error":"too many requests"}')
        mono = time.monotonic()
        self._bucket = min(
            self._bucket_cap, self._bucket + (mono - self._bucket_t) * self._bucket_rate
        )
        self._bucket_t = mono
        if self._bucket < self._rest_cost:
            self.truth.rest_429 += 1
            return _response(429, b'{"error":"too many requests"}')
        self._bucket -= self._rest_cost
        ttl = self.rest_cache_ttl
        if ttl is None:
            status, body = self.rest.handle(
                path, urllib.parse.parse_qs(query, keep_blank_values=True)
            )
            return _response(status, body)
        # edge cache: a response is served unchanged for `ttl` seconds of clock
        now = self.clock.now()
        key = f"{path}?{query}"
        hit = self._rest_cache.get(key)
        if hit is not None and now - hit[0] < ttl:
            stored, status, body = hit
            self.truth.rest_cache_hits += 1
        else:
            stored = now
            status, body = self.rest.handle(
                path, urllib.parse.parse_qs(query, keep_blank_values=True)
            )
            self._rest_cache[key] = (now, status, body)
            self._rest_cache.move_to_end(key)
            while len(self._rest_cache) > REST_CACHE_ENTRIES:
                self._rest_cache.popitem(last=False)
        headers = [
            ("Cache-Control", f"public, max-age={math.ceil(ttl)}"),
            ("Age", str(int(now - stored))),
        ]
        return _response(status, body, extra=headers)

    async def _handler(self, ws: SimSocket) -> None:
        self._conn_numbers += 1
        number = self._conn_numbers
        assert ws.request is not None
        key_id = ws.request.headers.get(auth.HEADER_KEY) or None  # checked by _authenticate
        rec = self.truth.open(number, key_id, self.clock.now())
        rec.peer = ws.peer
        conn = Connection(self, ws, number, rec, authenticated=key_id is not None)
        self.connections[number] = conn
        self._refresh_triggers()
        try:
            await conn.run()
        finally:
            rec.closed_at = self.clock.now()
            self.connections.pop(number, None)
