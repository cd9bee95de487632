"""End to end against the simulator and a real nats-server: the stream holds every frame
exactly once, books rebuilt from it are exact, and connection events are recorded."""

from __future__ import annotations

from pathlib import Path

from _support.connfix import (
    check_books,
    check_exactly_once,
    drive,
    events,
    manual_sim,
    open_markets,
    running,
    settings_for,
    stream_messages,
)
from ssmd.bus import subjects
from ssmd.testing import until
from ssmd.testing.connector import PREFIX, streaming, tickers_symbols
from ssmd.testing.nats import nats_server


async def test_one_shard_exactly_once_and_exact_books(tmp_path: Path) -> None:
    sim, _clock = manual_sim(seed=3)
    async with nats_server(tmp_path / "nats") as srv, sim:
        tickers = open_markets(sim, 8)
        settings = settings_for(sim, srv, tmp_path, symbols=tickers_symbols(tickers))
        async with running(settings) as conn:
            await until(lambda: streaming(conn, 8), what="subscribed")
            await drive(sim, conn, 10)
        msgs = await stream_messages(srv.url)
    by_conn = check_exactly_once(sim, msgs)
    assert len(by_conn) == 2  # the market shard and the global (lifecycle) shard
    check_books(sim, msgs, tickers)
    # Raw frames are bytes as received, with provenance headers; normalized subjects escape tickers.
    raw = [m for m in msgs if ".raw." in m.subject]
    assert all(int(m.headers["Ssmd-Receive-Ns"]) > 0 for m in raw)
    norm = {m.subject for m in msgs if m.subject.startswith(f"{PREFIX}.trade.")}
    assert norm and all(subjects.unescape_token(s.split(".")[-1]) in tickers for s in norm)
    assert len(events(msgs, "connected")) == 2
