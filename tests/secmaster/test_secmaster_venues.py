"""The security master for Polymarket and Kraken: `ssmd market sync` reads each venue's
simulator listing into the store as rows of that venue (exact precision, the venue's own
status word), a second run changes nothing, a market that closes or leaves the listing is
reconciled, a listing that cannot be read or was not read to its end closes nothing, and
`ssmd market live` refuses a venue whose stream has no lifecycle records.
(The store's side, on SQLite and PostgreSQL: tests/secmaster/test_secmaster_db.py.)"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from _support import ROOT
from ssmd.cli import app
from ssmd.config import Overrides, ResolvedEnvironment, load_environment
from ssmd.exceptions import RestError
from ssmd.secmaster import sync_environment
from ssmd.secmaster.db import open_store
from ssmd.secmaster.listing import UNLISTED, Listed, ListingSync
from ssmd.secmaster.sync import SyncRun
from ssmd.sim.kraken import KrakenSimulator
from ssmd.sim.polymarket import PolymarketSimulator


def environment(name: str, data_dir: Path, rest_url: str) -> ResolvedEnvironment:
    return load_environment(
        name, ROOT / "exchanges", Overrides(data_dir=str(data_dir), rest_url=rest_url)
    )


def stored(env: ResolvedEnvironment) -> dict[str, dict[str, object]]:
    with open_store(env) as store:
        return {str(r["ticker"]): r for r in store.markets(venue=env.feed.name)}


async def sync(env: ResolvedEnvironment, *, everything: bool = False) -> dict[str, object]:
    report = await sync_environment(env, everything=everything, journal=False, redis=False)
    return report.as_dict()


async def test_polymarket_tokens_are_stored_with_their_market_and_reconciled(
    tmp_path: Path,
) -> None:
    async with PolymarketSimulator(markets=6, rate=None) as sim:
        env = environment("polymarket-sim", tmp_path, sim.rest_url)
        first = await sync(env)
        # polymarket-sim selects simulated-event-0..3 by slug: both tokens of each.
        chosen = [m for m in sim.markets if m.slug in env.symbols.tickers]
        assert len(chosen) == 4
        rows = stored(env)
        assert set(rows) == {t for m in chosen for t in m.tokens}
        assert first["markets"] == 8 and first["created"]["market"] == 8
        m = chosen[0]
        yes, no = rows[m.yes_token], rows[m.no_token]
        assert (yes["venue"], yes["event_ticker"], yes["venue_id"]) == (
            "polymarket",
            m.condition_id,
            m.gamma_id,
        )
        assert (yes["title"], yes["subtitle"]) == (m.question, m.slug)
        assert (yes["yes_sub_title"], yes["no_sub_title"]) == ("Yes", "No")
        assert (no["yes_sub_title"], no["no_sub_title"]) == ("No", "Yes")
        assert (yes["status"], yes["status_text"]) == ("open", "active")
        assert Decimal(str(yes["tick_size"])) == m.tick
        assert yes["price_decimals"] == -m.tick.normalize().as_tuple().exponent
        assert yes["min_order_size"] == m.min_order_size
        fields = orjson.loads(str(yes["venue_fields"]))
        assert fields == {
            "condition_id": m.condition_id,
            "neg_risk": m.neg_risk,
            "outcome_index": 0,
            "tokens": list(m.tokens),
        }
        assert yes["close_time"] == "2027-01-01T00:00:00Z"

        again = await sync(env)
        assert again["created"] == again["updated"] == {"series": 0, "event": 0, "market": 0}

        m.closed = True  # the market closes: it leaves the open listing
        closed = await sync(env)
        assert closed["reconciled"] == 2 and closed["vanished"] == 0
        rows = stored(env)
        assert {(rows[t]["status"], rows[t]["status_text"]) for t in m.tokens} == {
            ("closed", "closed")
        }
        with open_store(env) as store:
            changes = [
                (h["field"], h["new_value"]) for h in store.history(m.yes_token, "polymarket")
            ]
        assert ("status", "closed") in changes

        everything = await sync(env, everything=True)
        assert everything["created"]["market"] == 4  # the two markets not selected
        assert len(stored(env)) == 12


async def test_kraken_pairs_keep_their_precision_and_leave_as_unlisted(tmp_path: Path) -> None:
    async with KrakenSimulator(pairs=6, rate=None) as sim:
        env = environment("kraken-sim", tmp_path, sim.rest_url)
        report = await sync(env)
        rows = stored(env)
        assert set(rows) == set(env.symbols.tickers) and report["markets"] == 4
        for pair in sim.pairs:
            if pair.symbol not in rows:
                continue
            row = rows[pair.symbol]
            assert (row["venue"], row["venue_id"], row["series_ticker"]) == (
                "kraken",
                pair.key,
                pair.base,
            )
            assert (row["price_decimals"], row["size_decimals"]) == (
                pair.price_decimals,
                pair.qty_decimals,
            )
            assert Decimal(str(row["tick_size"])) == Decimal(1).scaleb(-pair.price_decimals)
            assert (row["status"], row["status_text"], row["market_type"]) == (
                "open",
                "online",
                "spot",
            )

        btc = next(p for p in sim.pairs if p.symbol == "BTC/USD")
        btc.status = "cancel_only"
        eth = next(p for p in sim.pairs if p.symbol == "ETH/USD")
        sim.pairs.remove(eth)  # delisted: gone from AssetPairs
        report = await sync(env)
        rows = stored(env)
        assert (rows["BTC/USD"]["status"], rows["BTC/USD"]["status_text"]) == (
            "halted",
            "cancel_only",
        )
        assert (rows["ETH/USD"]["status"], rows["ETH/USD"]["status_text"]) == ("closed", UNLISTED)
        assert report["vanished"] == 1 and report["updated"]["market"] == 2


async def test_a_venue_listing_is_synced_by_the_cli_and_live_updates_are_refused(
    tmp_path: Path,
) -> None:
    async with KrakenSimulator(pairs=4, rate=None) as sim:
        args = ["--env", "kraken-sim", "--config-dir", str(ROOT / "exchanges")]
        args += ["--data-dir", str(tmp_path)]
        runner = CliRunner()
        # In a worker thread: the command runs its own event loop, the simulator this one.
        done = await asyncio.to_thread(
            runner.invoke,
            app,
            ["market", "sync", *args, "--rest-url", sim.rest_url, "--no-journal", "--json"],
        )
        assert done.exit_code == 0, done.output
        assert orjson.loads(done.stdout)["created"]["market"] == 4
        listed = runner.invoke(app, ["market", "list", *args, "--json"])
        assert {m["ticker"] for m in orjson.loads(listed.stdout)} == {p.symbol for p in sim.pairs}
    live = runner.invoke(app, ["market", "live", *args, "--nats-url", "nats://127.0.0.1:1"])
    assert live.exit_code == 2
    assert "kraken's stream carries no market lifecycle records" in live.stderr


async def test_an_unreadable_listing_fails_the_sync_and_changes_nothing(tmp_path: Path) -> None:
    async with KrakenSimulator(pairs=4, rate=None) as sim:
        await sync(environment("kraken-sim", tmp_path, sim.rest_url))
        before = stored(environment("kraken-sim", tmp_path, sim.rest_url))
        wrong = environment("kraken-sim", tmp_path, sim.rest_url + "/nowhere")
        with pytest.raises(RestError, match="HTTP 404"):
            await sync(wrong)
        # Nothing was taken for unlisted: a listing that was not read says nothing.
        assert stored(wrong) == before
        assert {r["status"] for r in before.values()} == {"open"}


async def test_an_incomplete_listing_reconciles_nothing(tmp_path: Path) -> None:
    async with KrakenSimulator(pairs=4, rate=None) as sim:
        env = environment("kraken-sim", tmp_path, sim.rest_url)
        await sync(env)
        rows = [r for r in stored(env).values() if r["ticker"] != "BTC/USD"]

        async def cut_short(rest_url: str, symbols: object) -> Listed:
            return Listed(rows, {str(r["ticker"]) for r in rows}, complete=False)

        with open_store(env) as store:
            report = await ListingSync("kraken", cut_short)(SyncRun(store, "", env.symbols))
        assert report.vanished == 0 and report.changes == 0
        assert stored(env)["BTC/USD"]["status"] == "open"  # not carried, yet not closed
