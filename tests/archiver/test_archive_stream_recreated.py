"""The stream deleted and created again: its sequences start over. The archiver must not
take the new stream's first messages for redeliveries of the old one's (which share
their sequence numbers), and must lose nothing of either."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from _support.archfix import (
    STREAM,
    T0_NS,
    Published,
    ack_floor,
    environment,
    make_stream,
    publish_frames,
    raw_lines,
    settings,
    stores,
    until,
)
from ssmd.archiver import Archiver
from ssmd.config import ResolvedEnvironment
from ssmd.exceptions import StreamRecreatedError
from ssmd.testing.frames import frame_mix
from ssmd.testing.nats import client, nats_server

S = 1_000_000_000


def archived(env: ResolvedEnvironment) -> list[tuple[int, int]]:
    """(stream sequence, receive ns) of every raw line archived: the receive times of the
    two streams' frames differ, their sequences do not."""
    raw_store, _ = stores(env)
    return [
        (obj["seq"], obj["rns"])
        for obj in map(orjson.loads, (ln for _, ln in raw_lines(raw_store)))
    ]


def published(*pubs: Published) -> list[tuple[int, int]]:
    return [(seq, rns) for p in pubs for seq, (_, _, rns) in p.raw.items()]


async def recreate(url: str, env: ResolvedEnvironment) -> None:
    async with client(url) as nc:
        await nc.jetstream().delete_stream(STREAM)
    await make_stream(url, env)


async def archive(arc: Archiver, url: str, pub: Published, now: list[int]) -> None:
    """Run `arc` until it acked all of `pub`, then until the clock moved past the day
    has sealed everything."""
    stop = asyncio.Event()
    task = asyncio.create_task(arc.run(stop))
    try:
        await until(lambda: ack_floor_is(url, pub.last_seq), what="everything acked")
        now[0] = T0_NS + 2 * 86_400 * S
        await until(lambda: not arc.spool.files, what="everything sealed")
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def ack_floor_is(url: str, seq: int) -> bool:
    return await ack_floor(url) >= seq


async def _old_stream(tmp: Path, url: str, seed: int) -> tuple[ResolvedEnvironment, Published]:
    """The environment, its stream, and 60 frames published to it."""
    env = environment(tmp, url)
    await make_stream(url, env)
    old = Published()
    async with client(url) as nc:
        await publish_frames(nc, frame_mix(60, seed=seed), [T0_NS + i for i in range(60)], old)
    return env, old


async def _new_stream(url: str, env: ResolvedEnvironment, seed: int) -> Published:
    """The stream deleted and made again, and 40 other frames published to it."""
    await recreate(url, env)
    new = Published()
    async with client(url) as nc:
        receive = [T0_NS + 100 + i for i in range(40)]
        await publish_frames(nc, frame_mix(40, seed=seed), receive, new, frame_base=500)
    return new


async def test_a_start_on_a_stream_created_again_seals_the_old_and_takes_all_the_new(
    tmp_path: Path,
) -> None:
    async with nats_server(tmp_path / "nats") as ns:
        env, old = await _old_stream(tmp_path, ns.url, seed=1)
        now = [T0_NS + 60 * S]  # the hour is open: what was archived stays in the spool
        first = Archiver(settings(env, clock=lambda: now[0]))
        stop = asyncio.Event()
        task = asyncio.create_task(first.run(stop))
        await until(lambda: ack_floor_is(ns.url, old.last_seq), what="the old stream acked")
        stop.set()
        await asyncio.wait_for(task, 30)
        assert first.spool.files, "nothing left spooled: the test would prove nothing"

        new = await _new_stream(ns.url, env, seed=2)
        assert set(new.raw) & set(old.raw), "the new stream's sequences must meet the old ones'"
        second = Archiver(settings(env, clock=lambda: now[0]))
        await archive(second, ns.url, new, now)

        assert sorted(archived(env)) == sorted(published(old, new))
        assert second.stats.streams_recreated == 1
        assert second.stats.duplicates == 0


async def test_a_stream_created_again_under_a_running_archiver_stops_it_and_loses_nothing(
    tmp_path: Path,
) -> None:
    async with nats_server(tmp_path / "nats") as ns:
        env, old = await _old_stream(tmp_path, ns.url, seed=3)
        now = [T0_NS + 60 * S]
        first = Archiver(settings(env, clock=lambda: now[0]))
        task = asyncio.create_task(first.run(asyncio.Event()))
        await until(lambda: ack_floor_is(ns.url, old.last_seq), what="the old stream acked")
        new = await _new_stream(ns.url, env, seed=4)
        with pytest.raises(StreamRecreatedError, match="was created again"):
            await asyncio.wait_for(task, 30)

        second = Archiver(settings(env, clock=lambda: now[0]))
        await archive(second, ns.url, new, now)
        assert sorted(archived(env)) == sorted(published(old, new))
        assert second.stats.streams_recreated == 1 and second.stats.duplicates == 0
