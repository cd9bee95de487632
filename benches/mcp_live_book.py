"""The MCP server's live-book tool: latency with the gateway holding 1,000 markets.

    .venv/bin/python benches/mcp_live_book.py [--markets 1000] [--calls 400] [--rate 2000]
        [--depth 10]

Processes: nats-server; the gateway (its own process, started as benches/gateway_fanout.py
starts it); `ssmd mcp serve` over stdio (the MCP SDK's client in this process drives it,
as an agent's MCP client would). Every market gets a snapshot of 10 levels a side, then a
publisher in this process sends `--rate` updates/s (half trades, half book deltas, spread
over the markets) for the whole run, so the gateway is busy as it is live.

Each round asks for the book of a random market twice, one after the other, in an order
that alternates:
- `mcp`: `live_book(ticker, depth)` through the MCP server (client -> stdio -> server ->
  the gateway's WebSocket: connect, subscribe, the book, close -> back);
- `baseline`: the same book fetched straight from the gateway by the same code the server
  uses (ssmd.mcp.gateway.GatewayClient.book) in this process: the cost of the gateway
  round trip alone.
Both see the same load. Reported: p50/p90/p99/max in ms of each, the ratio of the p99s
(what the MCP layer adds), and whether the mcp p99 is under the 100 ms target. Every
answer is checked (the ticker asked, YES bids and asks, the levels the depth allows).

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters

from gateway_fanout import ENV, Flow, Publisher, percentile, ticker
from ssmd.bus import subjects
from ssmd.bus.connection import connect
from ssmd.bus.stream import ensure_stream
from ssmd.config import Overrides, load_environment
from ssmd.mcp.gateway import GatewayClient
from ssmd.testing.nats import NatsServer, free_port

ROOT = Path(__file__).resolve().parents[1]

FEED = "kalshi"
TARGET_P99_MS = 100.0
SSMD = str(Path(sys.executable).parent / "ssmd")


def check(book: dict[str, Any], want: str, depth: int) -> None:
    bids, asks = book["bids"], book["asks"]
    assert book.get("ticker") == want, book
    assert bids and asks and len(bids) <= depth and len(asks) <= depth, book
    assert all(0 < p < 1 for p, _ in bids + asks), book


def summary(ms: list[float]) -> dict[str, Any]:
    return {
        "p50_ms": percentile(ms, 0.50),
        "p90_ms": percentile(ms, 0.90),
        "p99_ms": percentile(ms, 0.99),
        "max_ms": round(max(ms), 3),
    }


async def run(a: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="mcpbench-"))
    srv = NatsServer(tmp / "nats")
    await srv.start()
    gateway: subprocess.Popen[bytes] | None = None
    pub: Publisher | None = None
    direct: GatewayClient | None = None
    try:
        env = load_environment(
            ENV, ROOT / "exchanges", Overrides(nats_url=srv.url, data_dir=str(tmp / "data"))
        )
        nc = await connect(srv.url, "mcp-bench")
        await ensure_stream(nc.jetstream(), env.nats)
        flow = Flow(a.markets, 0.5, time.time_ns())
        for m in range(a.markets):
            await nc.publish(subjects.record(ENV, FEED, "orderbook", ticker(m)), flow.snapshot(m))
        await nc.flush()

        port = free_port()
        gateway = subprocess.Popen(
            [sys.executable, str(ROOT / "benches" / "gateway_fanout.py"), "--serve",
             "--port", str(port), "--nats-url", srv.url, "--data-dir", str(tmp / "data")],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(timeout=10) as http:
            async with asyncio.timeout(60):
                while True:
                    try:
                        health = (await http.get(f"{base}/v1/health")).json()
                        if health["stream"]["ready"] and health["books"] >= a.markets:
                            break
                    except (httpx.TransportError, KeyError, ValueError):
                        pass
                    await asyncio.sleep(0.1)
        pub = Publisher(nc, flow)
        pub.start(a.rate)
        pub_start = time.monotonic()

        direct = GatewayClient(base)
        server = StdioServerParameters(
            command=SSMD,
            args=["mcp", "serve", "--env", ENV, "--config-dir", str(ROOT / "exchanges"),
                  "--data-dir", str(tmp / "data"), "--gateway", base],
            env={"PATH": os.environ["PATH"]},
        )  # fmt: skip
        rng = random.Random(7)
        timings: dict[str, list[float]] = {"mcp": [], "baseline": []}
        async with Client(server, read_timeout_seconds=30) as client:

            async def via_mcp(t: str) -> None:
                result = await client.call_tool("live_book", {"ticker": t, "depth": a.depth})
                text = result.content[0].text  # type: ignore[union-attr]
                assert not result.is_error, text
                check({**orjson.loads(text)}, t, a.depth)

            async def via_gateway(t: str) -> None:
                assert direct is not None
                book = await direct.book(t)
                check({**book, "bids": book["bids"][: a.depth], "asks": book["asks"][: a.depth]},
                      t, a.depth)  # fmt: skip

            ways = {"mcp": via_mcp, "baseline": via_gateway}
            for _ in range(a.warmup):
                t = ticker(rng.randrange(a.markets))
                for way in ways.values():
                    await way(t)
            for i in range(a.calls):
                t = ticker(rng.randrange(a.markets))
                order = ("mcp", "baseline") if i % 2 == 0 else ("baseline", "mcp")
                for name in order:
                    start = time.perf_counter()
                    await ways[name](t)
                    timings[name].append((time.perf_counter() - start) * 1000)
        mcp_s, base_s = summary(timings["mcp"]), summary(timings["baseline"])
        return {
            "bench": "mcp_live_book",
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "markets": a.markets,
            "calls": a.calls,
            "depth": a.depth,
            "updates_per_s_published": round(pub.published / (time.monotonic() - pub_start)),
            "mcp": mcp_s,
            "baseline": base_s,
            "p99_ratio": round(mcp_s["p99_ms"] / base_s["p99_ms"], 2),
            "target_p99_ms": TARGET_P99_MS,
            "meets_target": mcp_s["p99_ms"] < TARGET_P99_MS,
        }
    finally:
        if pub is not None:
            await pub.stop()
        if direct is not None:
            await direct.aclose()
        if gateway is not None:
            gateway.terminate()
            gateway.wait(30)
        srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--markets", type=int, default=1000)
    ap.add_argument("--calls", type=int, default=400, help="rounds (each: one call each way)")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--rate", type=float, default=2000.0, help="updates/s published meanwhile")
    ap.add_argument("--depth", type=int, default=10)
    print(json.dumps(asyncio.run(run(ap.parse_args()))))


if __name__ == "__main__":
    main()
