"""Throughput harness: `just bench` (or `python benches/run.py [--quick]`).

Measures the hot paths against baselines in the same run, pinned to one CPU
core, prints the figures and rewrites benches/RESULTS.md. Each measurement is
the best of several repetitions (the least disturbed run) and is checked for
correctness before it is reported.
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import baseline
import ssmd.records
from ssmd import _core, core
from ssmd.testing.archives import seal
from ssmd.testing.frames import frame_mix, trades_only

HERE = Path(__file__).resolve().parent


def taking_turns(repeat: int, runs: dict[str, Callable[[], Any]]) -> dict[str, tuple[float, Any]]:
    """The best time (and a result) of each run, the runs taking turns: a slow
    spell of a shared machine then hits all of them alike, so ratios between
    figures of one table stay fair. Each turn runs twice in a row, so that the
    second run finds its caches warm, as a run in a loop of its own would."""
    best = {name: (float("inf"), None) for name in runs}
    for _ in range(repeat):
        for name, fn in runs.items():
            for _warm in range(2):
                start = time.perf_counter()
                result = fn()
                seconds = time.perf_counter() - start
                if seconds < best[name][0]:
                    best[name] = (seconds, result)
    return best


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()} {platform.release()}"


def normalize_in_batches(frames: list[bytes], receive: list[int], size: int) -> int:
    produced = 0
    for start in range(0, len(frames), size):
        produced += len(
            core.normalize_kalshi(
                frames[start : start + size], receive[start : start + size], 1
            ).data
        )
    return produced


def bench_normalize(frames: list[bytes], repeat: int) -> dict[str, Any]:
    receive = list(range(len(frames)))
    base_n = min(len(frames), 20_000)
    runs: dict[str, Callable[[], Any]] = {
        str(size): lambda size=size: normalize_in_batches(frames, receive, size)
        for size in (64, 1024, len(frames))
    }
    runs["routed"] = lambda: [
        core.normalize_kalshi(frames[i : i + 1024], receive[i : i + 1024], 1).records
        for i in range(0, len(frames), 1024)
    ]
    runs["baseline"] = lambda: baseline.normalize_batch(frames[:base_n], receive[:base_n], 1)
    best = taking_turns(repeat, runs)
    by_batch = {size: len(frames) / best[str(size)][0] for size in (64, 1024, len(frames))}
    routed_s = best["routed"][0]
    base_s, base = best["baseline"]
    # Correctness: the baseline and the core produce the same records.
    assert core.decode_records(base) == core.decode_records(
        core.normalize_kalshi(frames[:base_n], receive[:base_n], 1).data
    )
    batch = core.normalize_kalshi(frames, receive, 1).data
    base_rate = base_n / base_s
    return {
        "frames": len(frames),
        "by_batch": by_batch,
        "rust_fps": by_batch[1024],
        "rust_routed_fps": len(frames) / routed_s,
        "baseline_fps": base_rate,
        "ratio": by_batch[1024] / base_rate,
        "bytes_per_frame": sum(map(len, frames)) / len(frames),
        "record_bytes_per_frame": len(batch) / len(frames),
    }


def raw_jsonl(frames: list[bytes]) -> bytes:
    lines = []
    for i, frame in enumerate(frames):
        kind = frame[9 : frame.index(b'"', 9)]
        lines.append(b'{"ts":%d,"type":"%s","data":%s}\n' % (1_784_557_800_000 + i, kind, frame))
    return b"".join(lines)


def bench_raw_archive(frames: list[bytes], repeat: int) -> dict[str, Any]:
    data = raw_jsonl(frames)
    chunk = 1 << 20

    # Chunks are cut on line boundaries so that every frame holds whole lines.
    def write_lines() -> bytes:
        writer = _core.ArchiveWriter(_core.ARCHIVE_DEFAULT_LEVEL)
        out = []
        start = 0
        while start < len(data):
            end = data.find(b"\n", min(start + chunk, len(data) - 1)) + 1 or len(data)
            writer.write(data[start:end])
            out.append(writer.flush())
            start = end
        return b"".join(out)

    best = taking_turns(repeat, {"zstd": write_lines, "gzip": lambda: gzip.compress(data, 6)})
    zstd_s, compressed = best["zstd"]
    gzip_s, gz = best["gzip"]
    assert _core.read_archive(compressed).data == data
    return {
        "input_mb": len(data) / 1e6,
        "zstd_mb_s": len(data) / zstd_s / 1e6,
        "gzip_mb_s": len(data) / gzip_s / 1e6,
        "zstd_ratio": len(data) / len(compressed),
        "gzip_ratio": len(data) / len(gz),
        "zstd_vs_gzip_size": len(compressed) / len(gz),
        "raw_zst_bytes_per_frame": len(compressed) / len(frames),
        "raw_gz_bytes_per_frame": len(gz) / len(frames),
    }


def bench_normalized_archive(frames: list[bytes]) -> dict[str, Any]:
    data = core.normalize_kalshi(frames, list(range(len(frames))), 1).data
    writer = _core.ArchiveWriter(_core.ARCHIVE_DEFAULT_LEVEL)
    writer.write(data)
    compressed = writer.flush()
    return {"norm_zst_bytes_per_frame": len(compressed) / len(frames)}


def polars_baseline(archive: bytes) -> Any:
    """pycapnp reads each record into Python values, then Polars builds the frame."""
    import polars as pl

    data = _core.read_archive(archive).data
    rows: dict[str, list[Any]] = {
        k: [] for k in ("receive_ts", "exchange_ts", "ticker", "trade_id", "price_e6", "size_e6")
    }
    for message in baseline.schema.Record.read_multiple_bytes_packed(data):
        trade = message.trade
        rows["receive_ts"].append(message.receiveTs)
        rows["exchange_ts"].append(message.exchangeTs)
        rows["ticker"].append(trade.ticker)
        rows["trade_id"].append(trade.tradeId)
        rows["price_e6"].append(trade.priceE6)
        rows["size_e6"].append(trade.sizeE6)
    return pl.DataFrame(rows)


def zstd_cli_decompress_mb_s(data: bytes) -> float | None:
    """What the zstd tool itself decompresses, for the same records: the floor of any reader."""
    import shutil
    import tempfile

    tool = shutil.which("zstd")
    if tool is None:
        return None
    with tempfile.NamedTemporaryFile(suffix=".capnp") as f:
        f.write(data)
        f.flush()
        result = subprocess.run(
            [tool, "-b3", "-B1MiB", "-i2", f.name], capture_output=True, text=True
        )
    out = result.stdout + result.stderr
    # The last line reads "... N MB/s (compression), M MB/s (decompression)".
    figures = [float(x) for x in re.findall(r"([0-9.]+) MB/s", out)]
    return figures[-1] if len(figures) >= 2 else None


def bench_to_polars(trades: list[bytes], repeat: int) -> dict[str, Any]:
    data = core.normalize_kalshi(trades, list(range(len(trades))), 1).data
    archive = seal(data)

    base_n = min(len(trades), 50_000)
    base_archive = seal(core.normalize_kalshi(trades[:base_n], list(range(base_n)), 1).data)
    best = taking_turns(
        repeat,
        {
            "load": lambda: ssmd.records.archive_to_polars(archive, "trade"),
            "columns": lambda: core.archive_to_columns(archive, "trade"),
            # The path that decompresses the whole archive first, then builds the columns.
            "whole": lambda: ssmd.records.to_polars(_core.read_archive(archive).data, "trade"),
            "read": lambda: _core.read_archive(archive),
            "baseline": lambda: polars_baseline(base_archive),
        },
    )
    load_s, frame = best["load"]
    assert frame.height == len(trades)
    assert frame["price_e6"].null_count() == 0
    columns_s = best["columns"][0]
    whole_s, whole = best["whole"]
    assert whole.equals(frame)
    read_s = best["read"][0]
    base_s, base_frame = best["baseline"]
    assert base_frame["price_e6"].to_list() == frame["price_e6"].head(base_n).to_list()
    zstd_mb_s = zstd_cli_decompress_mb_s(data)
    bytes_per_row = len(data) / len(trades)
    return {
        "rows": len(trades),
        "rows_per_s": len(trades) / load_s,
        "columns_rows_per_s": len(trades) / columns_s,
        "whole_rows_per_s": len(trades) / whole_s,
        "read_archive_rows_per_s": len(trades) / read_s,
        "baseline_rows_per_s": base_n / base_s,
        "archive_mb": len(archive) / 1e6,
        "packed_bytes_per_row": bytes_per_row,
        "zstd_cli_mb_s": zstd_mb_s,
        "zstd_bound_rows_per_s": None if zstd_mb_s is None else zstd_mb_s * 1e6 / bytes_per_row,
    }


def bench_dataset(quick: bool) -> dict[str, Any]:
    """ssmd.data (benches/dataset.py): scan of the Parquet export and the export of a day
    of trades; book_at in a day of deltas of one market; the gateway's history route."""
    import dataset

    rows = 100_000 if quick else 1_000_000
    return {
        "scan_export": dataset.bench_scan_and_export(rows, 3),
        "book_at": dataset.bench_book_at(rows, 20 if quick else 50),
        "history": dataset.bench_history(rows, 2),
    }


