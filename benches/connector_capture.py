"""Sustained capture: simulator (flat out) -> connector -> nats-server, one JSON line of figures.

    .venv/bin/python benches/connector_capture.py [--seconds 15] [--markets 200]

The simulator runs in this process (so the figure is a lower bound for the connector on
its own core); nats-server is a child process. Zero loss is checked against ground truth:
raw messages in the stream == frames the simulator sent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "connector"))

from connfix import settings_for, settled, streaming, tickers_symbols, until
from natsfix import client, nats_server

from ssmd.connector.runner import Connector
from ssmd.sim import Simulator


async def main(seconds: float, markets: int) -> dict[str, object]:
    tmp = Path(tempfile.mkdtemp())
    async with (
        nats_server(tmp / "nats") as srv,
        Simulator(rate=None, markets=markets, record_limit=0) as sim,
    ):
        tickers = sorted(t for t, m in sim.universe.markets.items() if m.status == "active")
        settings = settings_for(
            sim, srv, tmp, symbols=tickers_symbols(tickers), record_latency=True, clock=time.time
        )
        conn = Connector(settings)
        stop = asyncio.Event()
        task = asyncio.create_task(conn.run(stop))
        await until(lambda: streaming(conn, len(tickers)), 60)
        t0, f0 = time.monotonic(), conn.frames_in
        await asyncio.sleep(seconds)
        sim.rate = 0.0  # not used in block mode; stop the flow by closing the server below
        t1, f1 = time.monotonic(), conn.frames_in
        await sim.aclose()
        await until(lambda: settled(conn, sim), 120)
        stop.set()
        await task
        sent = sum(r.frames_sent for r in sim.truth.connections.values())
        async with client(srv.url) as nc:
            info = await nc.jetstream().stream_info("SSMD_KALSHI_SIM")
        lat = sorted(conn.latencies_ns)
        raw = int(conn.m_received.values and sum(conn.m_received.values.values()))
        return {
            "bench": "connector_capture",
            "markets": len(tickers),
            "seconds": round(t1 - t0, 2),
            "frames_per_s": round((f1 - f0) / (t1 - t0)),
            "frames_sent": sent,
            "raw_frames_published": raw,
            "stream_messages": info.state.messages,
            "zero_loss": raw == sent,
            "latency_p50_ms": round(lat[len(lat) // 2] / 1e6, 2) if lat else None,
            "latency_p99_ms": round(lat[int(len(lat) * 0.99)] / 1e6, 2) if lat else None,
            "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--markets", type=int, default=200)
    a = ap.parse_args()
    print(json.dumps(asyncio.run(main(a.seconds, a.markets))))
