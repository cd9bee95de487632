"""The connector on polymarket-sim: every frame the simulator sent is in the stream once,
and the books rebuilt from the stream's normalized records equal the simulator's; a
corrupted book hash and a dropped connection are recovered from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pmfix import (
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
from ssmd.sim.polymarket import PolymarketSimulator

pytestmark = pytest.mark.slow


def _e6(value: Any) -> int:
    return int(value * 1_000_000)


def check_books(sim: PolymarketSimulator, msgs: list[Any]) -> None:
    books = core.BookSet()
    for m in msgs:
        if m.subject.startswith(f"{PREFIX}.orderbook."):
            books.apply(m.data)
    for token in sim.tokens():
        view = books.view(token)
        assert view is not None, token
        assert view.valid, token
        bids, asks = sim.levels(token)
        assert view.bids == [(_e6(p), _e6(s)) for p, s in bids], token
        assert view.asks == [(_e6(p), _e6(s)) for p, s in asks], token


async def _capture(tmp_path: Path, faults: list[str]) -> tuple[PolymarketSimulator, list[Any], Any]:
    async with (
        nats_server(tmp_path / "nats") as nats,
        PolymarketSimulator(markets=4, rate=100.0, seed=7) as sim,
    ):
        settings = settings_for(sim, nats, tmp_path)
        async with running(settings) as conn:
            tokens = len(sim.tokens())
            await until(
                lambda: sum(len(s.subscribed) for s in conn.shards.shards.values()) == tokens,
                15,
                "every token subscribed",
            )
            await until(lambda: sim.events > 100, 15, "order flow")
            for fault in faults:
                sim.inject(fault)
                await until(lambda: sim.events > 200, 15, "order flow after the fault")
            await until(lambda: sim.open_connections() != [], 15, "a connection after the faults")
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
            codec = conn.pipeline.codec
        async with client(nats.url) as nc:
            msgs = await read_stream(nc, STREAM)
    return sim, msgs, codec


async def test_capture_is_exact_and_books_equal_the_simulator(tmp_path: Path) -> None:
    sim, msgs, codec = await _capture(tmp_path, [])
    check_exactly_once(sim, msgs)
    check_books(sim, msgs)
    # Every book's hash reproduced (the listing gave the codec the fields it needs).
    assert codec.hashes[0] > 0 and codec.hashes[1] == 0


async def test_corrupt_hash_and_disconnect_are_recovered(tmp_path: Path) -> None:
    sim, msgs, codec = await _capture(tmp_path, ["corrupt_hash", "disconnect"])
    assert [f[0] for f in sim.faults_applied] == ["corrupt_hash", "disconnect"]
    check_exactly_once(sim, msgs)
    gaps = events(msgs, "gap")
    bad = sim.faults_applied[0][2]
    assert any(bad in g["tickers"] for g in gaps), gaps
    assert events(msgs, "resync"), "the fresh book made the token exact again"
    assert events(msgs, "disconnected")
    assert codec.hashes[1] == 1
    check_books(sim, msgs)