def bench_simulator(cpus: set[int]) -> dict[str, Any] | None:
    """The simulator delivering to one client, server and client in two processes on `cpus`
    (this harness pins itself to one core; the simulator's figure is for the whole machine)."""
    script = HERE / "sim_throughput.py"
    if not script.exists():
        return None

    def all_cpus() -> None:
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, cpus)

    out = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=all_cpus,
    )
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1:] or ["failed"]}
    import json

    return json.loads(out.stdout.strip().splitlines()[-1])


def run_script(cpus: set[int], *args: str) -> dict[str, Any]:
    """One component benchmark script on every core (it starts its own processes); its
    last output line is its JSON result."""
    import json

    def all_cpus() -> None:
        if cpus and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, cpus)

    out = subprocess.run(
        [sys.executable, str(HERE / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        timeout=3600,
        preexec_fn=all_cpus,
    )
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1]}
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def bench_components(cpus: set[int], memory_minutes: float) -> dict[str, Any]:
    """The connector, archiver and gateway as processes with a real nats-server (the
    component scripts' own docstrings say what each measures)."""
    out = {
        "connector": run_script(cpus, "connector_capture.py", "--mode", "throughput"),
        "connector_latency": run_script(cpus, "connector_capture.py", "--mode", "latency"),
        "archiver": run_script(cpus, "archiver_throughput.py", "--mode", "throughput"),
        "archiver_sustained": run_script(
            cpus, "archiver_throughput.py", "--mode", "sustained", "--rate", "20000"
        ),
        "gateway": run_script(cpus, "gateway_fanout.py"),
    }
    if memory_minutes:
        minutes = str(memory_minutes)
        out["connector_memory"] = run_script(
            cpus, "connector_capture.py", "--mode", "memory", "--minutes", minutes
        )
        out["archiver_memory"] = run_script(
            cpus, "archiver_throughput.py", "--mode", "sustained", "--minutes", minutes
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller inputs, fewer repetitions")
    parser.add_argument(
        "--no-write", action="store_true", help="print only; leave RESULTS.md alone"
    )
    parser.add_argument(
        "--no-components", action="store_true", help="skip the connector, archiver and gateway"
    )
    parser.add_argument(
        "--memory-minutes",
        type=float,
        default=0,
        help="also run the connector's and archiver's memory soaks this long (10 = the targets)",
    )
    args = parser.parse_args()
    n, repeat = (20_000, 3) if args.quick else (200_000, 5)
    cpus = set(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else set()
    if cpus:
        os.sched_setaffinity(0, {min(cpus)})

    frames = frame_mix(n)
    trades = trades_only(n)
    results = {
        "normalize": bench_normalize(frames, repeat),
        "raw_archive": bench_raw_archive(frames, repeat),
        "normalized_archive": bench_normalized_archive(frames),
        "to_polars": bench_to_polars(trades, repeat),
        "dataset": bench_dataset(args.quick),
        "simulator": bench_simulator(cpus),
        "components": None if args.no_components else bench_components(cpus, args.memory_minutes),
    }
    report = render(results)
    print(report)
    if not args.no_write:
        (HERE / "RESULTS.md").write_text(report)


def render(r: dict[str, Any]) -> str:
    n = r["normalize"]
    a = r["raw_archive"]
    na = r["normalized_archive"]
    p = r["to_polars"]
    lines = [
        "# Benchmark results",
        "",
        f"- Date: {datetime.date.today().isoformat()}",
        f"- Command: `just bench{' ' + ' '.join(sys.argv[1:]) if sys.argv[1:] else ''}`"
        " (python benches/run.py); the hot paths pinned to one core",
        f"- Machine: {machine()}",
        f"- ssmd {core._core.__version__}, extension build: {core.build_profile}",
        "",
        "Every figure is the best of several runs; the runs of one table take turns, so ratios compare"
        " against a baseline measured in the same run and in the same spells of machine speed.",
        "",
        "## Normalize: parse + normalize + Cap'n Proto encode (era-C mix: 60% deltas, 20% tickers, 17% trades, 3% lifecycle)",
        "",
        "| path | frames/s | vs baseline |",
        "|---|---:|---:|",
        f"| ssmd._core.normalize_kalshi, batches of 1,024 frames | {n['by_batch'][1024]:,.0f} | {n['ratio']:.1f}x |",
        f"| same, batches of 64 frames | {n['by_batch'][64]:,.0f} | {n['by_batch'][64] / n['baseline_fps']:.1f}x |",
        f"| same, one batch of {n['frames']:,} frames | {n['by_batch'][n['frames']]:,.0f} | {n['by_batch'][n['frames']] / n['baseline_fps']:.1f}x |",
        f"| batches of 1,024, plus per-record routing tuples (`.records`) | {n['rust_routed_fps']:,.0f} | {n['rust_routed_fps'] / n['baseline_fps']:.1f}x |",
        f"| baseline: orjson + Decimal + pycapnp, per frame | {n['baseline_fps']:,.0f} | 1.0x |",
        "",
        f"Frames average {n['bytes_per_frame']:.0f} bytes of JSON; records {n['record_bytes_per_frame']:.0f} bytes packed.",
        "",
        "## Raw archive: JSONL lines through zstd (level 3, one frame per ~1 MiB)",
        "",
        "| codec | MB/s of input | compression ratio | bytes per frame |",
        "|---|---:|---:|---:|",
        f"| zstd level 3 (ssmd._core.ArchiveWriter) | {a['zstd_mb_s']:,.0f} | {a['zstd_ratio']:.1f} | {a['raw_zst_bytes_per_frame']:.1f} |",
        f"| gzip level 6 (Python gzip) | {a['gzip_mb_s']:,.0f} | {a['gzip_ratio']:.1f} | {a['raw_gz_bytes_per_frame']:.1f} |",
        "",
        f"zstd output is {a['zstd_vs_gzip_size']:.2f}x the size of gzip -6 output, written {a['zstd_mb_s'] / a['gzip_mb_s']:.1f}x faster ({a['input_mb']:.0f} MB input).",
        f"Normalized records (packed Cap'n Proto, zstd level 3): {na['norm_zst_bytes_per_frame']:.1f} bytes per frame.",
        "",
        "## Normalized archive to Polars",
        "",
        "| path | trade rows/s | vs baseline |",
        "|---|---:|---:|",
        f"| ssmd.records.archive_to_polars: frame by frame, zstd to Arrow columns in Rust, then pyarrow + polars.from_arrow; {p['rows']:,} trades ({p['archive_mb']:.1f} MB archive) | {p['rows_per_s']:,.0f} | {p['rows_per_s'] / p['baseline_rows_per_s']:.1f}x |",
        f"| its Rust part alone (ssmd.core.archive_to_columns) | {p['columns_rows_per_s']:,.0f} | {p['columns_rows_per_s'] / p['baseline_rows_per_s']:.1f}x |",
        f"| whole archive decompressed first: read_archive + to_polars | {p['whole_rows_per_s']:,.0f} | {p['whole_rows_per_s'] / p['baseline_rows_per_s']:.1f}x |",
        f"| read_archive alone (zstd decompression into one bytes object) | {p['read_archive_rows_per_s']:,.0f} | |",
        f"| baseline: read_archive + pycapnp per record + polars.DataFrame | {p['baseline_rows_per_s']:,.0f} | 1.0x |",
        "",
        f"A trade record is {p['packed_bytes_per_row']:.0f} bytes packed."
        + (
            f" The zstd tool decompresses these records at {p['zstd_cli_mb_s']:,.0f} MB/s on this machine,"
            f" so no reader of this format can exceed about {p['zstd_bound_rows_per_s']:,.0f} trade rows/s here."
            if p["zstd_bound_rows_per_s"]
            else ""
        ),
        "",
    ]
    lines += render_dataset(r["dataset"])
    sim = r["simulator"]
    if sim is not None:
        lines += [
            "## Simulator (benches/sim_throughput.py; server and client in two processes, both cores)",
            "",
            "```",
            str(sim),
            "```",
            "",
        ]
    if r["components"] is not None:
        lines += render_components(r["components"])
    return "\n".join(lines)


def render_dataset(d: dict[str, Any]) -> list[str]:
    se, b = d["scan_export"], d["book_at"]
    return [
        "## The archive as a dataset (ssmd.data; benches/dataset.py)",
        "",
        f"One day of {se['rows']:,} trades in {se['files']} sealed files ({se['archive_mb']:.1f} MB);"
        f" its Parquet export is {se['parquet_mb']:.1f} MB.",
        "",
        "| path | rows/s | vs baseline | target |",
        "|---|---:|---:|---|",
        f"| ssmd.data.scan of the Parquet export, collected | {se['scan_rows_per_s']:,.0f} | {se['scan_rows_per_s'] / se['archive_to_polars_rows_per_s']:.1f}x | ≥ 20,000,000 and ≥ 5x |",
        f"| baseline: archive_to_polars of the same archive files | {se['archive_to_polars_rows_per_s']:,.0f} | 1.0x | |",
        f"| ssmd data export of the day (read, sort, zstd Parquet) | {se['export_records_per_s']:,.0f} | {se['export_records_per_s'] / se['read_records_per_s']:.2f}x | ≥ 2,000,000 |",
        f"| baseline: reading the archive files alone | {se['read_records_per_s']:,.0f} | 1.0x | |",
        "",
        f"book_at in a day of {b['deltas']:,} deltas of one market, {b['samples']} random times once the"
        f" day is indexed ({b['index_s']:.1f} s, once per process): p50 {b['p50_ms']:.1f} ms,"
        f" p90 {b['p90_ms']:.1f} ms (target p50 < 50 ms); rebuilt from the day's snapshot instead:"
        f" p50 {b['rebuild_p50_ms']:.1f} ms ({b['rebuild_p50_ms'] / b['p50_ms']:.0f}x).",
        "",
        *render_history(d.get("history")),
    ]


def render_history(h: dict[str, Any] | None) -> list[str]:
    if not h:
        return []
    return [
        f"GET /v1/history/trade of the same day of {h['rows']:,} trades from the archive, over HTTP"
        f" (uvicorn and an httpx client reading the streamed body, in one process), pages of"
        f" {h['page_rows']:,} rows followed through `next`:",
        "",
        "| path | rows/s | vs baseline |",
        "|---|---:|---:|",
        *[
            f"| {fmt} | {h[f'{fmt}_rows_per_s']:,.0f} | {h[f'{fmt}_vs_scan']:.2f}x |"
            for fmt in ("ndjson", "csv", "json")
        ],
        f"| baseline: ssmd.data.scan of the day from the archive, collected | {h['scan_rows_per_s']:,.0f} | 1.0x |",
        "",
    ]


def _get(d: dict[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def fig(value: Any, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}{unit}"
    return f"{value:,.0f}{unit}" if isinstance(value, int | float) else f"{value}{unit}"


def gateway_rows(gw: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """gateway_fanout.py: the limit found by the ramp, 3x that, and the baseline's."""
    if "frames" not in gw:
        return [("gateway", "n/a", "", "gateway_fanout.py")]
    f, b = gw["frames"], gw.get("baseline") or {}
    cap = f.get("at_capacity") or {}
    bcap = b.get("at_capacity") or {}

    def over(o: dict[str, Any]) -> str:
        closed = sum((o.get("clients_closed") or {}).values())
        return (
            f"{fig(o.get('offered_per_s'))}; {fig(o.get('delivered_per_s'))}; "
            f"{fig(o.get('trade_p99_ms'))}; {fig(closed)}; {fig(o.get('conflated'))}; "
            f"{fig(o.get('gateway_stream_lag_max'))}"
        )

    x = fig(gw["overload_factor"])
    what = (
        "offered updates/s; delivered msgs/s; trade p99 of the clients that kept up (ms); "
        "clients closed; books conflated; most messages behind on the stream"
    )
    return [
        (
            f"gateway: {gw['clients']} clients x {gw['markets_per_client']} markets, capacity "
            "(every trade delivered, trade p99 ≤ 50 ms): updates/s; delivered msgs/s",
            f"{fig(f.get('capacity_updates_per_s'))}; {fig(cap.get('delivered_per_s'))}",
            "≥ 200,000 delivered",
            "gateway_fanout.py",
        ),
        (
            "gateway: publish → client p50 / p99 at capacity, trades (ms)",
            f"{fig(cap.get('trade_p50_ms'))} / {fig(cap.get('trade_p99_ms'))}",
            "p99 < 50",
            "",
        ),
        (
            f"gateway at {x}x the capacity's rate: {what}",
            over(f.get("overload_rate") or {}),
            "p99 < 50",
            "",
        ),
        (
            f"gateway at the capacity's rate, {x}x the subscriptions: {what}",
            over(f.get("overload_fanout") or {}),
            "p99 < 50",
            "",
        ),
        (
            "baseline, same run (uvicorn's stock protocol: one write per message per client): "
            f"capacity updates/s; delivered msgs/s; trade p99 at {x}x rate / {x}x subscriptions (ms)",
            f"{fig(b.get('capacity_updates_per_s'))}; {fig(bcap.get('delivered_per_s'))}; "
            f"{fig((b.get('overload_rate') or {}).get('trade_p99_ms'))} / "
            f"{fig((b.get('overload_fanout') or {}).get('trade_p99_ms'))}",
            "",
            "",
        ),
        (
            "gateway: memory per client at 2,000 updates/s / at capacity (KB); CPU share of "
            "gateway / clients / publisher / nats-server at capacity",
            f"{fig(f.get('memory_per_client_kb'))} / {fig(f.get('memory_per_client_at_capacity_kb'))}; "
            f"{fig(cap.get('gateway_cpu'))} / {fig(cap.get('clients_cpu'))} / "
            f"{fig(cap.get('publisher_cpu'))} / {fig(cap.get('nats_cpu'))}",
            "",
            "",
        ),
    ]


def render_components(c: dict[str, Any]) -> list[str]:
    conn, lat = c["connector"], c["connector_latency"]
    best = _get(conn, "throughput", "max_zero_loss_frames_per_s")
    runs = _get(conn, "throughput", "runs") or [{}]
    arch, sus, gw = c["archiver"], c["archiver_sustained"], c["gateway"]
    rows = [
        (
            "connector: highest simulator rate captured with zero loss (frames/s)",
            fig(best),
            "≥ 20,000",
            "connector_capture.py --mode throughput",
        ),
        (
            "connector: CPU per frame at that rate (µs)",
            fig(runs[-1].get("cpu_us_per_frame")),
            "",
            "",
        ),
        (
            "connector: frames rendered before the window, highest zero-loss rate, ssmd / "
            "the same connector publishing through nats-py's public API (frames/s)",
            f"{fig(_get(conn, 'throughput_preloaded', 'max_zero_loss_frames_per_s'))} / "
            f"{fig(_get(conn, 'baseline_nats_py_preloaded', 'max_zero_loss_frames_per_s'))} "
            f"({fig(conn.get('preloaded_vs_baseline'))}x)",
            "≥ 60,000",
            "connector_capture.py --mode throughput",
        ),
        (
            "connector: receive → PubAck at 1,000 frames/s, p50 / p99 (ms)",
            f"{fig(_get(lat, 'latency', 'latency_p50_ms'))} / {fig(_get(lat, 'latency', 'latency_p99_ms'))}",
            "p99 < 5",
            "connector_capture.py --mode latency",
        ),
        (
            "archiver: drain of a pre-filled stream (frames/s; 2 messages per frame)",
            fig(_get(arch, "throughput", "frames_per_s")),
            "≥ 50,000",
            "archiver_throughput.py --mode throughput",
        ),
        (
            "archiver: the same drain pulling through nats-py's public API (frames/s); ratio",
            f"{fig(_get(arch, 'baseline_nats_py', 'frames_per_s'))}; "
            f"{fig(arch.get('throughput_vs_baseline'))}x",
            "",
            "archiver_throughput.py --mode throughput",
        ),
        (
            "archiver: bytes per frame raw / normalized / gzip -6 JSONL",
            f"{fig(_get(arch, 'bytes', 'raw_zst_per_frame'))} / "
            f"{fig(_get(arch, 'bytes', 'normalized_zst_per_frame'))} / "
            f"{fig(_get(arch, 'bytes', 'gzip_jsonl_per_frame'))}",
            "report",
            "",
        ),
        (
            "archiver: 20,000 frames/s for 30 s from a publisher process, zero loss",
            fig(_get(sus, "sustained", "zero_loss")),
            "zero loss",
            "archiver_throughput.py --mode sustained --rate 20000",
        ),
    ]
    rows += gateway_rows(gw)
    if "connector_memory" in c:
        m = c["connector_memory"].get("memory", {})
        rows.append(
            (
                f"connector: RSS with {fig(m.get('markets'))} markets at full rate, first / last third (MB)",
                f"{fig(m.get('rss_mb_first_third_avg'))} / {fig(m.get('rss_mb_last_third_avg'))}",
                "< 300, flat",
                "connector_capture.py --mode memory --minutes N",
            )
        )
        a = c["archiver_memory"].get("sustained", {})
        thirds = a.get("rss_mb_thirds") or [None, None]
        rows.append(
            (
                "archiver: RSS at 20,000 frames/s, first / last third, peak (MB); zero loss",
                f"{fig(thirds[0])} / {fig(thirds[1])}, {fig(a.get('rss_mb_peak'))}; "
                f"{fig(a.get('zero_loss'))}",
                "flat",
                "archiver_throughput.py --mode sustained --minutes N",
            )
        )
    out = [
        "## Components (benches/connector_capture.py, archiver_throughput.py, gateway_fanout.py)",
        "",
        "Each runs as its own processes on both cores with a real nats-server (and the simulator",
        "for the connector), so the figures include the cost of sharing two cores.",
        "",
        "| measure | figure | target | script |",
        "|---|---:|---|---|",
    ]
    out += [f"| {a} | {b} | {t} | {s} |" for a, b, t, s in rows]
    errors = {k: v["error"] for k, v in c.items() if isinstance(v, dict) and "error" in v}
    if errors:
        out += ["", f"Failed: {errors}"]
    return [*out, ""]


if __name__ == "__main__":
    main()
