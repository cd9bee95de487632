"""`ssmd data backfill` against the simulator: a capture whose connector was killed for
a while (a gap), its missing trades fetched from the simulator's REST API, the union
equal to the simulator's own trades.

The simulator runs on a manual clock; its trades go through the normalizer, NATS and
the archiver as the connector publishes them, with the connector's run heartbeats,
except for the frames received while the connector was dead. The run's heartbeats
stop (killed: no `stopped`), and a new run connects later: the archiver's manifests
hold a `connector_crashed` gap.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest
from typer.testing import CliRunner

import ssmd.data
from _support import ROOT
from _support.archfix import (
    Published,
    archive_until_acked,
    environment,
    make_stream,
    publish_event,
    publish_frames,
    settings,
)
from _support.datafix import ENV, SEC
from _support.simhelp import client
from ssmd import core
from ssmd.cli import app
from ssmd.config import ResolvedEnvironment
from ssmd.data.backfill import BOOKS_NOT_BACKFILLED, BackfillSummary, backfill
from ssmd.data.source import Dataset
from ssmd.sim import ManualClock, Simulator
from ssmd.store import keys
from ssmd.testing.nats import client as nats_client
from ssmd.testing.nats import nats_server
from ssmd.venues.kalshi.rest import RestClient

pytestmark = pytest.mark.xdist_group("data_api")

START = datetime(2026, 7, 20, 12, 0, 0, tzinfo=UTC).timestamp()
DAY = date(2026, 7, 20)
SECONDS = 60
KILLED, BACK = 32.5, 45.0  # seconds after START: the connector dead in between
HEARTBEAT = 5  # seconds between a run's heartbeats


@dataclass
class Killed:
    env: ResolvedEnvironment
    frames: list[bytes] = field(default_factory=list)
    receive_ns: list[int] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)  # frames never published
    truth: list[dict[str, Any]] = field(default_factory=list)  # the simulator's trades
    first: BackfillSummary | None = None
    second: BackfillSummary | None = None
    files_after_first: dict[str, str] = field(default_factory=dict)  # key -> sha256
    cli: Any = None
    paged: list[dict[str, Any]] = field(default_factory=list)  # REST trades, 3 a page
    page_requests: int = 0


def _ns(seconds: float) -> int:
    return round((START + seconds) * SEC)


async def _simulate(sim: Simulator, k: Killed) -> None:
    clock = sim.clock
    assert isinstance(clock, ManualClock)
    tickers = sorted(m.ticker for m in sim.universe.active())
    async with client(sim) as c:
        await c.send("subscribe", {"channels": ["trade"], "market_tickers": tickers})
        await c.drain(sim)
        for step in range(SECONDS + 1):
            if step:
                clock.advance(1.0)
                await c.drain(sim)
            opened = sorted({m.ticker for m in sim.universe.active()} - set(tickers))
            if opened:
                tickers += opened
                await c.send("subscribe", {"channels": ["trade"], "market_tickers": opened})
                await c.drain(sim)
            new = c.raw[len(k.frames) :]
            at = round(clock.now() * SEC)
            k.frames += [r.encode() for r in new]
            k.receive_ns += [at + i for i in range(len(new))]


async def _archive(k: Killed, url: str) -> None:
    """Publish as two connector runs would: the first killed at KILLED, the second
    connected at BACK; the frames received in between are lost."""
    await make_stream(url, k.env)
    pub = Published()
    k.dropped = [i for i, ns in enumerate(k.receive_ns) if _ns(KILLED) <= ns < _ns(BACK)]
    before = [i for i, ns in enumerate(k.receive_ns) if ns < _ns(KILLED)]
    after = [i for i, ns in enumerate(k.receive_ns) if ns >= _ns(BACK)]

    async def event(nc: Any, at: int, **rec: Any) -> None:
        await publish_event(nc, pub, receive_ts=at, exchange_ts=at, **rec)

    async with nats_client(url) as nc:
        await event(nc, _ns(0), event="heartbeat", conn_id=1, duration_ns=HEARTBEAT * SEC)
        await event(nc, _ns(0) + 1, event="connected", conn_id=7, shard=0)
        await publish_frames(
            nc, [k.frames[i] for i in before], [k.receive_ns[i] for i in before], pub
        )
        for beat in range(HEARTBEAT, int(KILLED), HEARTBEAT):
            await event(nc, _ns(beat), event="heartbeat", conn_id=1, duration_ns=HEARTBEAT * SEC)
        await event(nc, _ns(BACK), event="heartbeat", conn_id=2, duration_ns=HEARTBEAT * SEC)
        await event(nc, _ns(BACK) + 1, event="connected", conn_id=8, shard=0)
        await publish_frames(
            nc, [k.frames[i] for i in after], [k.receive_ns[i] for i in after], pub, conn_id=8
        )
        for beat in range(int(BACK) + HEARTBEAT, SECONDS + 1, HEARTBEAT):
            await event(nc, _ns(beat), event="heartbeat", conn_id=2, duration_ns=HEARTBEAT * SEC)
    await archive_until_acked(settings(k.env), url, pub.last_seq)


def _files(ds: Dataset) -> dict[str, str]:
    store = ds.archive.normalized_store
    prefix = keys.normalized_day_prefix(ds.env, ds.feed, keys.backfill_type("trade"), DAY)
    return {o.key: hashlib.sha256(store.get(o.key)).hexdigest() for o in store.list(prefix)}


async def _run(tmp: Path) -> Killed:
    sim = Simulator(clock=ManualClock(START), seed=5, rate=20.0, markets=8)
    async with sim:
        k = Killed(None)  # type: ignore[arg-type]
        await _simulate(sim, k)
        async with nats_server(tmp / "nats") as server:
            k.env = environment(tmp / "data", server.url, rest_url=sim.rest_url)
            await _archive(k, server.url)
        ds = Dataset.from_environment(k.env)
        async with RestClient(sim.rest_url, backoff_base=0.01, backoff_cap=0.2) as rest:
            k.first = await backfill(ds, DAY, rest)
            k.files_after_first = _files(ds)
            k.second = await backfill(ds, DAY, rest)
            asked = rest.requests
            window = {"min_ts": int(START) + 10, "max_ts": int(START) + 20, "limit": 3}
            k.paged = [t async for t in rest.paged("/markets/trades", "trades", window)]
            k.page_requests = rest.requests - asked
        args = ["data", "backfill", "--env", ENV, "--date", DAY.isoformat()]
        args += ["--data-dir", str(tmp / "data"), "--config-dir", str(ROOT / "exchanges")]
        k.cli = await asyncio.to_thread(
            CliRunner().invoke, app, args, env={"SSMD_KALSHI_REST_URL": sim.rest_url}
        )
        k.truth = list(sim.flow.trades)
    return k


@pytest.fixture(scope="module")
def killed(tmp_path_factory: pytest.TempPathFactory) -> Killed:
    return asyncio.run(_run(tmp_path_factory.mktemp("killed")))


def _trades(k: Killed) -> pl.DataFrame:
    return ssmd.data.scan("trade", DAY, env=ENV, data_dir=k.env.data_dir).collect()


def test_the_union_is_the_simulators_trades(killed: Killed) -> None:
    trades = _trades(killed)
    ids = trades.get_column("trade_id").to_list()
    assert len(ids) == len(set(ids)), "a trade is read once, live or backfilled"
    assert set(ids) == {t["trade_id"] for t in killed.truth}
    lost = core.normalize_kalshi(
        [killed.frames[i] for i in killed.dropped],
        [killed.receive_ns[i] for i in killed.dropped],
        0,
    )
    lost_ids = {r["trade_id"] for r in core.decode_records(lost.data) if r["kind"] == "trade"}
    assert lost_ids, "the kill lost some trades"
    backfilled = trades.filter(pl.col("source") == "rest_backfill")
    assert set(backfilled.get_column("trade_id").to_list()) == lost_ids
    assert set(trades.filter(pl.col("source") == "live").get_column("trade_id")).isdisjoint(
        lost_ids
    )


def test_backfilled_trades_are_those_the_websocket_would_have_given(killed: Killed) -> None:
    """Every field but the receive time and connection: the same normalizer, the same
    values (the exchange time to the millisecond Kalshi gives)."""
    lost = core.normalize_kalshi(
        [killed.frames[i] for i in killed.dropped],
        [killed.receive_ns[i] for i in killed.dropped],
        0,
    )
    columns = ["ticker", "price_e6", "no_price_e6", "size_e6", "taker_outcome", "is_block_trade"]
    want = {r["trade_id"]: r for r in core.decode_records(lost.data) if r["kind"] == "trade"}
    rows = _trades(killed).filter(pl.col("source") == "rest_backfill").to_dicts()
    for row in rows:
        live = want[row["trade_id"]]
        assert {c: row[c] for c in columns} == {c: live[c] for c in columns}
        exchange_ns = int(row["exchange_ts"].timestamp() * 1e3) * 1_000_000
        assert abs(exchange_ns - live["exchange_ts"]) <= 1_000_000
        assert row["conn_id"] == 0 and row["seq"] == 0


def test_the_gap_stays_and_is_marked_backfilled(killed: Killed) -> None:
    ds = Dataset.from_environment(killed.env)
    gaps = ds.archive.gaps(ds.feed, DAY)
    # The kill; and the capture's end (the second run's heartbeats stop too).
    gap = next(g for g in gaps if g["start_ns"] <= _ns(KILLED) < g["end_ns"])
    assert gap["reason"] == "connector_crashed" and gap["end_ns"] >= _ns(BACK)
    assert killed.first is not None
    assert gap["backfilled"]["trades"] == killed.first.added == len(killed.dropped) > 0
    assert gap["backfilled"]["source"] == "rest_backfill"
    quality = ds.archive.quality(ds.feed, DAY)
    assert all(g["backfilled"]["trades"] == 0 for g in gaps if g is not gap)
    assert quality["gaps"] == len(gaps) == quality["gaps_backfilled"]
    manifest = ds.manifest(keys.backfill_type("trade"), DAY)
    assert manifest is not None and manifest[0]["source"] == "rest_backfill"
    assert manifest[0]["record_count"] == killed.first.added
    row = next(
        r for r in ds.archive.inventory(ds.feed, DAY, DAY) if r["data_type"] == "trade_backfill"
    )
    assert row["records"] == killed.first.added


def test_running_it_again_adds_nothing(killed: Killed) -> None:
    assert killed.second is not None and killed.first is not None
    assert killed.first.fetched >= killed.first.added > 0
    assert killed.second.added == 0 and killed.second.files == []
    assert killed.second.manifest is None
    assert killed.second.fetched == killed.first.fetched
    ds = Dataset.from_environment(killed.env)
    assert _files(ds) == killed.files_after_first
    assert killed.cli.exit_code == 0, killed.cli.output
    assert "0 trades" in killed.cli.stdout and BOOKS_NOT_BACKFILLED in killed.cli.stdout
    assert "connector_crashed" in killed.cli.stdout


def test_a_day_without_data_names_the_days_with_some(killed: Killed) -> None:
    result = CliRunner().invoke(
        app,
        [
            *["data", "backfill", "--env", ENV, "--date", "2026-07-01"],
            *["--data-dir", str(killed.env.data_dir), "--config-dir", str(ROOT / "exchanges")],
        ],
        env={"SSMD_KALSHI_REST_URL": "http://127.0.0.1:9"},
    )
    assert result.exit_code == 1
    assert "no data" in result.stderr and DAY.isoformat() in result.stderr


def test_the_simulators_trades_endpoint_pages_with_min_and_max(killed: Killed) -> None:
    """Newest first, min_ts/max_ts inclusive Unix seconds, 3 a page through the cursor."""
    lo, hi = int(START) + 10, int(START) + 20
    want = [t["trade_id"] for t in reversed(killed.truth) if lo <= t["ts"] <= hi]
    assert len(want) > 6
    assert [t["trade_id"] for t in killed.paged] == want
    assert killed.page_requests == -(-len(want) // 3)
    assert all(t["created_time"].endswith("Z") and "." in t["created_time"] for t in killed.paged)


def test_an_export_made_before_the_backfill_is_not_read_after_it(
    killed: Killed, tmp_path: Path
) -> None:
    """A backfill changes the day's trade digest: scan reads the archive (with the
    backfilled trades) instead of the older export, and the export writes the day again."""
    data = tmp_path / "data"
    shutil.copytree(killed.env.data_dir, data)
    prefix = keys.normalized_type_prefix(ENV, killed.env.feed.name, keys.backfill_type("trade"))
    held = data / "normalized" / prefix
    assert held.is_dir()
    shutil.move(held, tmp_path / "held")  # the archive as it was before the backfill
    common = ["--env", ENV, "--data-dir", str(data), "--config-dir", str(ROOT / "exchanges")]
    export = ["data", "export", *common, "--from", DAY.isoformat(), "--type", "trade", "--json"]
    first = CliRunner().invoke(app, export)
    assert first.exit_code == 0, first.output
    assert orjson.loads(first.stdout)["written"] == [f"trade/{DAY}"]
    before = ssmd.data.scan("trade", DAY, env=ENV, data_dir=data).collect()
    assert set(before.get_column("source")) == {"live"}
    shutil.move(tmp_path / "held", held)
    after = ssmd.data.scan("trade", DAY, env=ENV, data_dir=data).collect()
    assert after.height > before.height
    assert set(after.get_column("trade_id")) == {t["trade_id"] for t in killed.truth}
    again = CliRunner().invoke(app, export)
    assert orjson.loads(again.stdout)["written"] == [f"trade/{DAY}"]
    exported = pl.read_parquet(
        data / "export" / ENV / killed.env.feed.name / f"type=trade/date={DAY}"
    )
    assert exported.filter(pl.col("source") == "rest_backfill").height == len(killed.dropped)
