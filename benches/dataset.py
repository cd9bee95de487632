"""The archive as a dataset (ssmd.data), for `benches/run.py`: scan of the Parquet export,
the export itself, and point-in-time books.

- scan: `ssmd.data.scan("trade", day).collect()` over the export of a day of trades,
  against `archive_to_polars` of the same trades' archive files (the archive path).
- export: `ssmd data export` of that day (read, sort, zstd Parquet), records/s,
  against reading the archive alone.
- bounds: what limits those two on the machine, each timed alone in the same run:
  Polars reading the day from an uncompressed Parquet file, the export's trade_id
  column alone, zstd decompression of the archive alone, and the Parquet write alone.
- book_at: one market with a day of deltas; `book_at` at random times once the day
  is indexed (p50, p90), against a rebuild from the day's snapshot up to the same
  time (a fresh BookSet over every record before it).
- history: the gateway's `GET /v1/history/trade` over real HTTP (uvicorn, an httpx
  client reading the streamed body) in NDJSON, CSV and JSON, pages of 100,000 rows
  followed through `next` until the day's end, rows/s against `ssmd.data.scan` of
  the same day from the archive collected in the same process.

Each runs on a temporary data dir in the layout the archiver writes (sealed files and
manifests through ssmd.store.keys and ssmd.archiver.manifest).
"""

from __future__ import annotations

import bisect
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from ssmd import core
from ssmd.archiver.manifest import build_manifest, write_manifest
from ssmd.config import Overrides, load_environment
from ssmd.data.source import Dataset
from ssmd.store import keys, open_store
from ssmd.testing.archives import seal
from ssmd.testing.frames import book_stream, trades_only

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

ENV, FEED = "kalshi-sim", "kalshi"
DAY = date(2026, 7, 20)
DAY_START_NS = 1_784_505_600 * 10**9  # 2026-07-20T00:00:00Z
DAY_NS = 86_400 * 10**9


def archived(data_dir: Path, frames: list[bytes]) -> Dataset:
    """`frames` received evenly over DAY, normalized and archived as sealed files with
    their manifests under `data_dir`."""
    env = load_environment(ENV, ROOT / "exchanges", Overrides(data_dir=str(data_dir)), environ={})
    step = DAY_NS // (len(frames) + 1)
    batch = core.normalize_kalshi(frames, [DAY_START_NS + i * step for i in range(len(frames))], 1)
    files: dict[tuple[str, str], list[bytes]] = defaultdict(list)
    data = batch.data
    for _frame, record_type, ticker, start, end in batch.records:
        files[(record_type, ticker)].append(data[start:end])
    store = open_store(env.normalized_store)
    for (record_type, ticker), records in files.items():
        store.put_atomic(
            keys.normalized_key(ENV, FEED, record_type, DAY, ticker), seal(b"".join(records))
        )
    for record_type in {t for t, _ in files}:
        write_manifest(store, build_manifest(store, ENV, FEED, record_type, DAY, status="sealed"))
    return Dataset.open(ENV, data_dir=data_dir, config_dir=ROOT / "exchanges")


def best_of(repeat: int, runs: dict[str, Callable[[], Any]]) -> dict[str, tuple[float, Any]]:
    """The best time of each run, the runs taking turns (as in run.py)."""
    best: dict[str, tuple[float, Any]] = {name: (float("inf"), None) for name in runs}
    for _ in range(repeat):
        for name, fn in runs.items():
            started = time.perf_counter()
            result = fn()
            seconds = time.perf_counter() - started
            if seconds < best[name][0]:
                best[name] = (seconds, result)
    return best


