"""Lua transforms (docs/transforms.md): messages/s one client gets through the transform
path against the default delivery, in the same run, one core.

Both clients sit on one hub (the gateway's own, python/ssmd/gateway/hub.py), subscribed
to the same market, with the same messages queued: the gateway's JSON of trades and of
whole books (10 levels a side), half and half. Each then has its queue written by the
hub's `write` to a connection that takes every write, as the writer task does:

- default: the frames rendered once for every client go out as they are;
- transformed: every message goes through the client's Lua state running
  examples/compact_transform.lua (the JSON decoded, the script's `transform(msg)`, its
  answer framed again), `delivery.rendered`.

A third figure, `apply` alone (one message's JSON in, the script's answer out), shows how
much of the transformed path is the Lua call itself. The paths take turns, best of
`--turns`; every transformed message is checked against the script's own answer.

Rates are messages per second of this process's CPU time (`time.process_time`): what one
core gives when the process has it to itself, which wall time on a shared machine does
not show; the wall-clock rates are printed too (`*_wall`).

    python benches/lua_transform.py [--messages N] [--turns N]

Prints one JSON line. Target: at least 50,000 transformed messages/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from ssmd.config import NatsSettings
from ssmd.gateway import render, wire
from ssmd.gateway.feed import Feed
from ssmd.gateway.hub import Client, Hub
from ssmd.gateway.metrics import GatewayMetrics
from ssmd.gateway.settings import GatewaySettings
from ssmd.gateway.transform import Transform, TransformSpec

ROOT = Path(__file__).resolve().parent.parent

EXAMPLE = ROOT / "examples" / "compact_transform.lua"
TICKER = "KXBTCD-26DEC0317-T118000"
LEVELS = 10


def messages(n: int) -> list[str]:
    """The gateway's JSON of n messages: trades and whole books, alternating."""
    out = []
    for i in range(n):
        ts = 1_790_000_000_000 + i
        if i % 2:
            out.append(
                render.trade(
                    {
                        "ticker": TICKER,
                        "price_e6": 400_000 + (i % 50) * 1_000,
                        "size_e6": (1 + i % 17) * 1_000_000,
                        "taker_outcome": "yes" if i % 3 else "no",
                        "exchange_ts": ts * 1_000_000,
                    }
                )
            )
        else:
            bids = [(440_000 - k * 10_000, (100 + k + i % 7) * 1_000_000) for k in range(LEVELS)]
            asks = [(460_000 + k * 10_000, (150 + k) * 1_000_000) for k in range(LEVELS)]
            out.append(render.orderbook(TICKER, bids, asks, True, ts))
    return out


class Sink:
    """A connection that takes every write and counts the messages (hub.Writer)."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, frames: list[bytes]) -> None:
        self.frames.extend(frames)


def _settings(queue: int) -> GatewaySettings:
    nats = NatsSettings(
        url="nats://127.0.0.1:1",
        stream="BENCH",
        subject_prefix="bench.kalshi",
        retention=timedelta(hours=1),
        duplicate_window=timedelta(minutes=2),
        replicas=1,
    )
    return GatewaySettings(env="bench", feed="kalshi", nats=nats, client_queue=queue)


async def _client(hub: Hub, spec: TransformSpec | None) -> tuple[Client, Sink]:
    client = hub.connect(None)
    if spec is not None:
        client.transform = Transform(spec)
    await hub.subscribe(client, [TICKER])
    sink = Sink()
    client.writer = sink  # attached without marking it ready: this bench runs the writes
    return client, sink


async def _deliver(
    texts: list[str], spec: TransformSpec | None
) -> tuple[tuple[float, float], list[bytes]]:
    """CPU and wall seconds the hub takes to write one client's queue of `texts`, and what
    it wrote."""
    hub = Hub(_settings(len(texts) + 10), GatewayMetrics())
    hub.feeds[hub.symbols.own] = cast(
        Feed, SimpleNamespace(ready=False)
    )  # no stream: no books of its own
    client, sink = await _client(hub, spec)
    sink.frames.clear()  # the `subscribed` reply
    while client.queue:
        hub.write(client)
    sink.frames.clear()
    for text in texts:
        hub.trade(TICKER, text)  # any message: queued and framed once, as the feed does
    start, cpu = time.perf_counter(), time.process_time()
    while client.queue:
        hub.write(client)
    seconds = (time.process_time() - cpu, time.perf_counter() - start)
    assert spec is None or client.transform is not None, "the transform failed"
    return seconds, sink.frames


def _apply(texts: list[str], spec: TransformSpec) -> tuple[tuple[float, float], list[bytes | None]]:
    t = Transform(spec)
    payloads = [s.encode() for s in texts]
    start, cpu = time.perf_counter(), time.process_time()
    out = [t.apply(p) for p in payloads]
    return (time.process_time() - cpu, time.perf_counter() - start), out


async def run(n: int, turns: int) -> dict[str, Any]:
    spec = TransformSpec("compact", str(EXAMPLE), EXAMPLE.read_text())
    texts = messages(n)
    inf = (float("inf"), float("inf"))
    best = {"default": inf, "transformed": inf, "apply": inf}
    for _ in range(turns):
        seconds, frames = await _deliver(texts, None)
        assert [wire.payload(f) for f in frames] == texts
        best["default"] = min(best["default"], seconds)
        seconds, frames = await _deliver(texts, spec)
        best["transformed"] = min(best["transformed"], seconds)
        seconds, applied = _apply(texts, spec)
        best["apply"] = min(best["apply"], seconds)
        # Every message transformed, each as the script answers it alone (a table's keys
        # come in each Lua state's own order: compared as JSON values).
        assert len(frames) == n and all(a is not None for a in applied)
        assert [json.loads(wire.payload(f)) for f in frames] == [
            json.loads(a or b"") for a in applied
        ]
    trade = json.loads(applied[1] or b"")
    assert trade["e"] == "T" and trade["s"] == TICKER
    # Where the time goes: `apply` on each kind alone.
    kinds = {"books": texts[0::2], "trades": texts[1::2]}
    by_kind = {k: min(_apply(v, spec)[0][0] for _ in range(turns)) for k, v in kinds.items()}
    rates = {k: n / v[0] for k, v in best.items()}
    wall = {f"{k}_msgs_per_s_wall": round(n / v[1]) for k, v in best.items()}
    return {
        "bench": "lua_transform",
        "messages": n,
        "mix": f"half trades, half whole books of {LEVELS} levels a side",
        "default_msgs_per_s": round(rates["default"]),
        "transformed_msgs_per_s": round(rates["transformed"]),
        "apply_msgs_per_s": round(rates["apply"]),
        "overhead": round(rates["default"] / rates["transformed"], 1),
        **wall,
        **{f"apply_{k}_us": round(v / len(kinds[k]) * 1e6, 1) for k, v in by_kind.items()},
        "target_met": rates["transformed"] >= 50_000,
        "bytes_default": sum(map(len, texts)) // n,
        "bytes_transformed": sum(len(a or b"") for a in applied) // n,
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, Python {platform.python_version()}",
        "load_average": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--turns", type=int, default=3)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    print(json.dumps(asyncio.run(run(args.messages, args.turns))))


if __name__ == "__main__":
    main()
