"""The nats target: an archived day published into the replay environment's stream,
archived again by the unchanged archiver, equals the original frame for frame."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats
import polars as pl
import pytest
from replayfix import archive_replay, dataset, replay_plan, server

import ssmd.data
from _support.datafix import DAY2, Capture
from ssmd import core
from ssmd.bus import subjects
from ssmd.data.query import window
from ssmd.data.stream import raw_frames
from ssmd.replay.nats import EXCHANGE_HEADER, NatsTarget
from ssmd.replay.runner import Replay

pytestmark = pytest.mark.xdist_group("replay")

KINDS = ["trade", "book_delta", "book_level", "ticker", "connector_event"]


def test_raw_frames_stream_in_receive_order(captured: Capture) -> None:
    ds = dataset(captured.env)
    day = window("2026-07-20", "2026-07-21")
    streamed = list(raw_frames(ds, day.start_ns, day.end_ns))
    table = ssmd.data.raw("2026-07-20", "2026-07-21", dataset=ds).collect()
    table = table.sort(["receive_ts", "stream_seq"])
    assert [f.frame for f in streamed] == table["frame"].to_list()
    assert [f.receive_ns for f in streamed] == captured.receive_ns
    assert [f.frame for f in streamed] == captured.frames


def test_replay_to_nats_archives_to_the_same_day(captured: Capture, tmp_path: Path) -> None:
    async def main() -> None:
        async with server(tmp_path) as nats_srv:
            p = replay_plan(captured, DAY2.isoformat(), nats_srv.url)
            assert p.replay.name == "kalshi-sim-replay-t1"
            assert p.replay.nats.stream == "SSMD_KALSHI_SIM_REPLAY_T1"
            assert p.replay.nats.stream != captured.env.nats.stream
            seen: list[nats.aio.msg.Msg] = []
            nc = await nats.connect(nats_srv.url)
            raw_subject = subjects.raw(p.replay.name, "kalshi", "trade")

            async def keep(msg: nats.aio.msg.Msg) -> None:
                seen.append(msg)

            await nc.subscribe(raw_subject, cb=keep)
            target = NatsTarget(p.replay)
            await Replay(p, target).run()
            await nc.flush()
            await archive_replay(p.replay, nats_srv.url)
            await nc.close()
            _check_headers(seen)

    asyncio.run(main())
    original, replayed = dataset(captured.env), dataset(_replay_env(captured))
    a = ssmd.data.raw(DAY2.isoformat(), dataset=original, include_open=False).collect()
    b = ssmd.data.raw(DAY2.isoformat(), dataset=replayed).collect()
    order = ["receive_ts", "stream_seq"]
    same = ["receive_ts", "msgtype", "conn_id", "frame"]
    assert a.height > 1000
    assert a.sort(order).select(same).equals(b.sort(order).select(same))
    for kind in KINDS:
        x = ssmd.data.scan(kind, DAY2.isoformat(), dataset=original, include_open=False).collect()
        y = ssmd.data.scan(kind, DAY2.isoformat(), dataset=replayed).collect()
        assert x.height > 0, kind
        assert x.sort(x.columns).equals(y.sort(y.columns)), kind
    gaps = ssmd.data.scan("connector_event", DAY2.isoformat(), dataset=replayed).collect()
    assert gaps.filter(pl.col("event") == "gap")["tickers"].to_list() == [captured.gap_ticker]


def _check_headers(seen: list[nats.aio.msg.Msg]) -> None:
    """Raw trades carry their original receive time and the trade's exchange time."""
    assert seen
    for msg in seen:
        headers = msg.headers or {}
        receive = int(headers[core.RECEIVE_HEADER])
        assert DAY2.isoformat() == ssmd.data.query._iso(receive)[:10]
        (rec,) = [r for r in core.decode_records(_normalized(msg.data, receive)) if r]
        assert int(headers[EXCHANGE_HEADER]) == rec["exchange_ts"]


def _normalized(frame: bytes, receive_ns: int) -> bytes:
    return core.normalize_kalshi([frame], [receive_ns], 7).data


def _replay_env(cap: Capture) -> ssmd.config.ResolvedEnvironment:
    from ssmd.replay.env import replay_environment

    return replay_environment(cap.env, "t1")
