"""The connector on kraken-sim: every frame the simulator sent is in the stream once, and
the books rebuilt from the stream's normalized records equal the simulator's; a corrupted
checksum, a missed update, bad frames and a dropped connection are recovered from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from krfix import (
    PREFIX,
    STREAM,
    client,
    events,
    nats_server,
    read_stream,
    running,
    settings_for,
    until,
)

from _support.venuefix import check_exactly_once
from ssmd import core
from ssmd.sim.kraken import KrakenSimulator

pytestmark = pytest.mark.slow


def _e6(units: int, decimals: int) -> int:
    """Units of 10^-decimals as the nearest 1e-6 (half away from zero), as records do."""
    if decimals <= 6:
        return units * 10 ** (6 - decimals)
    div = 10 ** (decimals - 6)
    return (units + div // 2) // div


def check_books(sim: KrakenSimulator, msgs: list[Any]) -> None:
    books = core.BookSet()
    for m in msgs:
        if m.subject.startswith(f"{PREFIX}.orderbook."):
            books.apply(m.data)
    for symbol in sim.symbols():
        view = books.view(symbol)
        assert view is not None, symbol
        assert view.valid, symbol
        pair = sim.pair(symbol)
        bids, asks = sim.levels(symbol, 10)

        pd, qd = pair.price_decimals, pair.qty_decimals
        assert view.bids == [(_e6(p, pd), _e6(q, qd)) for p, q in bids], symbol
        assert view.asks == [(_e6(p, pd), _e6(q, qd)) for p, q in asks], symbol


async def _capture(tmp_path: Path, faults: list[str]) -> tuple[KrakenSimulator, list[Any], Any]:
    async with (
        nats_server(tmp_path / "nats") as nats,
        KrakenSimulator(pairs=4, rate=100.0, seed=7) as sim,
    ):
        settings = settings_for(sim, nats, tmp_path)
        async with running(settings) as conn:
            symbols = len(sim.symbols())
            await until(
                lambda: sum(len(s.subscribed) for s in conn.shards.shards.values()) == symbols,
                15,
                "every pair subscribed",
            )
            await until(lambda: sim.events > 100, 15, "order flow")
            for fault in faults:
                before = sim.events
                sim.inject(fault)
                await until(
                    lambda before=before: sim.events > before + 100,
                    15,
                    "order flow after the fault",
                )
            await until(lambda: sim.open_connections() != [], 15, "a connection after the faults")
            codec = conn.pipeline.codec
            await until(
                lambda: all((b := codec.book(s)) is not None and b[0] for s in sim.symbols()),
                15,
                "every book exact again",
            )
            # Stop the flow, then let the connector publish all that was sent.
            await sim.pause()
            await until(
                lambda: (
                    conn.frames_in >= sum(sim.frames_sent.values())
                    and conn.queue.empty()
                    and conn.publisher is not None
                    and conn.publisher.inflight == 0
                ),
                30,
                "connector to publish everything sent",
            )
        async with client(nats.url) as nc:
            msgs = await read_stream(nc, STREAM)
    return sim, msgs, codec


async def test_capture_is_exact_and_books_equal_the_simulator(tmp_path: Path) -> None:
    sim, msgs, codec = await _capture(tmp_path, [])
    check_exactly_once(sim, msgs)
    check_books(sim, msgs)
    assert codec.checksum_mismatches == 0
    assert events(msgs, "gap") == []
    # The global shard carried the instrument channel: the pairs' reference data.
    assert any(m.subject.startswith(f"{PREFIX}.status.") for m in msgs)


async def test_checksum_faults_bad_frames_and_a_disconnect_are_recovered(tmp_path: Path) -> None:
    faults = ["corrupt_checksum", "missed_update", "malformed_frame", "unknown_type", "disconnect"]
    sim, msgs, codec = await _capture(tmp_path, faults)
    assert set(faults) <= {f[0] for f in sim.faults_applied}
    check_exactly_once(sim, msgs)
    gaps = events(msgs, "gap")
    broken = {f[2] for f in sim.faults_applied if f[0] in ("corrupt_checksum", "missed_update")}
    assert broken and broken <= {t for g in gaps for t in g["tickers"]}, (broken, gaps)
    assert events(msgs, "resync"), "fresh snapshots made the books exact again"
    assert events(msgs, "disconnected")
    assert codec.checksum_mismatches >= len(broken)
    check_books(sim, msgs)


async def test_a_refused_resubscription_and_a_venue_error_are_reported_and_recovered(
    tmp_path: Path,
) -> None:
    # The corrupted checksum makes the connector ask a fresh book, and the venue refuses
    # that subscription once: it is asked again and the book comes back.
    faults = ["venue_error", "reject_subscription", "corrupt_checksum"]
    sim, msgs, _ = await _capture(tmp_path, faults)
    assert set(faults) <= {f[0] for f in sim.faults_applied}
    check_exactly_once(sim, msgs)
    reasons = [e["reason"] for e in events(msgs, "error")]
    assert any("Exceeded msg rate" in r for r in reasons), reasons
    assert any("Subscription rejected" in r for r in reasons), reasons
    assert events(msgs, "gap") and events(msgs, "resync")
    check_books(sim, msgs)
