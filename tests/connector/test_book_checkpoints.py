"""Book checkpoints: a reader that joins the stream late restores the books from the
latest checkpoints and applies only what follows them, and ends exact."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from _support import kalshi_fixture
from _support.connfix import (
    check_books,
    drive,
    manual_sim,
    open_markets,
    running,
    settings_for,
    stream_messages,
)
from ssmd import core
from ssmd.bus import subjects
from ssmd.connector.capture_queue import Item
from ssmd.connector.pipeline import Pipeline
from ssmd.testing import until
from ssmd.testing.connector import PREFIX, streaming, tickers_symbols
from ssmd.testing.nats import nats_server


def _rounds(msgs: list[Any]) -> dict[int, list[int]]:
    """Checkpoint round (its receive time) -> positions of its messages in the stream,
    while capturing: the stop closes the connections, so the round after it says every
    book is invalid (and its connection's seq state is gone)."""
    out: dict[int, list[int]] = defaultdict(list)
    closed: list[int] = []
    for i, m in enumerate(msgs):
        if m.subject.startswith(f"{PREFIX}.book."):
            (rec,) = core.decode_records(m.data)
            assert rec["kind"] == "book" and rec["conn_id"] > 0
            if rec["valid"]:
                assert rec["seq"] > 0
                out[int(rec["receive_ts"])].append(i)
            else:
                closed.append(i)
    assert closed and min(closed) > max(max(pos) for pos in out.values())
    return out


async def test_a_late_reader_restores_books_from_checkpoints(tmp_path: Path) -> None:
    sim, _clock = manual_sim(seed=11)
    async with nats_server(tmp_path / "nats") as srv, sim:
        tickers = open_markets(sim, 6)
        settings = settings_for(
            sim,
            srv,
            tmp_path,
            symbols=tickers_symbols(tickers),
            checkpoint_interval=0.0,
            checkpoint_full_every=4,
        )
        async with running(settings) as conn:
            await until(lambda: streaming(conn, 6), what="subscribed")
            await drive(sim, conn, 12)
            # Then steps of 0.1 s (about 10 actions over the simulator's 40 markets), each
            # published before the next, so that a round holds only what its step changed
            # however the connector batches under load.
            for _ in range(10):
                await drive(sim, conn, 0.1, step=0.1)
        msgs = await stream_messages(srv.url)
    check_books(sim, msgs, tickers)
    rounds = _rounds(msgs)
    assert len(rounds) >= 4
    # The first round holds every book; later rounds only the books that changed.
    first = min(rounds)
    assert len(rounds[first]) == len(tickers)
    assert any(len(pos) < len(tickers) for pos in rounds.values())

    # Join at each round in turn: what a late reader sees is the last checkpoint of
    # each book up to the end of that round, then everything from the round's start.
    for ts in sorted(rounds)[1 :: max(1, len(rounds) // 5)]:
        start, end = min(rounds[ts]), max(rounds[ts])
        latest: dict[str, int] = {}
        for i, m in enumerate(msgs[: end + 1]):
            if m.subject.startswith(f"{PREFIX}.book."):
                latest[m.subject] = i
        late = core.BookSet()
        for i in sorted(latest.values()):
            late.apply(msgs[i].data)
        for m in msgs[start:]:
            if m.subject.startswith((f"{PREFIX}.orderbook.", f"{PREFIX}.book.")):
                late.apply(m.data)
        for t in tickers:
            view = late.view(t)
            assert view is not None and view.valid, (ts, t)
        full = core.BookSet()
        for m in msgs:
            if m.subject.startswith(f"{PREFIX}.orderbook."):
                full.apply(m.data)
        assert [late.view(t) for t in tickers] == [full.view(t) for t in tickers]


def test_a_lost_connection_is_in_the_next_checkpoint_as_invalid() -> None:
    pipeline = Pipeline("kalshi-sim", "kalshi")
    pipeline.process([Item(5, 1, 1_000, kalshi_fixture("orderbook_snapshot_c"))])
    (first,) = pipeline.checkpoint(2_000)
    (rec,) = core.decode_records(first.payload)
    assert rec["valid"] and rec["conn_id"] == 5
    assert first.subject == subjects.record("kalshi-sim", "kalshi", "book", rec["ticker"])
    assert pipeline.checkpoint(3_000) == []  # nothing changed
    gone = core.encode_records(
        [{"kind": "connector_event", "event": "disconnected", "receive_ts": 4_000, "conn_id": 5}]
    )
    pipeline.process([Item(9, 1, 4_000, gone, "disconnected")])
    (after,) = pipeline.checkpoint(5_000)
    (rec,) = core.decode_records(after.payload)
    assert not rec["valid"] and rec["ticker"] == first.msg_id.split(":", 2)[2]
