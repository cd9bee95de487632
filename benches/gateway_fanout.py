"""Gateway fan-out: many WebSocket clients, a steady flow of updates through NATS.

    .venv/bin/python benches/gateway_fanout.py [--clients 200] [--per-client 10]
        [--markets 200] [--rate 2000] [--seconds 20] [--trade-share 0.5] [--client-procs 1]
        [--profile FILE]

Processes: nats-server; the gateway (`ssmd gateway run`, its own process, so its RSS is
its own); the clients (`--client-procs` processes started with multiprocessing `spawn`);
this process publishes. All share the machine's cores.

- `--markets` markets get a snapshot (10 levels a side), then `--rate` updates/s in
  total are published to NATS for `--seconds` (after 3 s of warm-up), spread evenly over
  the markets: `--trade-share` of them trades, the rest order-book deltas.
- Client i subscribes to markets i*k .. i*k+k-1 (mod `--markets`, k = `--per-client`),
  so each market has clients*k/markets subscribers.
- delivered: trade + orderbook messages received by all clients per second of the
  measured window (books conflate when a client falls behind, trades never do).
- latency, publish (just before the NATS publish) to client receive, same clock: trades
  exactly (each carries a unique size); books from their `ts` (ms, the exchange time
  the publisher stamps), so 1 ms resolution.
- memory per client: gateway RSS with the clients subscribed during the flow, minus its
  RSS with the books loaded and no client, divided by the number of clients.
- disconnected: clients whose connection closed during the run, and the gateway's
  ssmd_gateway_slow_disconnects_total; book_events: the gateway's gap/invalid counts
  (empty for a correct flow).

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "connector"))

import httpx  # noqa: E402
import orjson  # noqa: E402
from natsfix import NatsServer, free_port  # noqa: E402

from ssmd import core  # noqa: E402
from ssmd.bus import subjects  # noqa: E402
from ssmd.bus.connection import connect  # noqa: E402
from ssmd.bus.stream import ensure_stream  # noqa: E402
from ssmd.config import Overrides, load_environment  # noqa: E402

ENV, FEED = "kalshi-sim", "kalshi"
E6, CENT = 1_000_000, 10_000
LEVELS = 10
WARMUP = 3.0


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


# ---- clients (child processes) --------------------------------------------------------------


def _clients(conn: Connection, url: str, first: int, count: int, args: dict[str, Any]) -> None:
    """Child: `count` clients; on "start" they count, on "stop" they report."""
    import websockets

    async def main() -> None:
        loop = asyncio.get_running_loop()
        counting = False
        delivered = 0
        trade_lat: list[float] = []
        book_lat: list[float] = []
        closed = 0
        subscribed = 0

        async def client(i: int) -> None:
            nonlocal delivered, closed, subscribed
            k, markets = args["per_client"], args["markets"]
            symbols = [ticker((i * k + j) % markets) for j in range(k)]
            try:
                async with websockets.connect(url, max_size=None, ping_interval=None) as ws:
                    await ws.send(
                        orjson.dumps({"action": "subscribe", "symbols": symbols}).decode()
                    )
                    books = 0
                    async for raw in ws:
                        now = time.time_ns()
                        msg = orjson.loads(raw)
                        kind = msg["type"]
                        if kind == "orderbook" and books < k:
                            books += 1
                            if books == k:
                                subscribed += 1
                            continue
                        if not counting or kind not in ("trade", "orderbook"):
                            continue
                        delivered += 1
                        if kind == "trade":
                            # size = the publish time's offset, ns // 1000 (unique per trade)
                            sent = args["t0_ns"] + int(msg["size"]) * 1000
                            trade_lat.append((now - sent) / 1e6)
                        else:
                            book_lat.append((now - msg["ts"] * 1_000_000) / 1e6)
            except (websockets.ConnectionClosed, OSError):
                closed += 1

        tasks = [asyncio.create_task(client(first + n)) for n in range(count)]
        conn.send("connecting")
        while subscribed < count:
            await asyncio.sleep(0.05)
        conn.send("subscribed")
        await loop.run_in_executor(None, conn.recv)  # "start"
        counting = True
        await loop.run_in_executor(None, conn.recv)  # "stop"
        counting = False
        conn.send(
            {
                "delivered": delivered,
                "trade_latency_ms": trade_lat,
                "book_latency_ms": book_lat,
                "closed": closed,
            }
        )
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())


class ClientProcs:
    def __init__(self, url: str, clients: int, procs: int, args: dict[str, Any]) -> None:
        ctx = mp.get_context("spawn")
        self.pipes: list[Connection] = []
        self.procs = []
        per = -(-clients // procs)
        for p in range(procs):
            first, count = p * per, min(per, clients - p * per)
            if count <= 0:
                break
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_clients, args=(child, url, first, count, args), daemon=True)
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)

    async def expect(self, what: str, timeout: float = 120) -> None:
        loop = asyncio.get_running_loop()
        for pipe in self.pipes:
            got = await asyncio.wait_for(loop.run_in_executor(None, pipe.recv), timeout)
            assert got == what, got

    def send(self, what: str) -> None:
        for pipe in self.pipes:
            pipe.send(what)

    async def results(self) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        out = []
        for pipe in self.pipes:
            out.append(await asyncio.wait_for(loop.run_in_executor(None, pipe.recv), 60))
        for proc in self.procs:
            proc.join(20)
        return out


# ---- the publisher (this process) ---------------------------------------------------------------


class Flow:
    def __init__(self, markets: int) -> None:
        self.markets = markets
        self.seq = [1] * markets
        self.sizes = [[(lvl + 1) * 10 for lvl in range(LEVELS)] for _ in range(markets)]

    def snapshot(self, m: int) -> bytes:
        yes = [((20 + lvl) * CENT, s * E6) for lvl, s in enumerate(self.sizes[m])]
        no = [((40 + lvl) * CENT, s * E6) for lvl, s in enumerate(self.sizes[m])]
        rec = {"kind": "book_snapshot", "ticker": ticker(m), "yes": yes, "no": no}
        rec.update(conn_id=1, sid=m + 1, seq=1, receive_ts=time.time_ns())
        return core.encode_records([rec])

    def delta(self, m: int, now_ns: int) -> bytes:
        # +1 contract at a level, then -1 at the same level: every delta changes the book
        # and no size drifts (a size below zero would make the book invalid).
        lvl = ((self.seq[m] - 1) // 2) % LEVELS
        change = E6 if self.seq[m] % 2 else -E6
        self.seq[m] += 1
        rec = {
            "kind": "book_delta",
            "ticker": ticker(m),
            "side": "yes",
            "price_e6": (20 + lvl) * CENT,
            "delta_e6": change,
            "conn_id": 1,
            "sid": m + 1,
            "seq": self.seq[m],
            "receive_ts": now_ns,
            "exchange_ts": now_ns,
        }
        return core.encode_records([rec])


async def run(a: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="gwbench-"))
    srv = NatsServer(tmp / "nats")
    await srv.start()
    gateway: subprocess.Popen[bytes] | None = None
    clients: ClientProcs | None = None
    try:
        env = load_environment(
            ENV, ROOT / "exchanges", Overrides(nats_url=srv.url, data_dir=str(tmp / "data"))
        )
        nc = await connect(srv.url, "gateway-bench")
        await ensure_stream(nc.jetstream(), env.nats)
        flow = Flow(a.markets)
        for m in range(a.markets):
            await nc.publish(subjects.record(ENV, FEED, "orderbook", ticker(m)), flow.snapshot(m))
        await nc.flush()

        port = free_port()
        profile = ["-m", "cProfile", "-o", a.profile] if a.profile else []
        gateway = subprocess.Popen(
            [
                sys.executable,
                *profile,
                str(Path(sys.executable).parent / "ssmd"),
                "gateway",
                "run",
                "--env",
                ENV,
                "--config-dir",
                str(ROOT / "exchanges"),
                "--nats-url",
                srv.url,
                "--data-dir",
                str(tmp / "data"),
                "--port",
                str(port),
                "--log-level",
                "WARNING",
            ],
            stdout=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(timeout=5) as http:
            async with asyncio.timeout(60):
                while True:
                    try:
                        if (await http.get(f"{base}/v1/health")).json()["stream"]["ready"]:
                            break
                    except (httpx.TransportError, KeyError, ValueError):
                        pass
                    await asyncio.sleep(0.1)
            rss_idle = rss_mb(gateway.pid)

            t0_ns = time.time_ns()
            clients = ClientProcs(
                f"ws://127.0.0.1:{port}/v1/stream",
                a.clients,
                a.client_procs,
                {"per_client": a.per_client, "markets": a.markets, "t0_ns": t0_ns},
            )
            await clients.expect("connecting")
            await clients.expect("subscribed")

            trade_every = round(1 / a.trade_share) if a.trade_share > 0 else 0
            published = {"trade": 0, "orderbook": 0}

            async def publish(seconds: float, count: bool) -> None:
                """`a.rate` messages/s on average, sent every 10 ms (what is due by then)."""
                n = 0
                start = time.monotonic()
                while (elapsed := time.monotonic() - start) < seconds:
                    due = int(a.rate * elapsed)
                    while n < due:
                        # Every market gets its share of trades and of deltas.
                        m = (n // trade_every) % a.markets if trade_every else n % a.markets
                        now = time.time_ns()
                        if trade_every and n % trade_every == 0:
                            size = (now - t0_ns) // 1000  # unique: the publish time in us
                            rec = {
                                "kind": "trade",
                                "ticker": ticker(m),
                                "trade_id": str(n),
                                "price_e6": 30 * CENT,
                                "size_e6": size * E6,
                                "taker_outcome": "yes",
                                "receive_ts": now,
                                "exchange_ts": now,
                            }
                            subject = subjects.record(ENV, FEED, "trade", ticker(m))
                            await nc.publish(subject, core.encode_records([rec]))
                            if count:
                                published["trade"] += 1
                        else:
                            subject = subjects.record(ENV, FEED, "orderbook", ticker(m))
                            await nc.publish(subject, flow.delta(m, now))
                            if count:
                                published["orderbook"] += 1
                        n += 1
                    await nc.flush()
                    await asyncio.sleep(0.01)

            await publish(WARMUP, count=False)
            clients.send("start")
            rss_samples: list[float] = []
            sampler_stop = asyncio.Event()

            async def sample() -> None:
                while not sampler_stop.is_set():
                    rss_samples.append(rss_mb(gateway.pid))  # type: ignore[union-attr]
                    await asyncio.sleep(1.0)

            sampler = asyncio.create_task(sample())
            t_start = time.monotonic()
            cpu0 = cpu_s(gateway.pid)
            client_cpu0 = sum(cpu_s(p.pid) for p in clients.procs if p.pid)
            await publish(a.seconds, count=True)
            window = time.monotonic() - t_start
            gateway_cpu = (cpu_s(gateway.pid) - cpu0) / window
            client_cpu = (sum(cpu_s(p.pid) for p in clients.procs if p.pid) - client_cpu0) / window
            # Let the last messages arrive before the clients stop counting.
            await asyncio.sleep(0.5)
            clients.send("stop")
            sampler_stop.set()
            await sampler
            results = await clients.results()
            metrics = (await http.get(f"{base}/metrics")).text
        await nc.close()
    finally:
        if gateway is not None and gateway.poll() is None:
            gateway.send_signal(signal.SIGTERM)
            try:
                gateway.wait(20)
            except subprocess.TimeoutExpired:
                gateway.kill()
        if clients is not None:
            for proc in clients.procs:
                if proc.is_alive():
                    proc.kill()
        srv.stop()

    slow = 0.0
    book_events: dict[str, float] = {}
    for line in metrics.splitlines():
        if line.startswith("ssmd_gateway_slow_disconnects_total"):
            slow += float(line.rsplit(" ", 1)[1])
        if line.startswith("ssmd_gateway_book_events_total{"):
            kind = line.split('"')[1]
            book_events[kind] = float(line.rsplit(" ", 1)[1])
    trade_lat = [x for r in results for x in r["trade_latency_ms"]]
    book_lat = [x for r in results for x in r["book_latency_ms"]]
    delivered = sum(r["delivered"] for r in results)
    subs_per_market = a.clients * a.per_client / a.markets
    rss_flow = max(rss_samples) if rss_samples else 0.0
    return {
        "bench": "gateway_fanout",
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "clients": a.clients,
        "markets_per_client": a.per_client,
        "markets": a.markets,
        "rate_per_s": a.rate,
        "seconds": round(window, 1),
        "published": published,
        "published_per_s": round(sum(published.values()) / window),
        "delivered_per_s": round(delivered / window),
        "delivered_if_unconflated_per_s": round(sum(published.values()) * subs_per_market / window),
        "trades_delivered": len(trade_lat),
        "trades_expected": round(published["trade"] * subs_per_market),
        "trade_latency_p50_ms": percentile(trade_lat, 0.50),
        "trade_latency_p99_ms": percentile(trade_lat, 0.99),
        "trade_latency_max_ms": percentile(trade_lat, 1.0),
        "book_latency_p50_ms": percentile(book_lat, 0.50),
        "book_latency_p99_ms": percentile(book_lat, 0.99),
        "gateway_rss_idle_mb": round(rss_idle, 1),
        "gateway_rss_with_clients_mb": round(rss_flow, 1),
        "memory_per_client_kb": round((rss_flow - rss_idle) * 1024 / a.clients, 1),
        "gateway_cpu_share": round(gateway_cpu, 2),
        "clients_cpu_share": round(client_cpu, 2),
        "disconnected_clients": sum(r["closed"] for r in results),
        "slow_disconnects_metric": slow,
        # Anything here means the flow was not what a connector sends (books went invalid).
        "book_events": book_events,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--per-client", type=int, default=10)
    ap.add_argument("--markets", type=int, default=200)
    ap.add_argument("--rate", type=float, default=2000.0, help="updates/s published in total")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--trade-share", type=float, default=0.5)
    ap.add_argument("--client-procs", type=int, default=1)
    ap.add_argument("--profile", help="write a cProfile of the gateway process here")
    print(json.dumps(asyncio.run(run(ap.parse_args()))))


if __name__ == "__main__":
    main()
