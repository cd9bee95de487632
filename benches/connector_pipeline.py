"""The connector's work per frame after capture: the pipeline (normalize, lay out the
raw and normalized messages) and the publisher (window, HPUBs, PubAcks), on the same
Kalshi frames, into a real nats-server. No WebSocket and no simulator, so the figure
is the CPU this process spends per frame on that work alone.

    python benches/connector_pipeline.py [--frames N]

Prints one JSON line: process CPU per frame (all of it, and the pipeline's share),
frames/s, and messages acked. To compare two versions of the code, run it under
each checkout in turn (for an older one: `git worktree add DIR REV`, build its
extension there and run with `PYTHONPATH=DIR/python`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import ssmd
from ssmd.bus.publisher import Publisher
from ssmd.bus.stream import ensure_stream
from ssmd.config import NatsSettings
from ssmd.connector.capture_queue import Item
from ssmd.connector.pipeline import Pipeline
from ssmd.testing.frames import frame_mix
from ssmd.testing.nats import client, nats_server

BATCH = 1024
START_NS = 1_784_557_800_000_000_000


async def run(n: int) -> dict[str, object]:
    items = [Item(1, i, START_NS + i, f) for i, f in enumerate(frame_mix(n), 1)]
    settings = NatsSettings(
        url="",
        stream="SSMD_BENCH",
        subject_prefix="bench.kalshi",
        retention=timedelta(hours=1),
        duplicate_window=timedelta(minutes=2),
        replicas=1,
    )
    with tempfile.TemporaryDirectory() as d:
        async with nats_server(Path(d)) as srv, client(srv.url) as nc:
            await ensure_stream(nc.jetstream(), settings)
            pipeline = Pipeline("bench", "kalshi")
            pub = Publisher(srv.url, "bench-pipeline", max_inflight=8192)
            await pub.start()
            cpu0, wall0 = time.process_time(), time.perf_counter()
            pipeline_cpu = 0.0
            for i in range(0, n, BATCH):
                c = time.process_time()
                outcome = pipeline.process(items[i : i + BATCH])
                pipeline_cpu += time.process_time() - c
                await pub.publish_many(outcome.messages)
            assert await pub.flush(120)
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            await pub.close()
    return {
        "bench": "connector_pipeline",
        "code": str(Path(ssmd.__file__).parent),
        "machine": platform.processor() or platform.machine(),
        "frames": n,
        "cpu_us_per_frame": round(cpu / n * 1e6, 2),
        "pipeline_cpu_us_per_frame": round(pipeline_cpu / n * 1e6, 2),
        "frames_per_s": round(n / wall),
        "messages_acked": pub.acked,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=200_000)
    print(json.dumps(asyncio.run(run(ap.parse_args().frames))))


if __name__ == "__main__":
    main()
