"""The two hot paths of the bus alone: ssmd's own NATS connection against nats-py's
public API, publishing and pulling.

    .venv/bin/python benches/bus.py [--messages 60000] [--batch 512] [--rounds 2]
        [--pull-batch 5000]

Both publish the same messages into one nats-server's JetStream stream, in batches of
`--batch`, one batch in flight, each message with a reply subject for its PubAck and a
`Nats-Msg-Id`: a raw frame with three headers (two written as encoded lines) and a
normalized record with one, alternately, 200 and 90 bytes of payload, as the connector
sends them.

- ssmd: `ssmd.bus.publisher.Publisher` (ssmd.bus.wire: HPUBs encoded by the Rust core in
  one call per batch, PubAcks parsed per read);
- baseline: nats-py's public API as a publisher would use it: `publish` per message with
  its headers, one wildcard subscription for the PubAcks, a flush per batch.

Pulling drains the stream those publishes filled (2 x `--rounds` x `--messages`
messages) through a durable pull consumer each, in batches of `--pull-batch`, acking
every batch before the next:

- ssmd: `ssmd.archiver.consumer.puller` (ssmd.bus.wire; deliveries stay in Rust, the
  acks of a batch are one write) and, per batch, `len()` of what it holds;
- baseline: nats-py's `pull_subscribe` and `fetch`, and `ack` per message (a `Msg` per
  message, its headers and metadata parsed), the last of a batch as `ack_sync`.

Rates are messages per second (publishing: until the last PubAck; pulling: until the
last ack is confirmed), and CPU per message of this process and of nats-server; best of
`--rounds`, the two alternating. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson

from ssmd import core
from ssmd.archiver.consumer import ConsumerSettings, ensure_consumer, puller
from ssmd.bus.connection import connect
from ssmd.bus.publisher import MSG_ID, OutMsg, Publisher
from ssmd.bus.stream import ensure_stream
from ssmd.config import NatsSettings
from ssmd.testing.nats import NatsServer

ROOT = Path(__file__).resolve().parents[1]


def messages(n: int, tag: str) -> list[OutMsg]:
    out = []
    for i in range(n):
        if i % 2 == 0:
            out.append(
                OutMsg(
                    "b.kalshi.raw.orderbook_delta",
                    b"r" * 200,
                    f"{tag}:{i}",
                    {
                        "Ssmd-Conn-Id": "1",
                        "Ssmd-Receive-Ns": "1764900000000000000",
                        "Ssmd-Seq": "7",
                    },
                )
            )
        else:
            out.append(
                OutMsg(
                    "b.kalshi.orderbook_delta.KXBTC-26DEC0517-T104000",
                    b"n" * 90,
                    f"{tag}:{i}",
                    {"Ssmd-Receive-Ns": "1764900000000000000"},
                )
            )
    return out


async def run_ssmd(url: str, msgs: list[OutMsg], batch: int) -> float:
    pub = Publisher(url, "bench-ssmd", max_inflight=batch)
    await pub.start()
    # Laid out beforehand, as the connector's pipeline hands its batches over.
    batches = [core.OutBatch(msgs[i : i + batch]) for i in range(0, len(msgs), batch)]
    t = time.perf_counter()
    for out in batches:
        await pub.publish_many(out)
    assert await pub.flush(120)
    seconds = time.perf_counter() - t
    await pub.close()
    assert pub.acked == len(msgs)
    return seconds


async def run_nats_py(url: str, msgs: list[OutMsg], batch: int) -> float:
    nc = await connect(url, "bench-nats-py")
    prefix = nc.new_inbox() + "."
    acked = 0
    done = asyncio.Event()
    expect = 0

    async def on_ack(msg: Any) -> None:
        nonlocal acked
        resp = orjson.loads(msg.data)
        assert "error" not in resp, resp
        acked += 1
        if acked == expect:
            done.set()

    await nc.subscribe(prefix + "*", cb=on_ack)
    t = time.perf_counter()
    for i in range(0, len(msgs), batch):
        part = msgs[i : i + batch]
        expect += len(part)
        done.clear()
        for k, m in enumerate(part, i):
            headers = {MSG_ID: m.msg_id, **(m.headers or {})}
            await nc.publish(m.subject, m.payload, f"{prefix}{k}", headers)
        await nc.flush()
        await done.wait()
    seconds = time.perf_counter() - t
    await nc.close()
    return seconds


async def consumer(url: str, durable: str, batch: int) -> ConsumerSettings:
    """The archiver's consumer configuration, for either puller."""
    settings = ConsumerSettings(durable=durable, batch=batch, max_ack_pending=4 * batch)
    nc = await connect(url, "bench-admin")
    await ensure_consumer(nc.jetstream(), "BENCH", settings, "b.kalshi.>")
    await nc.close()
    return settings


