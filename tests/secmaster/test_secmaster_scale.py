"""A 150,000-market universe synced by `ssmd market sync` within a memory budget.

The simulator builds every market with an order book in memory and sorts the whole
universe on each REST page, so this test serves generated pages from a minimal REST
fake instead (aiohttp, free port, pages computed from the cursor, nothing stored).
The sync runs as a child process so its own peak RSS can be measured (os.wait4).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from aiohttp import web

ROOT = Path(__file__).resolve().parents[2]
N_MARKETS = 150_000
PER_EVENT = 10
N_SERIES = 50
RSS_BUDGET_MB = 200


def series_of(i: int) -> str:
    return f"KXGEN{i * N_SERIES // N_MARKETS:02d}"


def market(i: int) -> dict[str, object]:
    event = f"{series_of(i)}-26JUL20E{i // PER_EVENT:05d}"
    return {
        "ticker": f"{event}-T{i}.99",
        "event_ticker": event,
        "market_type": "binary",
        "title": f"Generated market {i}",
        "yes_sub_title": f"{i}.99 or above",
        "no_sub_title": f"{i}.99 or above",
        "open_time": "2026-07-19T21:00:00Z",
        "close_time": "2026-07-27T21:00:00Z",
        "status": ("active", "initialized", "closed", "determined", "finalized")[i % 5],
        "yes_bid_dollars": "0.3400",
        "last_price_dollars": "0.3500",
        "volume_fp": f"{i}.25",
        "result": "yes" if i % 5 in (3, 4) else "",
        "settlement_value_dollars": "1.0000" if i % 5 in (3, 4) else None,
        "strike_type": "greater",
        "floor_strike": i + 0.99,
        "price_level_structure": "linear_cent",
        "price_ranges": [{"start": "0.0000", "end": "1.0000", "step": "0.0100"}],
        "rules_primary": "If the generated value is above the strike, resolves Yes.",
    }


def event(j: int) -> dict[str, object]:
    s = series_of(j * PER_EVENT)
    return {
        "event_ticker": f"{s}-26JUL20E{j:05d}",
        "series_ticker": s,
        "title": f"Event {j}",
        "sub_title": "",
    }


def page(request: web.Request, total: int, default: int) -> tuple[int, int, str]:
    start = int(request.query.get("cursor") or 0)
    limit = int(request.query.get("limit") or default)
    end = min(total, start + limit)
    return start, end, str(end) if end < total else ""


async def markets(request: web.Request) -> web.Response:
    start, end, cursor = page(request, N_MARKETS, 100)
    body = {"markets": [market(i) for i in range(start, end)], "cursor": cursor}
    return web.Response(body=orjson.dumps(body), content_type="application/json")


async def events(request: web.Request) -> web.Response:
    start, end, cursor = page(request, N_MARKETS // PER_EVENT, 200)
    body = {"events": [event(j) for j in range(start, end)], "cursor": cursor}
    return web.Response(body=orjson.dumps(body), content_type="application/json")


async def series(request: web.Request) -> web.Response:
    items = [
        {"ticker": f"KXGEN{k:02d}", "title": f"Series {k}", "category": ("Crypto", "Sports")[k % 2]}
        for k in range(N_SERIES)
    ]
    return web.Response(body=orjson.dumps({"series": items}), content_type="application/json")


# Runs `ssmd ...` and, at exit, writes the process's own peak RSS (VmHWM, KiB) to
# $PEAK_FILE. The child's rusage ru_maxrss would not do: Linux carries the parent's
# high-water mark through fork and exec into it, so it reports the test process's peak.
PEAK_WRAPPER = """
import atexit, os, re, sys
def _peak():
    status = open("/proc/self/status").read()
    open(os.environ["PEAK_FILE"], "w").write(re.search(r"VmHWM:\\s+(\\d+)", status).group(1))
atexit.register(_peak)
from ssmd.cli import main
sys.argv = ["ssmd", *sys.argv[1:]]
main()
"""


def run_sync(args: list[str], env: dict[str, str], peak_file: Path) -> tuple[int, int, bytes]:
    """(exit code, peak RSS of the child itself in KiB, stdout) of one run of `ssmd args`."""
    proc = subprocess.run(
        [sys.executable, "-c", PEAK_WRAPPER, *args],
        env={**env, "PEAK_FILE": str(peak_file)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
        check=False,
    )
    return proc.returncode, int(peak_file.read_text()), proc.stdout


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_150k_markets_within_memory_budget(tmp_path: Path) -> None:
    app = web.Application()
    app.router.add_get("/trade-api/v2/markets", markets)
    app.router.add_get("/trade-api/v2/events", events)
    app.router.add_get("/trade-api/v2/series", series)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        env = {
            **os.environ,
            "SSMD_DATA_DIR": str(tmp_path),
            "SSMD_CONFIG_DIR": str(ROOT / "exchanges"),
        }
        args = [
            "market",
            "sync",
            "--env",
            "kalshi-sim",
            "--all",
            "--no-journal",
            "--json",
            "--log-level",
            "WARNING",
            "--rest-url",
            f"http://127.0.0.1:{port}/trade-api/v2",
        ]
        t0 = time.monotonic()
        code, rss_kib, out = await asyncio.to_thread(run_sync, args, env, tmp_path / "peak1")
        seconds = time.monotonic() - t0
        assert code == 0, out
        report = orjson.loads(out)
        rss_mb = rss_kib / 1024
        print(f"\n150k sync: {seconds:.1f} s wall, peak RSS {rss_mb:.0f} MB, report {report}")
        assert report["markets"] == N_MARKETS and report["created"]["market"] == N_MARKETS
        assert rss_mb < RSS_BUDGET_MB
        db = sqlite3.connect(tmp_path / "secmaster.sqlite3")
        assert db.execute("SELECT COUNT(*) FROM markets").fetchone()[0] == N_MARKETS
        assert (
            db.execute("SELECT COUNT(*) FROM markets WHERE status = 'settled'").fetchone()[0]
            == N_MARKETS // 5
        )
        assert (
            db.execute("SELECT COUNT(*) FROM markets WHERE category = 'Sports'").fetchone()[0]
            == N_MARKETS // 2
        )
        db.close()
        # the second run writes nothing
        code, rss2, out = await asyncio.to_thread(run_sync, args, env, tmp_path / "peak2")
        assert code == 0
        again = orjson.loads(out)
        assert sum(again["created"].values()) + sum(again["updated"].values()) == 0
        print(f"second run: {again['seconds']} s, peak RSS {rss2 / 1024:.0f} MB")
    finally:
        await runner.cleanup()
