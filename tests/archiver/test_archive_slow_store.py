"""A store that answers slowly does not let the stream outrun the archiver: fetching waits
while a seal check waits on the store, so the loop then consumes for at least as long
before it checks again (not one batch between checks, which a busy S3 made a crawl)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from _support.archfix import (
    T0_NS,
    Published,
    check_exactly_once,
    environment,
    make_stream,
    publish_frames,
    running,
    settings,
    until,
)
from ssmd.archiver import ConsumerSettings
from ssmd.store import keys
from ssmd.store.local import LocalObjectStore
from ssmd.testing.frames import frame_mix
from ssmd.testing.nats import client, nats_server

LATENCY = 1.0  # seconds the store takes to answer the gated put
BATCH = 50


class GatedStore(LocalObjectStore):
    """Puts of `key` wait, when armed, until the test opens the gate (one put each)."""

    def __init__(self, root: Path, key: str) -> None:
        super().__init__(root)
        self.key = key
        self.armed = False
        self.entered = threading.Event()  # a gated put is waiting
        self.opened = threading.Event()

    def put_atomic(self, key: str, data: bytes | Path) -> None:
        if key == self.key and self.armed:
            self.armed = False
            self.entered.set()
            self.opened.wait(60)
        super().put_atomic(key, data)

    def open(self, *, again: bool) -> None:
        """Let the waiting put through; with `again`, the next put of the key waits too."""
        opened, self.opened = self.opened, threading.Event()
        self.entered.clear()
        self.armed = again
        opened.set()


async def test_a_slow_seal_check_is_followed_by_as_long_consuming(tmp_path: Path) -> None:
    async with nats_server(tmp_path / "nats") as ns:
        env = environment(tmp_path, ns.url)
        await make_stream(ns.url, env)
        frames = frame_mix(600, seed=11, markets=4)
        rns = [T0_NS + i for i in range(len(frames))]  # an hour long past: due at once
        hour = keys.hour_of_ns(T0_NS)
        day = keys.day_of_ns(T0_NS)
        key = keys.raw_key(env.name, env.feed.name, "orderbook_delta", day, hour)
        raw = GatedStore(tmp_path / "raw", key)
        raw.armed = True
        s = settings(
            env,
            raw_store=raw,
            consumer=ConsumerSettings(batch=BATCH, expires=0.5, heartbeat=0.1),
        )
        pub = Published()
        async with running(s) as arc, client(ns.url) as nc:
            await publish_frames(nc, frames[:40], rns[:40], pub)
            await until(raw.entered.is_set, what="the first seal check waiting on the store")
            # Published while the check waits: many batches more than the loop fetches at once.
            await publish_frames(nc, frames[40:], rns[40:], pub, frame_base=40)
            await asyncio.sleep(LATENCY)  # the store's answer takes this long
            raw.open(again=True)
            await until(raw.entered.is_set, what="the next seal check")
            written, last = arc.written.last_seq, pub.last_seq
            took = arc.seal_check_seconds
            raw.open(again=False)
            await until(lambda: not arc.spool.files and arc.written.last_seq >= pub.last_seq)
        assert took >= LATENCY
        # Everything published while the store was slow was written before the next check.
        assert written == last, f"{last - written} messages left for after the next check"
        check_exactly_once(env, pub, (raw, s.normalized_store))
