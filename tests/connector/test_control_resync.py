"""`POST /control/resync?ticker=T` on the connector's health port: a fresh order-book
snapshot of that one market from the exchange, on its shard's subscription; the other
markets get none. Unknown or missing markets are refused with the reason."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson

from _support.connfix import (
    check_books,
    drive,
    manual_sim,
    open_markets,
    running,
    settings_for,
    stream_messages,
)
from ssmd.bus import subjects
from ssmd.testing import until
from ssmd.testing.connector import streaming, tickers_symbols
from ssmd.testing.nats import nats_server


def snapshots(msgs: list[object]) -> list[str]:
    """The market of every raw order-book snapshot frame in the stream, in order."""
    subject = subjects.raw("kalshi-sim", "kalshi", "orderbook_snapshot")
    return [
        orjson.loads(m.data)["msg"]["market_ticker"]  # type: ignore[attr-defined]
        for m in msgs
        if m.subject == subject  # type: ignore[attr-defined]
    ]


async def test_resync_asks_for_one_markets_snapshot(tmp_path: Path) -> None:
    sim, _ = manual_sim(seed=21)
    async with nats_server(tmp_path / "nats") as srv, sim:
        tickers = open_markets(sim, 3)
        settings = settings_for(sim, srv, tmp_path, symbols=tickers_symbols(tickers),
                                health_port=0)  # fmt: skip
        async with running(settings) as conn:
            await until(lambda: streaming(conn, 3))
            await drive(sim, conn, 1)
            before = snapshots(await stream_messages(srv.url))
            assert sorted(before) == sorted(tickers)  # one each, at subscription
            assert conn.health_server is not None
            url = f"http://127.0.0.1:{conn.health_server.port}/control/resync"
            async with httpx.AsyncClient(timeout=10) as http:
                r = await http.post(url, params={"ticker": tickers[1]})
                assert r.status_code == 200, r.text
                answer = r.json()
                assert answer["ticker"] == tickers[1] and answer["requested"] is True
                assert answer["shard"] == conn.shards.owner[tickers[1]].number
                await drive(sim, conn, 1)
                r = await http.post(url, params={"ticker": "NOPE-26DEC03-T1"})
                assert r.status_code == 404 and "not subscribed" in r.json()["error"]
                r = await http.post(url)
                assert r.status_code == 400 and "ticker=" in r.json()["error"]
        msgs = await stream_messages(srv.url)
    after = snapshots(msgs)
    assert after[: len(before)] == before
    assert after[len(before) :] == [tickers[1]]
    check_books(sim, msgs, tickers)  # the books still match the exchange's
