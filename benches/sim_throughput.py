"""Simulator throughput: frames per second delivered to one WebSocket client.

Starts `ssmd sim` at maximum rate in a child process, connects one client (authenticated
with the demo key), subscribes every open market on orderbook_delta, trade and ticker,
reads N frames and reports the rate. The last line printed is one JSON object.

    python benches/sim_throughput.py [--frames 300000] [--markets 200] [--era C]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import time
from multiprocessing.connection import Connection


def _serve(conn: Connection, markets: int, era: str) -> None:
    from ssmd.sim import Simulator

    async def main() -> None:
        async with Simulator(rate=None, markets=markets, era=era, record_limit=0) as sim:
            conn.send(
                (sim.ws_url, sorted(m.ticker for m in sim.universe.active()), sim.auth_headers())
            )
            await asyncio.get_running_loop().run_in_executor(None, conn.recv)

    asyncio.run(main())


async def _client(
    url: str, tickers: list[str], headers: dict[str, str], frames: int
) -> tuple[int, float, int]:
    from websockets.asyncio.client import connect

    async with connect(url, additional_headers=headers, max_size=None, compression=None) as ws:
        await ws.send(
            json.dumps(
                {
                    "id": 1,
                    "cmd": "subscribe",
                    "params": {
                        "channels": ["orderbook_delta", "trade", "ticker"],
                        "market_tickers": tickers,
                    },
                }
            )
        )
        n = 0
        nbytes = 0
        t0 = 0.0
        async for raw in ws:
            n += 1
            nbytes += len(raw)
            if n == 1000:
                t0 = time.perf_counter()  # skip connection set-up and snapshots
            if n >= frames + 1000:
                break
        return frames, time.perf_counter() - t0, nbytes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=300_000)
    ap.add_argument("--markets", type=int, default=200)
    ap.add_argument("--era", default="C")
    args = ap.parse_args()
    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(
        target=_serve, args=(child, args.markets, args.era), daemon=True
    )
    proc.start()
    url, tickers, headers = parent.recv()
    frames, secs, nbytes = asyncio.run(_client(url, tickers, headers, args.frames))
    parent.send("stop")
    proc.join(10)
    rate = frames / secs
    print(f"{frames} frames in {secs:.2f}s: {rate:,.0f} frames/s ({nbytes / secs / 1e6:.1f} MB/s)")
    print(
        json.dumps(
            {
                "bench": "sim_throughput",
                "frames": frames,
                "seconds": round(secs, 3),
                "frames_per_s": round(rate),
                "mb_per_s": round(nbytes / secs / 1e6, 2),
                "era": args.era,
                "markets": args.markets,
                "machine": platform.machine(),
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "processor": platform.processor() or platform.machine(),
            }
        )
    )


if __name__ == "__main__":
    main()
