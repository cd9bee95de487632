"""Gateway fan-out: find the gateway's limit, then run it at 3x that, beside a baseline.

    .venv/bin/python benches/gateway_fanout.py [--clients 200] [--per-client 10]
        [--markets 200] [--trade-share 0.5] [--start-rate 2000] [--step-seconds 4]
        [--overload 3] [--seconds 10] [--client-procs 1] [--no-baseline] [--profile FILE]
        [--before DIR] [--send-timeout S] [--shed-after S] [--rate R]

Processes: nats-server; the gateway (its own process, so its RSS and CPU are its own);
the clients (`--client-procs` processes, started with multiprocessing `spawn`); this
process publishes, writing NATS `PUB`s of the records straight to a socket of its own
(nats-py's `publish` costs several microseconds a message, enough to make the source
the limit at 3x the gateway's capacity). All share the machine's cores.

Two gateways are measured in the same run, one after the other, each with a fresh
nats-server and fresh clients:
- `frames`: the gateway as `ssmd gateway run` serves (its own WebSocket connections:
  every message framed once, each client's waiting messages written in one write);
- `baseline`: the same gateway with the stream on uvicorn's stock websockets-sansio
  protocol, which frames every message again for every client and makes one socket
  write per message (the fan-out path before batching).
`--rate R` replaces the ramp: each gateway is measured at R updates/s (`at_capacity`, with
`capacity_updates_per_s` 0) and the overload runs take R as the capacity, so the
gateways are compared at the same offered load (the ramp's single failing step is at
the mercy of a shared machine's other work). `--before DIR` adds a third, `before`: the gateway of another checkout of the
repository (DIR, e.g. `git archive COMMIT python | tar -x -C DIR`; the built extension
is linked in from this checkout), served the way that checkout serves it.

For each gateway:
- `--markets` markets get a snapshot (10 levels a side). Client i subscribes to markets
  i*k .. i*k+k-1 (mod markets, k = `--per-client`): clients*k/markets subscribers a
  market. Updates are spread evenly over the markets, `--trade-share` trades, the rest
  book deltas, published every 5 ms (what is due by then).
- ramp: steps of `--step-seconds` (after 1 s at the new rate), the rate doubling from
  `--start-rate` until a step fails, then two bisections between the last good and the
  first failed rate. A step passes when every client is still connected, the clients got
  at least 99% of the trades published in the step (trades are never conflated), and
  the trades' publish -> receive p99 is at most 50 ms. capacity = the highest passing
  rate; its delivered messages/s are the gateway's delivered capacity. After every
  step publishing pauses until the gateway has applied the whole stream (a failed step
  leaves a backlog); one that does not drain within 60 s ends the ramp.
- overload, `--overload` (3) x capacity for `--seconds`, two ways:
  - `overload_rate`: 3x the capacity's update rate (as much of it as the publisher and
    nats-server deliver: `offered_per_s`);
  - `overload_fanout`: the capacity's update rate, each client subscribed to 3x as many
    markets (so 3x the messages to deliver, with the same stream to read).
  Each reports delivered messages/s, the p99 of the clients still connected at the end
  (the ones that kept up), clients closed (by close code), books conflated and slow
  disconnects (the gateway's metrics), trades delivered to the clients that kept up
  against the trades published for them, and the gateway's stream lag (messages on the
  stream it had not applied yet, the most seen).

Latency is publish (just before the NATS publish) to client receive, same clock:
trades exactly (each carries its publish time in its size), books from their `ts` (the
exchange time the publisher stamps, 1 ms resolution). The clients are raw asyncio
protocols that read whole socket reads and parse only the frames they time, so the
client side is not the bottleneck; the CPU shares of the gateway, the clients and the
publisher are reported for each run, so what limits a figure shows.

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import json
import multiprocessing as mp
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import orjson

from ssmd import core
from ssmd.bus import subjects
from ssmd.bus.connection import connect
from ssmd.bus.stream import ensure_stream
from ssmd.config import Overrides, load_environment
from ssmd.testing.nats import NatsServer, free_port

ROOT = Path(__file__).resolve().parents[1]

ENV, FEED = "kalshi-sim", "kalshi"
E6, CENT = 1_000_000, 10_000
LEVELS = 10
TICK = 0.005  # the publisher sends what is due every 5 ms
P99_LIMIT_MS = 50.0


def ticker(i: int) -> str:
    return f"KXFAN-26JUL20-T{i:04d}"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return round(s[min(len(s) - 1, int(len(s) * q))], 3)


# ---- the gateway under test (a child process: `--serve`) ------------------------------------


def gateway_changes(a: argparse.Namespace) -> dict[str, float]:
    """The gateway settings the run sets (the rest are the gateway's defaults)."""
    out = {"send_timeout": a.send_timeout, "shed_after": a.shed_after}
    return {k: v for k, v in out.items() if v is not None}


def serve(args: argparse.Namespace) -> None:
    """Child: the gateway on `args.port`; `--ws stock`: the stream on uvicorn's
    websockets-sansio; `--ws before`: the checkout on PYTHONPATH, as it serves."""
    from ssmd.gateway import Gateway, GatewaySettings
    from ssmd.obs import logs

    logs.setup("WARNING", component="gateway")
    env = load_environment(
        ENV, ROOT / "exchanges", Overrides(nats_url=args.nats_url, data_dir=args.data_dir)
    )
    # The settings the run asked for, those this gateway has (a `before` checkout may lack some).
    known = {f.name for f in dataclasses.fields(GatewaySettings)}
    changes = {k: v for k, v in json.loads(args.settings).items() if k in known}
    settings = GatewaySettings.from_environment(env, host="127.0.0.1", port=args.port, **changes)

    async def main() -> None:
        gw = Gateway(settings)
        await gw.start()
        server = gw.server(stream=False) if args.ws == "stock" else gw.server()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
        try:
            await server.serve()
        finally:
            await gw.stop()

    asyncio.run(main())


# ---- clients (child processes) --------------------------------------------------------------


@dataclass
class Window:
    """What the clients count: messages published in [start_ns, stop_ns)."""

    start_ns: int = 0
    stop_ns: int = 1 << 62


@dataclass
class Tally:
    trades: int = 0
    books: int = 0
    trade_lat: list[float] = field(default_factory=list)
    book_lat: list[float] = field(default_factory=list)


class WsClient(asyncio.Protocol):
    """A WebSocket client reading raw frames: the handshake, one subscribe, then every
    data frame counted and timed from what it carries."""

    def __init__(self, host: str, symbols: list[str], window: Window, t0_ns: int) -> None:
        self.host, self.symbols, self.window, self.t0_ns = host, symbols, window, t0_ns
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.open = False
        self.initial_books = len(symbols)
        self.subscribed = asyncio.get_running_loop().create_future()
        self.tally = Tally()
        self.close_code: int | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            f"GET /v1/stream HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )

    def send_frame(self, opcode: int, data: bytes) -> None:
        # Client frames are masked (RFC 6455): a zero mask leaves the payload as it is.
        assert self.transport is not None and len(data) < 1 << 16
        head = bytes((0x80 | opcode, 0x80 | min(len(data), 126)))
        if len(data) >= 126:
            head += len(data).to_bytes(2, "big")
        self.transport.write(head + b"\0\0\0\0" + data)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.open:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if b" 101 " not in buf[: buf.find(b"\r\n")]:
                raise RuntimeError(f"handshake refused: {bytes(buf[:200])!r}")
            del buf[: end + 4]
            self.open = True
            self.send_frame(1, orjson.dumps({"action": "subscribe", "symbols": self.symbols}))
        pos, n = 0, len(buf)
        window, tally = self.window, self.tally
        while n - pos >= 2:
            length = buf[pos + 1] & 0x7F
            if length < 126:
                start = pos + 2
            elif length == 126:
                start = pos + 4
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
            else:
                start = pos + 10
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
            end = start + length
            if end > n:
                break
            opcode = buf[pos] & 0x0F
            pos = end
            if opcode == 8:
                self.close_code = int.from_bytes(buf[start : start + 2], "big")
                continue
            if opcode == 9:  # the gateway's keepalive ping
                self.send_frame(10, bytes(buf[start:end]))
                continue
            if opcode != 1:
                continue
            now = time.time_ns()
            if buf.startswith(b'{"type":"trade"', start):
                sent = self.t0_ns + orjson.loads(buf[start:end])["size"] * 1000
                if window.start_ns <= sent < window.stop_ns:
                    tally.trades += 1
                    tally.trade_lat.append((now - sent) / 1e6)
            elif buf.startswith(b'{"type":"orderbook"', start):
                if self.initial_books:
                    self.initial_books -= 1
                    if not self.initial_books:
                        self.subscribed.set_result(None)
                    continue
                ts = orjson.loads(buf[start:end])["ts"] * 1_000_000
                if window.start_ns <= ts < window.stop_ns:
                    tally.books += 1
                    tally.book_lat.append((now - ts) / 1e6)
        del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.subscribed.done():
            self.subscribed.set_exception(ConnectionError("closed before subscribing"))


def _clients(conn: Connection, port: int, first: int, count: int, args: dict[str, Any]) -> None:
    """Child: `count` clients. Commands: ("window", start_ns, stop_ns) sets what is
    counted, ("report",) sends the tallies of the clients still open and resets them,
    ("reopen",) connects again the clients the gateway closed (same symbols) and says
    how many once they are subscribed, ("quit",) ends."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        window = Window()
        k, markets = args["per_client"], args["markets"]

        async def client(symbols: list[str]) -> WsClient:
            proto = WsClient(f"127.0.0.1:{port}", symbols, window, args["t0_ns"])
            await loop.create_connection(lambda: proto, "127.0.0.1", port)
            return proto

        clients = [
            await client([ticker((i * k + j) % markets) for j in range(k)])
            for i in range(first, first + count)
        ]
        await asyncio.gather(*(c.subscribed for c in clients))
        conn.send("subscribed")
        while True:
            cmd = await loop.run_in_executor(None, conn.recv)
            if cmd[0] == "window":
                window.start_ns, window.stop_ns = cmd[1], cmd[2]
                for c in clients:
                    c.tally = Tally()
            elif cmd[0] == "report":
                kept = [c for c in clients if not c.lost]
                closed = [c for c in clients if c.lost]
                codes: dict[str, int] = {}
                for c in closed:
                    codes[str(c.close_code)] = codes.get(str(c.close_code), 0) + 1
                conn.send(
                    {
                        "open": len(kept),
                        "closed": codes,
                        "trades": sum(c.tally.trades for c in kept),
                        "books": sum(c.tally.books for c in kept),
                        "trade_lat": [x for c in kept for x in c.tally.trade_lat],
                        "book_lat": [x for c in kept for x in c.tally.book_lat],
                        "subs": _subs(kept),  # ticker -> open subscribers
                    }
                )
                for c in clients:
                    c.tally = Tally()
            elif cmd[0] == "reopen":
                # A gateway still shedding may close a client again before it has
                # subscribed: it is tried again, up to 5 times (then it stays closed).
                lost = [i for i, c in enumerate(clients) if c.lost]
                reopened = len(lost)
                for _ in range(5):
                    for i in lost:
                        clients[i] = await client(clients[i].symbols)
                    done = await asyncio.gather(
                        *(clients[i].subscribed for i in lost), return_exceptions=True
                    )
                    lost = [i for i, r in zip(lost, done, strict=True) if r is not None]
                    if not lost:
                        break
                conn.send(reopened - len(lost))
            elif cmd[0] == "more":  # subscribe each client to cmd[1] x its markets
                for i, c in enumerate(clients, start=first):
                    more = [ticker((i * k + j) % markets) for j in range(k, k * cmd[1])]
                    c.symbols = c.symbols + more
                    if not c.lost:
                        c.send_frame(1, orjson.dumps({"action": "subscribe", "symbols": more}))
            else:
                break
        for c in clients:
            if c.transport is not None:
                c.transport.close()

    asyncio.run(main())


def _subs(clients: list[WsClient]) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in clients:
        for s in c.symbols:
            out[s] = out.get(s, 0) + 1
    return out


class ClientProcs:
    def __init__(self, port: int, clients: int, procs: int, args: dict[str, Any]) -> None:
        ctx = mp.get_context("spawn")
        self.pipes: list[Connection] = []
        self.procs = []
        per = -(-clients // procs)
        for p in range(procs):
            first, count = p * per, min(per, clients - p * per)
            if count <= 0:
                break
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_clients, args=(child, port, first, count, args), daemon=True)
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)

    async def subscribed(self, timeout: float = 120) -> None:
        loop = asyncio.get_running_loop()
        for pipe in self.pipes:
            got = await asyncio.wait_for(loop.run_in_executor(None, pipe.recv), timeout)
            assert got == "subscribed", got

    def send(self, *cmd: Any) -> None:
        for pipe in self.pipes:
            pipe.send(cmd)

    async def reopen(self) -> int:
        """Connect again the clients the gateway closed; how many there were."""
        self.send("reopen")
        loop = asyncio.get_running_loop()
        n = 0
        for pipe in self.pipes:
            n += await asyncio.wait_for(loop.run_in_executor(None, pipe.recv), 120)
        return int(n)

    async def report(self) -> dict[str, Any]:
        self.send("report")
        loop = asyncio.get_running_loop()
        merged: dict[str, Any] = {
            "open": 0,
            "closed": {},
            "trades": 0,
            "books": 0,
            "trade_lat": [],
            "book_lat": [],
            "subs": {},
        }
        for pipe in self.pipes:
            r = await asyncio.wait_for(loop.run_in_executor(None, pipe.recv), 60)
            merged["open"] += r["open"]
            merged["trades"] += r["trades"]
            merged["books"] += r["books"]
            merged["trade_lat"] += r["trade_lat"]
            merged["book_lat"] += r["book_lat"]
            for key in ("closed", "subs"):
                for name, n in r[key].items():
                    merged[key][name] = merged[key].get(name, 0) + n
        return merged

    def cpu(self) -> float:
        return sum(cpu_s(p.pid) for p in self.procs if p.pid and p.is_alive())

    def stop(self) -> None:
        self.send("quit")
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()


# ---- the publisher (this process) ---------------------------------------------------------------


class Flow:
    def __init__(self, markets: int, trade_share: float, t0_ns: int) -> None:
        self.markets, self.t0_ns = markets, t0_ns
        self.seq = [1] * markets
        self.trade_every = round(1 / trade_share) if trade_share > 0 else 0
        self.n = 0
        self.published: dict[str, int] = {}  # ticker -> trades published in the window

    def snapshot(self, m: int) -> bytes:
        size = [(lvl + 1) * 10 * E6 for lvl in range(LEVELS)]
        yes = [((20 + lvl) * CENT, s) for lvl, s in enumerate(size)]
        no = [((40 + lvl) * CENT, s) for lvl, s in enumerate(size)]
        rec: dict[str, Any] = {"kind": "book_snapshot", "ticker": ticker(m), "yes": yes, "no": no}
        rec.update(conn_id=1, sid=m + 1, seq=1, receive_ts=time.time_ns())
        return core.encode_records([rec])

    def next(self, now_ns: int, window: Window) -> tuple[str, dict[str, Any]]:
        """The next update: (subject, record). Every market gets its share of trades and
        of deltas."""
        n, te = self.n, self.trade_every
        self.n += 1
        m = (n // te) % self.markets if te else n % self.markets
        t = ticker(m)
        if te and n % te == 0:
            rec = {
                "kind": "trade",
                "ticker": t,
                "trade_id": str(n),
                "price_e6": 30 * CENT,
                # the publish time, us after t0: unique, and what the clients time
                "size_e6": ((now_ns - self.t0_ns) // 1000) * E6,
                "taker_outcome": "yes",
                "receive_ts": now_ns,
                "exchange_ts": now_ns,
            }
            if window.start_ns <= now_ns < window.stop_ns:
                self.published[t] = self.published.get(t, 0) + 1
            return subjects.record(ENV, FEED, "trade", t), rec
        # +1 contract at a level, then -1 at the same level: every delta changes the book
        # and no size drifts (a size below zero would make the book invalid).
        lvl = ((self.seq[m] - 1) // 2) % LEVELS
        change = E6 if self.seq[m] % 2 else -E6
        self.seq[m] += 1
        rec = {
            "kind": "book_delta",
            "ticker": t,
            "side": "yes",
            "price_e6": (20 + lvl) * CENT,
            "delta_e6": change,
            "conn_id": 1,
            "sid": m + 1,
            "seq": self.seq[m],
            "receive_ts": now_ns,
            "exchange_ts": now_ns,
        }
        return subjects.record(ENV, FEED, "orderbook", t), rec


class RawNats:
    """A NATS connection that only publishes: the protocol's CONNECT, then PUBs written
    as they are; the server's PINGs answered."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.task = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, url: str) -> RawNats:
        host, port = url.removeprefix("nats://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        info = await reader.readline()
        assert info.startswith(b"INFO "), info
        writer.write(b'CONNECT {"verbose":false,"pedantic":false,"name":"bench-pub"}\r\nPING\r\n')
        assert await reader.readline() == b"PONG\r\n"
        return cls(reader, writer)

    async def _read(self) -> None:
        while line := await self.reader.readline():
            if line == b"PING\r\n":
                self.writer.write(b"PONG\r\n")
            elif line.startswith(b"-ERR"):
                print(f"nats: {line!r}", file=sys.stderr, flush=True)

    async def publish(self, subjects: list[str], data: bytes, spans: list[tuple[int, int]]) -> None:
        self.writer.write(
            b"".join(
                b"PUB %s %d\r\n%s\r\n" % (s.encode(), b - a, data[a:b])
                for s, (a, b) in zip(subjects, spans, strict=True)
            )
        )
        await self.writer.drain()

    async def close(self) -> None:
        self.task.cancel()
        self.writer.close()


class Publisher:
    """Publishes at `rate` updates/s in the background: every `TICK`, what is due, encoded
    in one call (the records of a tick are one encode_records, cut by record_spans) and
    written as one run of PUBs. A publisher that cannot keep up offers less than asked (at
    most 4 ticks' worth at once) and counts the ticks it fell behind: `offered_per_s` is
    what it did publish."""

    def __init__(self, nc: RawNats, flow: Flow) -> None:
        self.nc, self.flow = nc, flow
        self.rate = 0.0
        self.window = Window(0, 0)
        self.task: asyncio.Task[None] | None = None
        self.behind = 0
        self.published = 0
        self.running = False

    def start(self, rate: float) -> None:
        self.rate = rate
        if self.task is None:
            self.running = True
            self.task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        # Not cancelled: a flush cancelled halfway breaks nats-py's connection.
        self.running = False
        if self.task is not None:
            await self.task
            self.task = None

    async def _run(self) -> None:
        due = 0.0
        last = time.monotonic()
        nc, flow = self.nc, self.flow
        while self.running:
            now = time.monotonic()
            cap = self.rate * TICK * 4
            due += self.rate * (now - last)
            if due > cap:
                due = cap
                self.behind += 1
            last = now
            n = int(due)
            due -= n
            if n:
                now_ns = time.time_ns()
                items = [flow.next(now_ns, self.window) for _ in range(n)]
                data = core.encode_records([rec for _, rec in items])
                await nc.publish([s for s, _ in items], data, core.record_spans(data))
                self.published += n
            await asyncio.sleep(max(0.0, TICK - (time.monotonic() - now)))


async def _metric(http: httpx.AsyncClient, base: str, name: str) -> float:
    text = (await http.get(f"{base}/metrics")).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


@dataclass
class Rig:
    http: httpx.AsyncClient
    base: str
    gateway: subprocess.Popen[bytes]
    clients: ClientProcs
    pub: Publisher
    subs_per_market: float
    nats_pid: int


async def measure(rig: Rig, rate: float, seconds: float) -> dict[str, Any]:
    """One window at `rate`, every client connected (those closed before are opened
    again): after 1 s at the rate, `seconds` counted, 0.5 s of tail."""
    pub, clients = rig.pub, rig.clients
    await clients.reopen()
    pub.start(rate)
    await asyncio.sleep(1.0)
    conflated0 = await _metric(rig.http, rig.base, "ssmd_gateway_conflated_total")
    slow0 = await _metric(rig.http, rig.base, "ssmd_gateway_slow_disconnects_total")
    start_ns = time.time_ns()
    window = Window(start_ns, start_ns + int(seconds * 1e9))
    clients.send("window", window.start_ns, window.stop_ns)
    pub.flow.published = {}
    pub.window = window
    pub.behind = 0
    published0 = pub.published
    gw_cpu0, cl_cpu0, pub_cpu0 = cpu_s(rig.gateway.pid), clients.cpu(), cpu_s(os.getpid())
    nats_cpu0 = cpu_s(rig.nats_pid)
    rss = 0.0
    lag = 0.0  # messages on the stream not yet applied by the gateway, the most seen
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        await asyncio.sleep(0.5)
        rss = max(rss, rss_mb(rig.gateway.pid))
        lag = max(lag, await _metric(rig.http, rig.base, "ssmd_gateway_stream_lag_messages"))
    wall = time.monotonic() - t0
    nats_cpu = (cpu_s(rig.nats_pid) - nats_cpu0) / wall
    offered = (pub.published - published0) / wall
    gw_cpu = (cpu_s(rig.gateway.pid) - gw_cpu0) / wall
    cl_cpu = (clients.cpu() - cl_cpu0) / wall
    pub_cpu = (cpu_s(os.getpid()) - pub_cpu0) / wall
    await asyncio.sleep(0.5)  # the tail: what was published in the window arrives
    r = await clients.report()
    drained = await drain(rig)
    published = pub.flow.published
    trades_published = sum(published.values())
    # Trades the clients still open should have got: each trade once per such subscriber.
    expected = sum(n * r["subs"].get(t, 0) for t, n in published.items())
    delivered = r["trades"] + r["books"]
    out = {
        "rate_per_s": rate,
        "offered_per_s": round(offered),
        "publisher_behind_ticks": pub.behind,
        "trades_published": trades_published,
        "clients_open": r["open"],
        "clients_closed": r["closed"],
        "delivered_per_s": round(delivered / seconds),
        "trades_delivered": r["trades"],
        "trades_expected": expected,
        "books_delivered": r["books"],
        "books_if_unconflated": round((offered * wall - trades_published) * rig.subs_per_market),
        "trade_p50_ms": percentile(r["trade_lat"], 0.50),
        "trade_p99_ms": percentile(r["trade_lat"], 0.99),
        "trade_max_ms": percentile(r["trade_lat"], 1.0),
        "book_p99_ms": percentile(r["book_lat"], 0.99),
        "conflated": await _metric(rig.http, rig.base, "ssmd_gateway_conflated_total") - conflated0,
        "slow_disconnects": await _metric(rig.http, rig.base, "ssmd_gateway_slow_disconnects_total")
        - slow0,
        "gateway_cpu": round(gw_cpu, 2),
        "clients_cpu": round(cl_cpu, 2),
        "publisher_cpu": round(pub_cpu, 2),
        "nats_cpu": round(nats_cpu, 2),
        "gateway_stream_lag_max": lag,
        # Other work on the machine shows here (the processes above use the shares above).
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "gateway_rss_mb": round(rss, 1),
        "drained": drained,
    }
    # Progress on stderr, one line a step.
    shown = [
        "rate_per_s",
        "offered_per_s",
        "delivered_per_s",
        "trades_delivered",
        "trades_expected",
        "trade_p99_ms",
        "clients_open",
        "gateway_cpu",
        "clients_cpu",
        "publisher_cpu",
        "nats_cpu",
        "gateway_stream_lag_max",
        "conflated",
        "loadavg_1m",
        "drained",
    ]
    print({k: out[k] for k in shown}, file=sys.stderr, flush=True)
    return out


async def drain(rig: Rig, deadline: float = 60.0) -> bool:
    """Publishing paused until the gateway applied everything on the stream (a failed step
    leaves a backlog that would fail the next one too); False when it did not by then."""
    rate, rig.pub.rate = rig.pub.rate, 0.0
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < deadline:
            if await _metric(rig.http, rig.base, "ssmd_gateway_stream_lag_messages") == 0:
                await asyncio.sleep(1.0)  # what the gateway holds for its clients goes out
                return True
            await asyncio.sleep(0.5)
        return False
    finally:
        rig.pub.rate = rate


def passes(step: dict[str, Any], clients: int) -> bool:
    return (
        step["offered_per_s"] >= 0.95 * step["rate_per_s"]  # else the source is the limit
        and step["clients_open"] == clients
        and step["trades_delivered"] >= 0.99 * step["trades_expected"]
        and (step["trade_p99_ms"] or 0.0) <= P99_LIMIT_MS
    )


async def ramp(rig: Rig, a: argparse.Namespace) -> tuple[float, list[dict[str, Any]]]:
    steps: list[dict[str, Any]] = []
    good, bad = 0.0, 0.0
    rate = a.start_rate

    async def step_at(rate: float) -> dict[str, Any]:
        """A step, measured again once when it fails with every client still there (a
        spell of the shared machine's other work should not set the capacity)."""
        step = await measure(rig, rate, a.step_seconds)
        step["pass"] = passes(step, a.clients)
        if not step["pass"] and step["clients_open"] == a.clients:
            steps.append(step)
            step = await measure(rig, rate, a.step_seconds)
            step["pass"] = passes(step, a.clients)
        steps.append(step)
        return step

    while True:
        step = await step_at(rate)
        if not step["pass"]:
            bad = rate
            break
        good = rate
        rate *= 2
    for _ in range(2):  # a step starts with every client connected again
        if not steps[-1]["drained"]:
            break
        mid = round((good + bad) / 2, -2)
        step = await step_at(mid)
        if step["pass"]:
            good = mid
        else:
            bad = mid
    return good, steps


async def run_gateway(a: argparse.Namespace, ws: str) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="gwbench-"))
    srv = NatsServer(tmp / "nats")
    await srv.start()
    gateway: subprocess.Popen[bytes] | None = None
    clients: ClientProcs | None = None
    pub: Publisher | None = None
    try:
        env = load_environment(
            ENV, ROOT / "exchanges", Overrides(nats_url=srv.url, data_dir=str(tmp / "data"))
        )
        nc = await connect(srv.url, "gateway-bench")
        await ensure_stream(nc.jetstream(), env.nats)
        flow = Flow(a.markets, a.trade_share, time.time_ns())
        for m in range(a.markets):
            await nc.publish(subjects.record(ENV, FEED, "orderbook", ticker(m)), flow.snapshot(m))
        await nc.flush()

        port = free_port()
        profile = ["-m", "cProfile", "-o", f"{a.profile}.{ws}"] if a.profile else []
        child_env = dict(os.environ)
        if ws == "before":
            child_env["PYTHONPATH"] = str(Path(a.before).resolve() / "python")
        gateway = subprocess.Popen(
            [
                sys.executable,
                *profile,
                str(Path(__file__).resolve()),
                "--serve",
                "--ws",
                ws,
                "--port",
                str(port),
                "--nats-url",
                srv.url,
                "--data-dir",
                str(tmp / "data"),
                "--settings",
                json.dumps(gateway_changes(a)),
            ],
            stdout=subprocess.DEVNULL,
            env=child_env,
        )
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(timeout=10) as http:
            async with asyncio.timeout(60):
                while True:
                    try:
                        if (await http.get(f"{base}/v1/health")).json()["stream"]["ready"]:
                            break
                    except (httpx.TransportError, KeyError, ValueError):
                        pass
                    await asyncio.sleep(0.1)
            rss_idle = rss_mb(gateway.pid)
            clients = ClientProcs(
                port,
                a.clients,
                a.client_procs,
                {"per_client": a.per_client, "markets": a.markets, "t0_ns": flow.t0_ns},
            )
            await clients.subscribed()
            raw = await RawNats.connect(srv.url)
            pub = Publisher(raw, flow)
            assert srv.proc is not None
            subs = a.clients * a.per_client / a.markets
            rig = Rig(http, base, gateway, clients, pub, subs, srv.proc.pid)
            if a.rate:  # every gateway at the same rate: no ramp
                at_capacity = await measure(rig, a.rate, a.seconds)
                at_capacity["pass"] = passes(at_capacity, a.clients)
                capacity, steps, base_rate = 0.0, [at_capacity], a.rate
            else:
                capacity, steps = await ramp(rig, a)
                at_capacity = (
                    next(s for s in reversed(steps) if s["rate_per_s"] == capacity)
                    if capacity
                    else None
                )
                base_rate = max(capacity, a.start_rate)
            overload = await measure(rig, a.overload * base_rate, a.seconds)
            clients.send("more", round(a.overload))
            rig.subs_per_market *= round(a.overload)
            fanout = await measure(rig, base_rate, a.seconds)
            await pub.stop()
            book_events = await _metric(http, base, "ssmd_gateway_book_events_total")
        await nc.close()
    finally:
        if pub is not None:
            await pub.stop()
            await pub.nc.close()
        # The gateway first: it closes its clients (1001) rather than writing to sockets
        # they closed.
        if gateway is not None and gateway.poll() is None:
            gateway.send_signal(signal.SIGTERM)
            try:
                gateway.wait(20)
            except subprocess.TimeoutExpired:
                gateway.kill()
        if clients is not None:
            clients.stop()
        srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)  # the stream: gigabytes after a ramp
    return {
        "capacity_updates_per_s": capacity,
        "at_capacity": at_capacity,
        "overload_rate": overload,
        "overload_fanout": fanout,
        # At the first step's rate (2,000 updates/s by default), and at capacity (where
        # more is in flight in the connections' buffers).
        "memory_per_client_kb": round(
            (steps[0]["gateway_rss_mb"] - rss_idle) * 1024 / a.clients, 1
        ),
        "memory_per_client_at_capacity_kb": round(
            ((at_capacity or overload)["gateway_rss_mb"] - rss_idle) * 1024 / a.clients, 1
        ),
        "gateway_rss_idle_mb": round(rss_idle, 1),
        # Anything here means the flow was not what a connector sends (books went invalid).
        "book_events": book_events,
        "ramp": steps,
    }


