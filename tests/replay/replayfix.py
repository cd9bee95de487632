"""Helpers for replay tests: a plan over the session's capture, and an archiver run on a
replay environment until it has stored everything the replay published."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats

from _support import ROOT
from _support.archfix import running, settings, until
from _support.datafix import Capture
from ssmd.config import ResolvedEnvironment
from ssmd.data.source import Dataset
from ssmd.replay.runner import ReplayPlan, plan
from ssmd.replay.source import Entry
from ssmd.testing.nats import NatsServer, nats_server

CONFIG = ROOT / "exchanges"


def replay_plan(cap: Capture, day: str, nats_url: str, **kw: Any) -> ReplayPlan:
    kw.setdefault("speed", None)
    kw.setdefault("replay_id", "t1")
    kw.setdefault("config_dir", CONFIG)
    kw.setdefault("data_dir", cap.data_dir)
    return plan(cap.env.name, day, nats_url=nats_url, **kw)


def dataset(env: ResolvedEnvironment) -> Dataset:
    from ssmd.data.inventory import Archive

    return Dataset(Archive.from_environment(env), env.feed.metadata.name, env.data_dir)


@contextlib.asynccontextmanager
async def server(tmp: Path) -> AsyncIterator[NatsServer]:
    async with nats_server(tmp / "nats") as s:
        yield s


async def stream_last_seq(url: str, stream: str) -> int:
    nc = await nats.connect(url)
    try:
        info = await nc.jetstream().stream_info(stream)
        return int(info.state.last_seq)
    finally:
        await nc.close()


async def archive_replay(env: ResolvedEnvironment, url: str) -> None:
    """Run the archiver on the replay environment until its consumer has acked the whole
    stream and the spool is sealed."""
    last = await stream_last_seq(url, env.nats.stream)

    async def done(arc: Any) -> bool:
        nc = await nats.connect(url)
        try:
            ci = await nc.jetstream().consumer_info(env.nats.stream, "archiver")
        except nats.js.errors.NotFoundError:
            return False
        finally:
            await nc.close()
        floor = ci.ack_floor.stream_seq if ci.ack_floor else 0
        return bool(floor >= last and not arc.spool.files)

    async with running(settings(env)) as arc:
        await until(lambda: done(arc), what="the replay archived")


class Recorder:
    """A target that keeps what it is sent; `gate`, when set, holds each send until the
    test opens it (to act on the replay while a batch is in flight)."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.book_records: list[tuple[str, bytes]] = []
        self.gate: Any = None
        self.in_send: Any = None
        self.started = False
        self.stopped = False

    async def start(self) -> None:
        self.started = True

    async def ready(self) -> None:
        pass

    async def books(self, records: list[tuple[str, bytes]]) -> None:
        self.book_records += records

    async def send(self, entries: list[Entry]) -> None:
        if self.gate is not None:
            self.in_send.set()
            await self.gate.wait()
        self.entries += entries

    async def stop(self) -> bool:
        self.stopped = True
        return True

    def state(self) -> dict[str, Any]:
        return {"received": len(self.entries)}
