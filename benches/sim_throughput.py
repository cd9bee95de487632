"""Simulator throughput: frames per second delivered to one WebSocket client.

Starts `ssmd sim` at maximum rate in a child process, connects one client (authenticated
with the demo key), subscribes every open market on orderbook_delta, trade and ticker,
reads N frames and reports the rate. The last line printed is one JSON object.

The default client (`--client raw`) counts WebSocket frames from large socket reads,
so that on a 2-core machine the client is not what limits the figure; every 1,000th
frame is checked to be a JSON object with a type. `--client websockets` reads with
the websockets library instead (what a typical Python consumer gets).

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


async def _raw_client(
    url: str, tickers: list[str], headers: dict[str, str], frames: int
) -> tuple[int, float, int]:
    """Upgrades by hand, sends the subscribe, then counts frames from the byte stream."""
    import base64
    import secrets
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    key = base64.b64encode(secrets.token_bytes(16)).decode()
    request = [
        f"GET {parts.path} HTTP/1.1",
        f"Host: {parts.hostname}:{parts.port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    writer.write(("\r\n".join(request) + "\r\n\r\n").encode())
    response = await reader.readuntil(b"\r\n\r\n")
    if not response.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"upgrade refused: {response.splitlines()[0]!r}")
    params = {"channels": ["orderbook_delta", "trade", "ticker"], "market_tickers": tickers}
    command = json.dumps({"id": 1, "cmd": "subscribe", "params": params}).encode()
    mask = secrets.token_bytes(4)
    header = bytes([0x81, 0x80 | 127]) + len(command).to_bytes(8, "big") + mask
    writer.write(header + bytes(b ^ mask[i % 4] for i, b in enumerate(command)))
    buffer = bytearray()
    n = nbytes = 0
    t0 = 0.0
    while n < frames + 1000:
        chunk = await reader.read(1 << 20)
        if not chunk:
            raise RuntimeError("server closed the connection")
        buffer += chunk
        pos = 0
        while len(buffer) - pos >= 2:
            opcode = buffer[pos] & 0x0F
            length = buffer[pos + 1] & 0x7F
            head = 2
            if length == 126:
                head = 4
                length = (
                    int.from_bytes(buffer[pos + 2 : pos + 4], "big")
                    if len(buffer) - pos >= 4
                    else -1
                )
            elif length == 127:
                head = 10
                length = (
                    int.from_bytes(buffer[pos + 2 : pos + 10], "big")
                    if len(buffer) - pos >= 10
                    else -1
                )
            if length < 0 or len(buffer) - pos < head + length:
                break
            if opcode == 0x1:
                n += 1
                nbytes += length
                if n % 1000 == 0:
                    frame = json.loads(buffer[pos + head : pos + head + length])
                    assert isinstance(frame, dict) and "type" in frame
                if n == 1000:
                    t0 = time.perf_counter()  # skip connection set-up and snapshots
            pos += head + length
        del buffer[:pos]
    elapsed = time.perf_counter() - t0
    writer.close()
    return frames, elapsed, nbytes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=300_000)
    ap.add_argument("--markets", type=int, default=200)
    ap.add_argument("--era", default="C")
    ap.add_argument("--client", choices=("raw", "websockets"), default="raw")
    args = ap.parse_args()
    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(
        target=_serve, args=(child, args.markets, args.era), daemon=True
    )
    proc.start()
    url, tickers, headers = parent.recv()
    read = _raw_client if args.client == "raw" else _client
    frames, secs, nbytes = asyncio.run(read(url, tickers, headers, args.frames))
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
                "client": args.client,
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