def bench_scan_and_export(trades: int, repeat: int) -> dict[str, Any]:
    import ssmd.data
    from ssmd.data.export import ExportRequest, export
    from ssmd.records import archive_to_polars

    with tempfile.TemporaryDirectory() as tmp:
        ds = archived(Path(tmp), trades_only(trades))
        files = ds.normalized_files("trade", DAY)
        blobs = [f.load() for f in files]
        outs = iter(range(10**6))

        def run_export() -> Any:
            out = Path(tmp) / f"out{next(outs)}"
            return export(ds, ExportRequest(kinds=["trade"], days=[DAY], out=out))

        def read_archive() -> int:
            return sum(archive_to_polars(f.load(), "trade").height for f in files)

        exported = best_of(repeat, {"export": run_export, "read": read_archive})
        summary = exported["export"][1]
        assert summary.rows == trades and exported["read"][1] == trades
        # The default export folder, where scan looks.
        assert ds.export_dir is not None
        export(ds, ExportRequest(kinds=["trade"], days=[DAY], out=ds.export_dir))
        lazy = ssmd.data.scan("trade", DAY, dataset=ds)
        assert "ssmd archive" not in lazy.explain()
        scanned = best_of(
            repeat,
            {
                "scan": lambda: ssmd.data.scan("trade", DAY, dataset=ds).collect(),
                "archive_to_polars": lambda: sum(
                    archive_to_polars(b, "trade").height for b in blobs
                ),
            },
        )
        frame = scanned["scan"][1]
        assert frame.height == trades == scanned["archive_to_polars"][1]
        bounds = _bounds(frame, Path(tmp), blobs, ds, repeat)
        return {
            **bounds,
            "rows": trades,
            "files": len(files),
            "scan_rows_per_s": trades / scanned["scan"][0],
            "archive_to_polars_rows_per_s": trades / scanned["archive_to_polars"][0],
            "export_records_per_s": trades / exported["export"][0],
            "read_records_per_s": trades / exported["read"][0],
            "parquet_mb": summary.bytes / 1e6,
            "archive_mb": sum(len(b) for b in blobs) / 1e6,
        }


def _bounds(
    frame: Any, tmp: Path, blobs: list[bytes], ds: Dataset, repeat: int
) -> dict[str, float]:
    """What bounds scan and export on this machine, timed alone in the same run (rows/s):
    Polars reading the same rows from an uncompressed Parquet file (scan without zstd),
    the export's trade_id column alone (random ids, half the file), zstd decompression
    of the archive alone, and writing the sorted day as the export does."""
    import polars as pl

    from ssmd.data.export import ROW_GROUP, ZSTD_LEVEL

    assert ds.export_dir is not None
    exported = next(Path(ds.export_dir).rglob("*.parquet"))
    plain, written = tmp / "plain.parquet", tmp / "written.parquet"
    frame.write_parquet(plain, compression="uncompressed", row_group_size=ROW_GROUP)
    rows = frame.height

    def write() -> None:
        frame.write_parquet(
            written,
            compression="zstd",
            compression_level=ZSTD_LEVEL,
            statistics=True,
            row_group_size=ROW_GROUP,
        )

    timed = best_of(
        repeat,
        {
            "plain": lambda: pl.read_parquet(plain),
            "trade_id": lambda: pl.read_parquet(exported, columns=["trade_id"]),
            "decompress": lambda: [core.read_archive(b) for b in blobs],
            "write": write,
        },
    )
    return {
        "bound_scan_uncompressed_rows_per_s": rows / timed["plain"][0],
        "bound_scan_trade_id_alone_rows_per_s": rows / timed["trade_id"][0],
        "bound_export_decompress_rows_per_s": rows / timed["decompress"][0],
        "bound_export_write_rows_per_s": rows / timed["write"][0],
    }


