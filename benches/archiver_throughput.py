"""Archiver benchmarks: throughput from a pre-filled stream, sustained rate, bytes, memory.

    .venv/bin/python benches/archiver_throughput.py [--frames 600000] [--rate 20000]
        [--seconds 30] [--minutes 0] [--markets 200]

- throughput: the stream is filled with `--frames` era-C frames in the connector's
  format (raw frame + its normalized records, ~2 messages per frame), then one
  archiver (this process) drains it: frames/s and messages/s until the consumer's ack
  floor reaches the last sequence (spool written, fsynced, acked). Then every file is
  sealed (timed separately) and the archive is checked: every sequence exactly once.
  Then the same for the baseline (`baseline_nats_py`, on a nats-server of its own): the
  same archiver with its puller on nats-py's public API (benches/stock_bus.py), and the
  ratio of the two (`throughput_vs_baseline`); `--no-baseline` skips it.
- sustained: a publisher process sends `--rate` frames/s for `--seconds` while the
  archiver runs; zero loss is checked (archived sequences == stream sequences) and the
  final lag reported.
- bytes: bytes per frame of the raw archive (JSONL.zst), the normalized archive
  (packed Cap'n Proto .zst) and gzip -6 of the same JSONL lines (the original format).
- memory: with `--minutes` > 0, the sustained run lasts that long and the archiver's
  RSS is sampled every 5 s (flat = the mean of the last third of the samples within 10% of
  the first third's, after warm-up).

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import multiprocessing as mp
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from ssmd import core
from ssmd.archiver import Archiver, ArchiverSettings
from ssmd.bus import subjects
from ssmd.bus.stream import ensure_stream
from ssmd.config import Overrides, load_environment
from ssmd.store import keys, open_store
from ssmd.testing.frames import frame_mix
from ssmd.testing.nats import NatsServer
from stock_bus import StockArchiver

ROOT = Path(__file__).resolve().parents[1]

ENV, FEED, STREAM = "kalshi-sim", "kalshi", "SSMD_KALSHI_SIM"


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def messages(
    frames: list[bytes], receive_ns: list[int], conn: int, frame_base: int
) -> list[tuple[str, bytes, dict[str, str] | None]]:
    batch = core.normalize_kalshi(frames, receive_ns, conn)
    out: list[tuple[str, bytes, dict[str, str] | None]] = []
    recs: dict[int, list[tuple[str, str, int, int]]] = {}
    for fi, rtype, ticker, a, b in batch.records:
        recs.setdefault(fi, []).append((rtype, ticker, a, b))
    data = batch.data
    for i, f in enumerate(frames):
        out.append(
            (
                subjects.raw(ENV, FEED, core.FRAME_KINDS[batch.kinds[i]]),
                f,
                {
                    "Ssmd-Receive-Ns": str(receive_ns[i]),
                    "Ssmd-Conn-Id": str(conn),
                    "Nats-Msg-Id": f"{conn}:{frame_base + i}",
                },
            )
        )
        for rtype, ticker, a, b in recs.get(i, []):
            out.append((subjects.record(ENV, FEED, rtype, ticker), data[a:b], None))
    return out


async def fill(url: str, frames: list[bytes], conn: int = 1) -> int:
    import nats

    nc = await nats.connect(url)
    js = nc.jetstream()
    now = time.time_ns()
    n = 0
    for start in range(0, len(frames), 5000):
        chunk = frames[start : start + 5000]
        for subj, payload, headers in messages(
            chunk, [now + start + i for i in range(len(chunk))], conn, start
        ):
            await nc.publish(subj, payload, headers=headers)
            n += 1
        await nc.flush()
    # core publishes are stored asynchronously: wait until the stream stops growing
    last = -1
    while True:
        seq = int((await js.stream_info(STREAM)).state.last_seq)
        if seq == last:
            break
        last = seq
        await asyncio.sleep(0.5)
    await nc.close()
    return last


async def raw_in_stream(js: Any) -> int:
    """Raw frames the stream holds (core publishes can be refused under load)."""
    info = await js.stream_info(STREAM, subjects_filter=f"{ENV}.{FEED}.raw.>")
    return sum((info.state.subjects or {}).values())


def publisher(url: str, rate: float, seconds: float, markets: int, conn: int) -> None:
    async def main() -> None:
        import nats

        nc = await nats.connect(url)
        pool = frame_mix(50_000, markets=markets)
        sent = 0
        t0 = time.monotonic()
        step = max(1, int(rate / 100))
        while (elapsed := time.monotonic() - t0) < seconds:
            due = int(elapsed * rate)
            if sent >= due:
                await asyncio.sleep(0.005)
                continue
            k = min(step, due - sent)
            chunk = [pool[(sent + i) % len(pool)] for i in range(k)]
            now = time.time_ns()
            for subj, payload, headers in messages(chunk, [now + i for i in range(k)], conn, sent):
                await nc.publish(subj, payload, headers=headers)
            sent += k
            await nc.flush()
        await nc.close()

    asyncio.run(main())


async def ack_floor(js: Any) -> int:
    from nats.js.errors import NotFoundError

    try:
        info = await js.consumer_info(STREAM, "archiver")
    except NotFoundError:
        return 0
    return int(info.ack_floor.stream_seq) if info.ack_floor else 0


def settings_for(tmp: Path, url: str) -> ArchiverSettings:
    env = load_environment(
        ENV, ROOT / "exchanges", Overrides(nats_url=url, data_dir=str(tmp)), environ={}
    )
    return ArchiverSettings.from_environment(env)


def count_archived(tmp: Path, s: ArchiverSettings, arc: Archiver) -> tuple[int, int, int, int]:
    """(raw lines, distinct raw seqs, raw bytes, normalized bytes + records) over sealed files."""
    raw = open_store(
        load_environment(
            ENV, ROOT / "exchanges", Overrides(data_dir=str(tmp), nats_url="nats://x:1"), environ={}
        ).raw_store
    )
    lines = 0
    seqs: set[int] = set()
    raw_bytes = 0
    for obj in raw.list(f"{ENV}/{FEED}/"):
        info = keys.parse_key(obj.key)
        if info is None or info.kind != "raw":
            continue
        raw_bytes += obj.size
        reader = core.ArchiveReader()
        tail = b""
        for chunk in raw.iter_chunks(obj.key):
            reader.feed(chunk)
            parts = (tail + reader.take()).split(b"\n")
            tail = parts.pop()
            for line in parts:
                lines += 1
                seqs.add(orjson.loads(line)["seq"])
    norm = s.normalized_store
    norm_bytes = sum(
        o.size
        for o in norm.list(f"{ENV}/{FEED}/v1/")
        if (i := keys.parse_key(o.key)) is not None and i.kind == "normalized"
    )
    return lines, len(seqs), raw_bytes, norm_bytes


async def run_throughput(
    tmp: Path, url: str, frames: list[bytes], kind: type[Archiver] = Archiver
) -> dict[str, Any]:
    import nats

    s = settings_for(tmp, url)
    async with await_nc(url) as js:
        await ensure_stream(
            js,
            load_environment(
                ENV, ROOT / "exchanges", Overrides(nats_url=url, data_dir=str(tmp)), environ={}
            ).nats,
        )
    last = await fill(url, frames)
    arc = kind(s)
    stop = asyncio.Event()
    nc = await nats.connect(url)
    js = nc.jetstream()
    t0, cpu0 = time.perf_counter(), time.process_time()
    task = asyncio.create_task(arc.run(stop))
    while await ack_floor(js) < last:
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    raw_stream = await raw_in_stream(js)
    stop.set()
    await task
    t1 = time.perf_counter()
    arc.seal_due(everything=True)
    seal_s = time.perf_counter() - t1
    await nc.close()
    lines, distinct, raw_bytes, norm_bytes = count_archived(tmp, s, arc)
    return {
        "bus": "nats-py" if kind is StockArchiver else "ssmd",
        "frames": len(frames),
        "messages": last,
        "seconds": round(elapsed, 2),
        "frames_per_s": round(len(frames) / elapsed),
        "messages_per_s": round(last / elapsed),
        "seal_seconds": round(seal_s, 2),
        # this process (the archiver, and the bench's ack-floor polls) in cores
        "archiver_cpu_cores": round(cpu / elapsed, 2),
        "raw_lines": lines,
        "raw_in_stream": raw_stream,
        "exactly_once": lines == distinct == raw_stream,
        "raw_bytes_per_frame": round(raw_bytes / len(frames), 1),
        "normalized_bytes_per_frame": round(norm_bytes / len(frames), 1),
        "rss_mb": round(rss_mb(), 1),
    }


class await_nc:
    def __init__(self, url: str) -> None:
        self.url = url

    async def __aenter__(self) -> Any:
        import nats

        self.nc = await nats.connect(self.url)
        return self.nc.jetstream()

    async def __aexit__(self, *exc: object) -> None:
        await self.nc.close()


def gzip_bytes(frames: list[bytes]) -> tuple[int, int]:
    """gzip -6 of the same frames as JSONL (the original design's lines), and of our lines."""
    now = time.time_ns()
    plain = b"".join(f + b"\n" for f in frames)
    deliveries = core.Deliveries(
        [
            (f"{ENV}.{FEED}.raw.trade", i + 1, now, {"Ssmd-Receive-Ns": str(now + i)}, f)
            for i, f in enumerate(frames)
        ]
    )
    routed = core.route_batch(deliveries, f"{ENV}.{FEED}", core.Coverage(), now)
    ours = b"".join(dest.chunk.items for dest in routed.chunks)
    return len(gzip.compress(plain, 6)), len(gzip.compress(ours, 6))


async def run_sustained(
    tmp: Path, url: str, rate: float, seconds: float, markets: int
) -> dict[str, Any]:
    import nats

    s = settings_for(tmp, url)
    async with await_nc(url) as js:
        await ensure_stream(
            js,
            load_environment(
                ENV, ROOT / "exchanges", Overrides(nats_url=url, data_dir=str(tmp)), environ={}
            ).nats,
        )
    arc = Archiver(s)
    stop = asyncio.Event()
    task = asyncio.create_task(arc.run(stop))
    proc = mp.get_context("spawn").Process(target=publisher, args=(url, rate, seconds, markets, 2))
    proc.start()
    samples: list[float] = []
    t0 = time.monotonic()
    next_sample = t0 + 5
    while proc.is_alive():
        await asyncio.sleep(0.2)
        if time.monotonic() >= next_sample:
            samples.append(round(rss_mb(), 1))
            next_sample += 5
    nc = await nats.connect(url)
    js = nc.jetstream()
    last = int((await js.stream_info(STREAM)).state.last_seq)
    raw_stream = await raw_in_stream(js)
    t_end = time.monotonic()
    while await ack_floor(js) < last:
        await asyncio.sleep(0.05)
    lag = time.monotonic() - t_end
    await nc.close()
    stop.set()
    await task
    arc.seal_due(everything=True)
    lines, distinct, _, _ = count_archived(tmp, s, arc)
    return {
        "rate_target": rate,
        "seconds": seconds,
        "messages": last,
        "raw_frames_archived": lines,
        "duplicates": lines - distinct,
        "written": arc.stats.written,
        "raw_in_stream": raw_stream,
        "zero_loss": arc.stats.written == last and lines == distinct == raw_stream,
        "drain_lag_s": round(lag, 2),
        "rss_mb_samples": samples,
        "rss_mb_thirds": [round(v, 1) for v in _thirds(samples) or ()],
        "rss_mb_peak": max(samples, default=0.0),
        "memory_flat": _flat(samples),
    }


def _thirds(samples: list[float]) -> tuple[float, float] | None:
    """Mean RSS of the first and last third of the samples after warm-up (the first
    sample). RSS saws up and down with batches and spool checkpoints, so single samples
    say little; the thirds' means show a trend."""
    rest = samples[1:]
    if len(rest) < 3:
        return None
    third = len(rest) // 3
    return sum(rest[:third]) / third, sum(rest[-third:]) / third


def _flat(samples: list[float]) -> bool | None:
    """The last third's mean within 10% of the first third's; None if too short."""
    thirds = _thirds(samples)
    return None if thirds is None else thirds[1] <= thirds[0] * 1.10


async def drain(frames: list[bytes], kind: type[Archiver]) -> dict[str, Any]:
    """`frames` into a new stream on a nats-server of its own, drained by a `kind`."""
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        server = NatsServer(tmp / "nats")
        await server.start()
        try:
            return await run_throughput(tmp, server.url, frames, kind)
        finally:
            server.stop()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=600_000)
    ap.add_argument("--rate", type=float, default=20_000)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--minutes", type=float, default=0)
    ap.add_argument("--markets", type=int, default=200)
    ap.add_argument("--mode", default="all", choices=["all", "throughput", "sustained"])
    ap.add_argument(
        "--no-baseline",
        dest="baseline",
        action="store_false",
        help="throughput: skip the same drain with the puller on nats-py's public API",
    )
    args = ap.parse_args()
    out: dict[str, Any] = {"bench": "archiver_throughput"}
    if args.mode in ("all", "throughput"):
        frames = frame_mix(args.frames, markets=args.markets)
        out["throughput"] = await drain(frames, Archiver)
        if args.baseline:
            base = out["baseline_nats_py"] = await drain(frames, StockArchiver)
            ratio = out["throughput"]["frames_per_s"] / base["frames_per_s"]
            out["throughput_vs_baseline"] = round(ratio, 2)
        gz_plain, gz_ours = gzip_bytes(frames)
        t = out["throughput"]
        out["bytes"] = {
            "raw_zst_per_frame": t["raw_bytes_per_frame"],
            "normalized_zst_per_frame": t["normalized_bytes_per_frame"],
            "gzip_jsonl_per_frame": round(gz_plain / len(frames), 1),
            "gzip_of_archiver_lines_per_frame": round(gz_ours / len(frames), 1),
            "raw_vs_gzip": round(t["raw_bytes_per_frame"] / (gz_plain / len(frames)), 3),
            "normalized_vs_gzip": round(
                t["normalized_bytes_per_frame"] / (gz_plain / len(frames)), 3
            ),
        }
    if args.mode in ("all", "sustained"):
        seconds = args.minutes * 60 if args.minutes else args.seconds
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            server = NatsServer(tmp / "nats")
            await server.start()
            try:
                out["sustained"] = await run_sustained(
                    tmp, server.url, args.rate, seconds, args.markets
                )
            finally:
                server.stop()
    out["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version()}
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main())
