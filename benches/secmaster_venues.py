"""The security master's sync of a listing venue: `ssmd market sync --all` of Polymarket's
simulator listing (`--markets` markets, two token rows each) into a fresh SQLite store,
then again with nothing changed, against writing the same rows with `Store.apply_markets`
alone into another fresh store in the same run (the store's share of the sync).

    .venv/bin/python benches/secmaster_venues.py [--markets 5000]

Runs on its own (not part of `just bench`); prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from ssmd.config import Overrides, load_environment
from ssmd.secmaster import sync_environment
from ssmd.secmaster.db import Store
from ssmd.secmaster.listing import PAGE
from ssmd.sim.polymarket import PolymarketSimulator
from ssmd.venues.polymarket.markets import market_rows
from ssmd.venues.polymarket.rest import list_markets

EXCHANGES = Path(__file__).resolve().parents[1] / "exchanges"


async def measure(markets: int) -> dict[str, Any]:
    async with PolymarketSimulator(markets=markets, rate=None, record_frames=False) as sim:
        with tempfile.TemporaryDirectory() as tmp:
            env = load_environment(
                "polymarket-sim", EXCHANGES, Overrides(data_dir=tmp, rest_url=sim.rest_url)
            )
            t0 = time.perf_counter()
            first = await sync_environment(env, everything=True, journal=False, redis=False)
            t1 = time.perf_counter()
            second = await sync_environment(env, everything=True, journal=False, redis=False)
            t2 = time.perf_counter()
            assert first.created["market"] == 2 * markets and second.changes == 0
            rows = [r for m in (await list_markets(sim.rest_url)).markets for r in market_rows(m)]
            with Store.open(Path(tmp) / "alone.sqlite3") as store:
                store.migrate()
                t3 = time.perf_counter()
                for i in range(0, len(rows), PAGE):
                    store.apply_markets(rows[i : i + PAGE])
                t4 = time.perf_counter()
                assert store.count("markets") == 2 * markets
    sync_s, again_s, alone_s = t1 - t0, t2 - t1, t4 - t3
    return {
        "markets": markets,
        "rows": 2 * markets,
        "requests": first.pages,
        "sync_s": round(sync_s, 3),
        "sync_rows_per_s": round(2 * markets / sync_s),
        "unchanged_sync_s": round(again_s, 3),
        "store_alone_s": round(alone_s, 3),
        "store_alone_rows_per_s": round(2 * markets / alone_s),
        "sync_vs_store_alone": round(sync_s / alone_s, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--markets", type=int, default=5000)
    args = ap.parse_args()
    out = asyncio.run(measure(args.markets))
    out["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version()}
    print(json.dumps({"bench": "secmaster_venues", **out}))


if __name__ == "__main__":
    main()
