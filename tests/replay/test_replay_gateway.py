"""The gateway target: a gateway on the replay stream serves the day's books and trades
as the live one did, the books of markets whose snapshot came the day before included."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from replayfix import replay_plan, server

import ssmd.data
from _support.archfix import until
from _support.datafix import DAY2, SEC, Capture
from _support.gwfix import Client
from ssmd.data.query import window
from ssmd.exceptions import DataError
from ssmd.replay.gateway import GatewayTarget
from ssmd.replay.runner import Replay

pytestmark = pytest.mark.xdist_group("replay")


def _get(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as err:  # /v1/health answers 503 with its reasons
        return json.loads(err.read())


def test_gateway_on_a_replay_serves_the_books_from_the_day_before(
    captured: Capture, tmp_path: Path
) -> None:
    ds = _ds(captured)
    until_ns = window(DAY2).start_ns + 5 * SEC  # the day-1 markets settle just after
    # A market whose snapshot came the day before, its book as it stood then.
    books = {t: _book(ds, t, until_ns - 1) for t in captured.tickers[:10]}
    ticker = next(t for t, b in books.items() if b is not None and b.valid and b.bids)
    book = books[ticker]
    assert book is not None and book.snapshot_ns is not None
    assert book.snapshot_ns < window(DAY2).start_ns

    async def main() -> None:
        async with server(tmp_path) as nats_srv:
            p = replay_plan(captured, DAY2.isoformat(), nats_srv.url, end=str(until_ns))
            target = GatewayTarget(p.replay, port=0)
            replay = Replay(p, target)
            stop = asyncio.Event()
            task = asyncio.create_task(replay.run(stop, linger=True))
            await asyncio.wait_for(replay.done.wait(), 60)
            url = f"ws://127.0.0.1:{target.port}/v1/stream?symbols={ticker}"

            async def book_served() -> bool:
                async with Client.connect(url) as client:
                    msg = await client.recv_until(lambda m: m["type"] == "orderbook")
                bids = [b[0] for b in msg["bids"]]
                return bool(msg["valid"] and bids == [round(p / 1e6, 6) for p, _ in book.bids])

            await until(book_served, what="the gateway to serve the book of the archive")
            status = await asyncio.to_thread(_get, f"http://127.0.0.1:{target.port}/v1/health")
            assert status["nats"]["stream"] == p.replay.nats.stream
            # Records carry the archive's times: the gateway finds them old, and says so.
            assert all(" old " in why for why in status["problems"]), status["problems"]
            stop.set()
            await asyncio.wait_for(task, 30)

    asyncio.run(main())


def _ds(cap: Capture) -> Any:
    from replayfix import dataset

    return dataset(cap.env)


def _book(ds: Any, ticker: str, at_ns: int) -> Any:
    try:
        return ssmd.data.book_at(ticker, at_ns, dataset=ds)
    except DataError:
        return None  # no order-book records that day
