"""`POST /control/seal`: the archiver seals every spooled file now, the open hour's and
day's too, and writes the manifests; data of those files that comes after is appended at
the next seal, each frame once. Only POST, only from this machine."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import orjson

from _support.archfix import (
    Published,
    check_exactly_once,
    environment,
    make_stream,
    publish_frames,
    raw_lines,
    running,
    settings,
    stores,
    until,
)
from ssmd.archiver.manifest import read_manifest
from ssmd.store import keys
from ssmd.testing.frames import frame_mix
from ssmd.testing.nats import client, nats_server


async def test_seal_now_seals_the_open_hour_and_appends_what_comes_after(tmp_path: Path) -> None:
    async with nats_server(tmp_path / "nats") as ns:
        env = environment(tmp_path, ns.url)
        await make_stream(ns.url, env)
        pub = Published()
        frames = frame_mix(120)
        now = time.time_ns()
        rns = [now + i for i in range(len(frames))]  # this hour: not due for an hour
        s = settings(env, seal_grace=3600.0, health_port=0)
        async with running(s) as arc, client(ns.url) as nc:
            await publish_frames(nc, frames[:60], rns[:60], pub)
            await until(lambda: arc.stats.batches > 0 and arc.written.last_seq >= pub.last_seq)
            assert arc.spool.files and arc.stats.sealed == 0  # nothing due yet
            assert arc.health_server is not None
            url = f"http://127.0.0.1:{arc.health_server.port}/control/seal"
            async with httpx.AsyncClient(timeout=30) as http:
                assert (await http.get(url)).status_code == 405  # an action is POSTed
                r = await http.post(url)
                assert r.status_code == 200, r.text
                answer = r.json()
                assert answer["sealed"] > 0 and answer["spooled_files"] == 0
                assert answer["manifests_written"] is True and answer["store_outages"] == []
                check_exactly_once(env, pub)  # everything so far is in sealed files
                raw_store, _ = stores(env)
                day = keys.day_of_ns(now)
                manifest = read_manifest(raw_store, env.name, env.feed.name, "raw", day)
                assert manifest is not None and manifest["files"]
                # the same hour goes on: the next seal appends to the sealed objects
                await publish_frames(nc, frames[60:], rns[60:], pub, frame_base=60)
                await until(lambda: arc.written.last_seq >= pub.last_seq)
                r = await http.post(url)
                assert r.status_code == 200 and r.json()["sealed"] > 0
            check_exactly_once(env, pub)
            seqs = [orjson.loads(line)["seq"] for _, line in raw_lines(raw_store)]
            assert sorted(seqs) == sorted(pub.raw)