async def pull_ssmd(url: str, total: int, batch: int, durable: str) -> float:
    settings = await consumer(url, durable, batch)
    pull = puller(url, "bench-ssmd-pull", "BENCH", settings)
    await pull.start()
    got = 0
    t = time.perf_counter()
    while got < total:
        deliveries = await pull.fetch()
        got += len(deliveries)
        await pull.ack(deliveries)
    seconds = time.perf_counter() - t
    await pull.stop()
    return seconds


async def pull_nats_py(url: str, total: int, batch: int, durable: str) -> float:
    await consumer(url, durable, batch)
    nc = await connect(url, "bench-nats-py-pull")
    sub = await nc.jetstream().pull_subscribe_bind(durable, "BENCH")
    got = 0
    t = time.perf_counter()
    while got < total:
        msgs = await sub.fetch(batch, timeout=5)
        got += len(msgs)
        for m in msgs[:-1]:
            assert m.metadata.sequence.stream > 0
            await m.ack()
        await msgs[-1].ack_sync()
    seconds = time.perf_counter() - t
    await nc.close()
    return seconds


def cpu_seconds(server: NatsServer) -> float:
    """User + system CPU time of the nats-server process so far."""
    assert server.proc is not None
    fields = Path(f"/proc/{server.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=60_000)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--pull-batch", type=int, default=5000)
    args = ap.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        server = NatsServer(Path(tmp))
        await server.start()
        try:
            nc = await connect(server.url, "bench-admin")
            await ensure_stream(
                nc.jetstream(),
                NatsSettings(
                    url=server.url,
                    stream="BENCH",
                    subject_prefix="b.kalshi",
                    retention=timedelta(hours=1),
                    duplicate_window=timedelta(minutes=2),
                    replicas=1,
                ),
            )
            await nc.close()
            best: dict[str, tuple[float, float, float]] = {}
            for r in range(args.rounds):
                for name, fn in (("ssmd", run_ssmd), ("nats_py", run_nats_py)):
                    msgs = messages(args.messages, f"{name}{r}")
                    cpu, server_cpu = time.process_time(), cpu_seconds(server)
                    seconds = await fn(server.url, msgs, args.batch)
                    cpu = time.process_time() - cpu
                    server_cpu = cpu_seconds(server) - server_cpu
                    if name not in best or seconds < best[name][0]:
                        best[name] = (seconds, cpu, server_cpu)
            total = 2 * args.rounds * args.messages
            pulls: dict[str, tuple[float, float, float]] = {}
            for r in range(args.rounds):
                for name, pull in (("ssmd", pull_ssmd), ("nats_py", pull_nats_py)):
                    cpu, server_cpu = time.process_time(), cpu_seconds(server)
                    seconds = await pull(server.url, total, args.pull_batch, f"{name}{r}")
                    cpu = time.process_time() - cpu
                    server_cpu = cpu_seconds(server) - server_cpu
                    if name not in pulls or seconds < pulls[name][0]:
                        pulls[name] = (seconds, cpu, server_cpu)
        finally:
            server.stop()
    n = args.messages
    out: dict[str, Any] = {"messages": n, "batch": args.batch}
    for name, (seconds, cpu, server_cpu) in best.items():
        out[f"{name}_msgs_per_s"] = round(n / seconds)
        out[f"{name}_cpu_us_per_msg"] = round(cpu / n * 1e6, 2)
        out[f"{name}_server_cpu_us_per_msg"] = round(server_cpu / n * 1e6, 2)
    out["ratio"] = round(best["nats_py"][0] / best["ssmd"][0], 2)
    pulled: dict[str, Any] = {"messages": total, "batch": args.pull_batch}
    for name, (seconds, cpu, server_cpu) in pulls.items():
        pulled[f"{name}_msgs_per_s"] = round(total / seconds)
        pulled[f"{name}_cpu_us_per_msg"] = round(cpu / total * 1e6, 2)
        pulled[f"{name}_server_cpu_us_per_msg"] = round(server_cpu / total * 1e6, 2)
    pulled["ratio"] = round(pulls["nats_py"][0] / pulls["ssmd"][0], 2)
    out["pull"] = pulled
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main())