def bench_book_at(deltas: int, samples: int) -> dict[str, Any]:
    import ssmd.data

    with tempfile.TemporaryDirectory() as tmp:
        ds = archived(Path(tmp), book_stream(deltas, markets=1))
        (file,) = ds.normalized_files("orderbook", DAY)
        ticker = file.info.ticker
        assert ticker is not None
        data = core.read_archive(file.load()).data
        received = [h[0] for h in core.record_heads(data)]  # ascending
        spans = core.record_spans(data)
        started = time.perf_counter()
        ssmd.data.book_at(ticker, DAY_START_NS + DAY_NS // 2, dataset=ds)  # indexes the day
        index_s = time.perf_counter() - started
        rng = random.Random(3)
        times = [DAY_START_NS + rng.randrange(DAY_NS) for _ in range(samples)]
        indexed, rebuilt = [], []
        for at in times:
            started = time.perf_counter()
            book = ssmd.data.book_at(ticker, at, dataset=ds)
            indexed.append(time.perf_counter() - started)
            count = bisect.bisect_right(received, at)
            started = time.perf_counter()
            fresh = core.BookSet(ignore_seqs=True)
            fresh.apply(data[: spans[count - 1][1]])
            view = fresh.view(ticker, 0)
            rebuilt.append(time.perf_counter() - started)
            assert view is not None and book.valid
            assert book.bids == view.bids
            assert book.asks == view.asks
        return {
            "deltas": deltas,
            "samples": samples,
            "index_s": index_s,
            "p50_ms": statistics.median(indexed) * 1e3,
            "p90_ms": statistics.quantiles(indexed, n=10)[-1] * 1e3,
            "rebuild_p50_ms": statistics.median(rebuilt) * 1e3,
        }


def bench_history(trades: int, repeat: int) -> dict[str, Any]:
    import socket
    import threading

    import httpx
    import uvicorn

    import ssmd.data
    from ssmd.gateway import Gateway, GatewaySettings

    with tempfile.TemporaryDirectory() as tmp:
        ds = archived(Path(tmp), trades_only(trades))
        # A NATS URL the gateway never connects to: without a lifespan it reads no stream.
        over = Overrides(data_dir=tmp, nats_url="nats://127.0.0.1:1")
        env = load_environment(ENV, ROOT / "exchanges", over, environ={})
        page = 100_000
        settings = GatewaySettings.from_environment(env, dataset=lambda: ds, history_max_limit=page)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        # The history routes read the archive only: no lifespan, no NATS.
        config = uvicorn.Config(
            Gateway(settings).app, port=port, lifespan="off", log_config=None, access_log=False
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        base = f"http://127.0.0.1:{port}/v1/history/trade"
        with httpx.Client(timeout=120.0) as http:
            while not server.started:
                if not thread.is_alive():
                    raise RuntimeError("the gateway did not start")
                time.sleep(0.01)

            def fetch(fmt: str) -> int:
                rows, cursor = 0, None
                while True:
                    params = {"from": DAY.isoformat(), "limit": page, "format": fmt}
                    if cursor:
                        params["cursor"] = cursor
                    body = bytearray()
                    with http.stream("GET", base, params=params) as resp:
                        resp.raise_for_status()
                        for chunk in resp.iter_bytes():
                            body += chunk
                    cursor, got = _page_of(bytes(body), fmt)
                    rows += got
                    if cursor is None:
                        return rows

            runs: dict[str, Callable[[], Any]] = {
                "scan": lambda: ssmd.data.scan("trade", DAY, dataset=ds).collect().height,
                **{fmt: (lambda f=fmt: fetch(f)) for fmt in ("ndjson", "csv", "json")},
            }
            best = best_of(repeat, runs)
        server.should_exit = True
        thread.join(timeout=30)
        assert all(result == trades for _, result in best.values()), best
        out: dict[str, Any] = {"rows": trades, "page_rows": page}
        for name, (seconds, _) in best.items():
            out[f"{name}_rows_per_s"] = trades / seconds
        for fmt in ("ndjson", "csv", "json"):
            out[f"{fmt}_vs_scan"] = best["scan"][0] / best[fmt][0]
        return out


def _page_of(body: bytes, fmt: str) -> tuple[str | None, int]:
    """The next cursor and the rows of one page of /v1/history (see docs/gateway.md)."""
    import orjson

    if fmt == "json":
        doc = orjson.loads(body)
        return doc["next"], int(doc["count"])
    lines = body.rstrip(b"\n").split(b"\n")
    if fmt == "ndjson":
        if b'"next"' in lines[-1] and not lines[-1].startswith(b'{"receive_ts"'):
            return orjson.loads(lines[-1])["next"], len(lines) - 1
        return None, len(lines)
    if lines[-1].startswith(b"#next="):
        return lines[-1][6:].decode(), len(lines) - 2  # the header and the cursor
    return None, len(lines) - 1


if __name__ == "__main__":
    import json

    quick = "--quick" in sys.argv
    print(
        json.dumps(
            {
                "scan_export": bench_scan_and_export(100_000 if quick else 1_000_000, 3),
                "book_at": bench_book_at(100_000 if quick else 1_000_000, 20 if quick else 50),
                "history": bench_history(100_000 if quick else 1_000_000, 2),
            }
        )
    )