async def run(a: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {
        "bench": "gateway_fanout",
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "clients": a.clients,
        "markets_per_client": a.per_client,
        "markets": a.markets,
        "trade_share": a.trade_share,
        "overload_factor": a.overload,
        "gateway_settings": gateway_changes(a),
    }
    out["frames"] = await run_gateway(a, "frames")
    if a.before:
        out["before"] = await run_gateway(a, "before")
    if not a.no_baseline:
        out["baseline"] = await run_gateway(a, "stock")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--per-client", type=int, default=10)
    ap.add_argument("--markets", type=int, default=200)
    ap.add_argument("--trade-share", type=float, default=0.5)
    ap.add_argument("--start-rate", type=float, default=2000.0, help="updates/s, first step")
    ap.add_argument("--step-seconds", type=float, default=4.0)
    ap.add_argument(
        "--rate",
        type=float,
        help="updates/s: measure every gateway at this rate for --seconds (no ramp), then "
        "at --overload x it",
    )
    ap.add_argument("--overload", type=float, default=3.0, help="x capacity, last run")
    ap.add_argument("--seconds", type=float, default=10.0, help="the overload run")
    ap.add_argument("--client-procs", type=int, default=1)
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--profile", help="write cProfiles of the gateway processes to FILE.<ws>")
    ap.add_argument("--before", help="also measure the gateway of this checkout (`before`)")
    # the gateway child (internal)
    ap.add_argument(
        "--send-timeout", type=float, help="the gateway's send_timeout (default: its own)"
    )
    ap.add_argument("--shed-after", type=float, help="the gateway's shed_after (default: its own)")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--settings", default="{}", help=argparse.SUPPRESS)
    ap.add_argument("--ws", default="frames", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--nats-url", help=argparse.SUPPRESS)
    ap.add_argument("--data-dir", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve:
        serve(a)
        return
    print(json.dumps(asyncio.run(run(a))))


if __name__ == "__main__":
    main()
