"""Replay benchmarks: reading a day in receive order, replaying it to NATS and to one
Kalshi client at maximum speed, and checking a replayed archive against the original.

    .venv/bin/python benches/replay.py [--frames 1000000] [--nats-frames 200000]
        [--kalshi-frames 100000]

The input is a day of `--frames` era-C frames of the benchmarks' mix
(ssmd.testing.frames.frame_mix), received over two hours and written in the archiver's raw
layout (one JSONL.zst file per frame kind and hour, zstd frames of about 1 MiB), with
their records in its normalized layout (the replay's markets and books come from it).

- read: `ssmd.data.stream.raw_frames` over the day (every file of an hour streamed and
  merged by receive time): frames/s and the growth of the process's RSS, against
  `ssmd.data.raw(day).collect()` (the whole day as one Polars frame) in the same run.
- equality: the day against a copy of it, frame by frame (receive time, kind, bytes),
  both streamed: seconds for the whole day (target: 1,000,000 frames in under 60 s).
- nats: `ssmd data replay --target nats --speed max` of the first `--nats-frames`
  frames into a nats-server: frames/s until every message is acked (target 200,000),
  RSS sampled every second (flat: the mean of the last third within 10% of the first
  third's), against publishing the same messages, prepared beforehand, with the same
  Publisher (the cost of reading and normalizing the archive on top of publishing).
- kalshi: the first `--kalshi-frames` frames to one WebSocket client subscribed to
  every market (orderbook_delta, trade, ticker) at maximum speed: frames/s received
  (target 50,000), against the read rate above.

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import websockets

from ssmd import core
from ssmd.config import Overrides, load_environment
from ssmd.data.source import Dataset
from ssmd.data.stream import raw_frames
from ssmd.store import keys
from ssmd.testing.archives import seal
from ssmd.testing.frames import frame_mix
from ssmd.testing.nats import NatsServer

ROOT = Path(__file__).resolve().parents[1]

ENV, FEED = "kalshi-sim", "kalshi"
DAY = datetime(2026, 1, 5, tzinfo=UTC).date()
START_NS = int(datetime(2026, 1, 5, 10, tzinfo=UTC).timestamp()) * 10**9
SPAN_NS = 2 * 3600 * 10**9
FRAME_BYTES = 1 << 20
SEC = 10**9


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class RssSampler:
    """The process's RSS every `every` seconds, in a thread (the loop may be busy)."""

    def __init__(self, every: float = 1.0) -> None:
        self.every, self.samples = every, [rss_mb()]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.samples.append(rss_mb())

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(rss_mb())

    def summary(self) -> dict[str, Any]:
        s = self.samples
        third = max(1, len(s) // 3)
        first, last = sum(s[:third]) / third, sum(s[-third:]) / third
        return {
            "rss_mb_first_third": round(first, 1),
            "rss_mb_last_third": round(last, 1),
            "rss_mb_peak": round(max(s), 1),
            "flat": abs(last - first) <= 0.1 * first,
        }


def environment(data_dir: Path, nats_url: str = "nats://127.0.0.1:4222") -> Any:
    return load_environment(
        ENV, ROOT / "exchanges", Overrides(nats_url=nats_url, data_dir=str(data_dir)), environ={}
    )


def write_day(data_dir: Path, n: int) -> int:
    """`n` frames of the mix received over two hours of DAY, in the raw layout, and their
    records in the normalized layout (one sealed file per type and market)."""
    frames = frame_mix(n)
    step = SPAN_NS // n
    batch = core.normalize_kalshi(frames, [START_NS + i * step for i in range(n)], 1)
    kinds = batch.kinds
    by_file: dict[tuple[str, str], list[bytes]] = defaultdict(list)
    for _frame, record_type, ticker, start, end in batch.records:
        by_file[(record_type, ticker)].append(batch.data[start:end])
    for (record_type, ticker), records in by_file.items():
        path = data_dir / "normalized" / keys.normalized_key(ENV, FEED, record_type, DAY, ticker)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(seal(b"".join(records)))
    open_files: dict[str, tuple[Any, list[bytes], int]] = {}
    root = data_dir / "raw"

    def flush(key: str, final: bool) -> None:
        writer, lines, _ = open_files[key]
        writer.write(b"".join(lines))
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab") as f:
            f.write(writer.flush())
        if final:
            del open_files[key]
        else:
            open_files[key] = (writer, [], 0)

    for i, frame in enumerate(frames):
        rns = START_NS + i * step
        msgtype = core.FRAME_KINDS[kinds[i]]
        key = keys.raw_key(ENV, FEED, msgtype, DAY, keys.hour_of_ns(rns))
        line = b'{"ts":%d,"rns":%d,"type":"%s","data":%s,"conn":1,"seq":%d}\n' % (
            rns // 10**6,
            rns,
            msgtype.encode(),
            frame,
            i + 1,
        )
        held = open_files.get(key)
        if held is None:
            held = open_files[key] = (core.ArchiveWriter(core.ARCHIVE_DEFAULT_LEVEL), [], 0)
        held[1].append(line)
        open_files[key] = (held[0], held[1], held[2] + len(line))
        if held[2] + len(line) >= FRAME_BYTES:
            flush(key, final=False)
    for key in list(open_files):
        flush(key, final=True)
    return n


def bench_read(ds: Dataset) -> dict[str, Any]:
    import ssmd.data

    base = rss_mb()
    peak = base
    t = time.perf_counter()
    count = 0
    for count, _frame in enumerate(raw_frames(ds, START_NS, START_NS + SPAN_NS), 1):
        if count % 50_000 == 0:
            peak = max(peak, rss_mb())
    streamed = time.perf_counter() - t
    streamed_growth = max(peak, rss_mb()) - base
    base2 = rss_mb()
    t = time.perf_counter()
    table = ssmd.data.raw(DAY.isoformat(), dataset=ds).collect()
    collected = time.perf_counter() - t
    held_growth = rss_mb() - base2
    assert table.height == count
    del table
    return {
        "frames": count,
        "streamed_frames_per_s": round(count / streamed),
        "streamed_rss_growth_mb": round(streamed_growth, 1),
        "baseline_collect_frames_per_s": round(count / collected),
        "baseline_collect_rss_growth_mb": round(held_growth, 1),
    }


def bench_equality(ds: Dataset, copy: Dataset) -> dict[str, Any]:
    t = time.perf_counter()
    count = 0
    a = raw_frames(ds, START_NS, START_NS + SPAN_NS)
    b = raw_frames(copy, START_NS, START_NS + SPAN_NS)
    for x, y in zip(a, b, strict=True):
        if (x.receive_ns, x.msgtype, x.frame) != (y.receive_ns, y.msgtype, y.frame):
            raise AssertionError(f"frame {count} differs")
        count += 1
    seconds = time.perf_counter() - t
    return {"frames": count, "seconds": round(seconds, 1), "under_60s": seconds < 60}


async def bench_nats(data_dir: Path, tmp: Path, frames: int) -> dict[str, Any]:
    from ssmd.bus.connection import connect
    from ssmd.bus.publisher import Publisher
    from ssmd.bus.stream import ensure_stream
    from ssmd.connector.capture_queue import Item
    from ssmd.connector.pipeline import Pipeline
    from ssmd.replay.env import replay_environment
    from ssmd.replay.nats import NatsTarget
    from ssmd.replay.runner import Replay, plan

    server = NatsServer(tmp / "nats")
    await server.start()
    try:
        end_ns = START_NS + frames * (SPAN_NS // _total_frames(data_dir))
        p = plan(
            ENV,
            DAY.isoformat(),
            start=str(START_NS),
            end=str(end_ns),
            speed=None,
            replay_id="bench",
            nats_url=server.url,
            config_dir=ROOT / "exchanges",
            data_dir=data_dir,
        )
        target = NatsTarget(p.replay)
        with RssSampler() as rss:
            t = time.perf_counter()
            await Replay(p, target).run()
            seconds = time.perf_counter() - t
        sent = target.published
        replayed = {
            "frames": frames,
            "messages": sent,
            "frames_per_s": round(frames / seconds),
            **rss.summary(),
        }
        # Baseline: the same frames' messages, prepared beforehand, published alone.
        env = replay_environment(environment(data_dir, server.url), "base")
        pipeline = Pipeline(env.name, FEED)
        items = [
            Item(1, i, f.receive_ns, f.frame)
            for i, f in enumerate(raw_frames(p.ds, START_NS, end_ns), 1)
        ]
        batches = [
            pipeline.process(items[i : i + 1024]).messages for i in range(0, len(items), 1024)
        ]
        nc = await connect(server.url, "bench-baseline")
        await ensure_stream(nc.jetstream(), env.nats)
        pub = Publisher(server.url, "bench-baseline-publisher", max_inflight=8192)
        await pub.start()
        t = time.perf_counter()
        for batch in batches:
            await pub.publish_many(batch)
        await pub.flush(120)
        base_seconds = time.perf_counter() - t
        await pub.close()
        await nc.close()
        replayed["baseline_publish_only_frames_per_s"] = round(len(items) / base_seconds)
        replayed["ratio_to_publish_only"] = round(base_seconds / seconds, 2)
        return replayed
    finally:
        server.stop()


def _total_frames(data_dir: Path) -> int:
    return int((data_dir / "frames").read_text())


async def bench_kalshi(data_dir: Path, frames: int) -> dict[str, Any]:
    from ssmd.replay.kalshi import KalshiTarget
    from ssmd.replay.runner import Replay, plan

    end_ns = START_NS + frames * (SPAN_NS // _total_frames(data_dir))
    p = plan(
        ENV,
        DAY.isoformat(),
        start=str(START_NS),
        end=str(end_ns),
        speed=None,
        replay_id="bench",
        nats_url="nats://127.0.0.1:9",
        config_dir=ROOT / "exchanges",
        data_dir=data_dir,
    )
    target = KalshiTarget(p, port=0)
    replay = Replay(p, target)
    stop = asyncio.Event()
    started = asyncio.Event()
    task = asyncio.create_task(replay.run(stop, linger=True, ready=started.set))
    await started.wait()
    # The client is a process of its own, as a bot is: the replay's rate is not shared
    # with the client's reading of 100,000 messages in one event loop.
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--client",
        target.ws_url,
        *sorted(target.markets),
        stdout=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(600):
        await replay.done.wait()
        (client,) = target.clients
        while client.out:
            await asyncio.sleep(0.01)  # until the server's queue to the client is sent
    stop.set()  # the target closes the connection after what it sent
    await task
    out, _ = await proc.communicate()
    got = json.loads(out)
    return {
        "frames_sent": target.frames,
        "data_frames_received": got["received"],
        "frames_per_s": round(got["received"] / got["seconds"]),
        "first_frame_after_subscribing_s": round(got["first_s"], 2),
    }


async def kalshi_client(ws_url: str, tickers: list[str]) -> dict[str, Any]:
    """`--client`: subscribe to every market's book, trades and tickers and to the
    lifecycle channel, and read until the replay closes the connection; the data
    frames received, the seconds from the first to the last of them, and the wait for
    the first (the replay reads the books to start from before it sends)."""
    from ssmd.sim import DEMO_KEY_ID, DEMO_PRIVATE_KEY_PATH
    from ssmd.venues.kalshi import auth

    headers = auth.auth_headers(
        DEMO_KEY_ID, auth.load_private_key(DEMO_PRIVATE_KEY_PATH), "GET", "/trade-api/ws/v2"
    )
    received, last = 0, 0.0
    async with websockets.connect(ws_url, additional_headers=headers, max_size=None) as ws:
        # The global channel first: the clock starts at the first subscription naming
        # markets, and what it sends before a later subscription arrives is not for it.
        commands = [
            {"channels": ["market_lifecycle_v2"]},
            {"channels": ["orderbook_delta", "trade", "ticker"], "market_tickers": tickers},
        ]
        for cid, params in enumerate(commands, 1):
            await ws.send(json.dumps({"id": cid, "cmd": "subscribe", "params": params}))
        subscribed = time.perf_counter()
        first = 0.0
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                message = await ws.recv(decode=False)
                if not message.startswith(b'{"id":'):  # not a reply to a command
                    received += 1
                    last = time.perf_counter()
                    first = first or last
    return {"received": received, "seconds": last - first, "first_s": first - subscribed}


def main() -> None:
    if sys.argv[1:2] == ["--client"]:
        print(json.dumps(asyncio.run(kalshi_client(sys.argv[2], sys.argv[3:]))))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=1_000_000)
    ap.add_argument("--nats-frames", type=int, default=200_000)
    ap.add_argument("--kalshi-frames", type=int, default=100_000)
    ap.add_argument(
        "--only",
        choices=["read", "equality", "nats", "kalshi"],
        action="append",
        help="run these parts alone (repeatable; default: all). One part per process keeps "
        "the earlier parts' heap out of its figures.",
    )
    args = ap.parse_args()
    parts = set(args.only or ["read", "equality", "nats", "kalshi"])
    with tempfile.TemporaryDirectory(prefix="ssmd-bench-replay-") as tmp_name:
        tmp = Path(tmp_name)
        data_dir, copy_dir = tmp / "data", tmp / "copy"
        t = time.perf_counter()
        write_day(data_dir, args.frames)
        (data_dir / "frames").write_text(str(args.frames))
        written = time.perf_counter() - t
        shutil.copytree(data_dir / "raw", copy_dir / "raw")
        ds = Dataset.open(ENV, data_dir=data_dir, config_dir=ROOT / "exchanges")
        copy = Dataset.open(ENV, data_dir=copy_dir, config_dir=ROOT / "exchanges")
        out: dict[str, Any] = {
            "bench": "replay",
            "cpus": os.cpu_count(),
            "input_seconds": round(written, 1),
        }
        if "read" in parts:
            out["read"] = bench_read(ds)
        if "equality" in parts:
            out["equality"] = bench_equality(ds, copy)
        if "nats" in parts:
            frames = min(args.nats_frames, args.frames)
            out["nats"] = asyncio.run(bench_nats(data_dir, tmp, frames))
        if "kalshi" in parts:
            frames = min(args.kalshi_frames, args.frames)
            out["kalshi"] = asyncio.run(bench_kalshi(data_dir, frames))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
