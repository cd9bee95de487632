"""The kalshi target: the project's connector captures a replay of a captured day, and
the second archive holds the first one's frames; errors and auth as the simulator's."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import pytest
import websockets
from replayfix import CONFIG, dataset, replay_plan, server

import ssmd.data
from _support.archfix import ack_floor, settings, until
from _support.archfix import running as archiving
from _support.connfix import running
from _support.datafix import DAY1, Capture
from ssmd.config import Overrides, load_environment
from ssmd.config.models.environment import Symbols
from ssmd.connector.runner import Settings
from ssmd.replay.kalshi import KalshiTarget
from ssmd.replay.runner import Replay
from ssmd.sim import DEMO_KEY_ID, DEMO_PRIVATE_KEY_PATH
from ssmd.venues.kalshi import auth
from ssmd.venues.kalshi.ws import Liveness

pytestmark = pytest.mark.xdist_group("replay")

REPLIES = ("subscribed", "ok", "error", "unsubscribed")
_SID = re.compile(rb'"sid":\d+')


def _frames(table: Any) -> dict[str, list[bytes]]:
    """Data frames by kind, in receive order (replies to commands left out)."""
    out: dict[str, list[bytes]] = {}
    for row in table.sort(["receive_ts", "stream_seq"]).iter_rows(named=True):
        if row["msgtype"] not in REPLIES:
            out.setdefault(row["msgtype"], []).append(row["frame"])
    return out


def test_the_connector_captures_a_replay_as_the_original(captured: Capture, tmp_path: Path) -> None:
    start = time.time()

    async def main() -> Any:
        async with server(tmp_path) as nats_srv:
            p = replay_plan(captured, DAY1.isoformat(), nats_srv.url, speed=10.0)
            target = KalshiTarget(p, port=0)
            replay = Replay(p, target)
            stop = asyncio.Event()
            task = asyncio.create_task(replay.run(stop, linger=True))
            while target._server is None:
                await asyncio.sleep(0.01)
            env = load_environment(
                "kalshi-sim",
                CONFIG,
                Overrides(
                    ws_url=target.ws_url,
                    rest_url=target.rest_url,
                    nats_url=nats_srv.url,
                    data_dir=str(tmp_path / "second"),
                ),
                environ={
                    "KALSHI_API_KEY": DEMO_KEY_ID,
                    "KALSHI_PRIVATE_KEY_PATH": str(DEMO_PRIVATE_KEY_PATH),
                },
            )
            day1 = sorted(
                ssmd.data.scan("book_delta", DAY1.isoformat(), dataset=p.ds)
                .collect()["ticker"]
                .unique()
            )
            s = Settings.from_environment(
                env,
                symbols=Symbols(tickers=day1, statuses=["open"]),
                liveness=Liveness(ping_interval=5.0, ping_timeout=5.0, stale_after=30.0),
                backoff_base=0.05,
                backoff_cap=0.5,
            )
            async with running(s) as conn:
                await asyncio.wait_for(replay.done.wait(), 120)
                await asyncio.wait_for(conn.publisher.flush(30), 40)  # type: ignore[union-attr]
                last = conn.publisher.published  # type: ignore[union-attr]
            assert last > 0
            stop.set()
            await asyncio.wait_for(task, 30)
            js = __import__("nats").connect
            nc = await js(nats_srv.url)
            info = await nc.jetstream().stream_info(env.nats.stream)
            await nc.close()
            last_seq = info.state.last_seq
            async with archiving(settings(env)):  # today is open: it stays in the spool
                await until(lambda: _acked(nats_srv.url, last_seq), what="the capture archived")
            return env

    env = asyncio.run(main())
    second = dataset(env)
    today = time.strftime("%Y-%m-%d", time.gmtime(start))
    got = _frames(ssmd.data.raw(today, dataset=second).collect())
    want = _frames(
        ssmd.data.raw(DAY1.isoformat(), dataset=dataset(captured.env), include_open=False).collect()
    )
    assert set(got) == set(want)
    assert sum(len(f) for f in want.values()) > 1000
    for kind, frames in want.items():
        # Sids are numbered by each connection in its own order of subscribing (the
        # connector reads lifecycle on a connection of its own): all else is the same.
        assert [_SID.sub(b"", f) for f in got[kind]] == [_SID.sub(b"", f) for f in frames], kind


async def _acked(url: str, last_seq: int) -> bool:
    return await ack_floor(url) >= last_seq


def test_unknown_market_and_bad_auth_are_answered_as_kalshi(
    captured: Capture, tmp_path: Path
) -> None:
    async def main() -> None:
        p = replay_plan(captured, DAY1.isoformat(), "nats://127.0.0.1:9")
        target = KalshiTarget(p, port=0)
        await target.start()
        try:
            with pytest.raises(websockets.exceptions.InvalidStatus, match="401"):
                async with websockets.connect(target.ws_url):
                    pass
            headers = auth.auth_headers(
                DEMO_KEY_ID, auth.load_private_key(DEMO_PRIVATE_KEY_PATH), "GET", "/trade-api/ws/v2"
            )
            async with websockets.connect(target.ws_url, additional_headers=headers) as ws:
                await ws.send(
                    '{"id":1,"cmd":"subscribe","params":{"channels":["orderbook_delta"],"market_tickers":["NOPE-1"]}}'
                )
                reply = await asyncio.wait_for(ws.recv(), 10)
            assert '"code":16' in reply and "Market not found" in reply and "NOPE-1" in reply
        finally:
            await target.stop()

    asyncio.run(main())
