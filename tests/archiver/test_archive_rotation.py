"""Midnight rotation, restart mid-day, duplicate delivery and a NATS restart."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import orjson

from _support.archfix import (
    T0_NS,
    Published,
    ack_floor,
    archive_until_acked,
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
from ssmd import core
from ssmd.archiver import Archiver
from ssmd.archiver.manifest import read_manifest
from ssmd.store import keys
from ssmd.testing.frames import frame_mix
from ssmd.testing.nats import client, nats_server

S = 1_000_000_000
MIDNIGHT = 1_784_592_000 * S  # 2026-07-21 00:00:00 UTC


async def test_midnight_rotation_by_receive_time(tmp_path: Path) -> None:
    async with nats_server(tmp_path / "nats") as ns:
        env = environment(tmp_path, ns.url)
        await make_stream(ns.url, env)
        pub = Published()
        # the frames carry exchange times of 2026-07-20 afternoon; what counts is receive time
        before = frame_mix(50, seed=1)
        after = frame_mix(50, seed=2)
        async with client(ns.url) as nc:
            await publish_frames(nc, before, [MIDNIGHT - 100_000_000 + i for i in range(50)], pub)
            await publish_frames(
                nc, after, [MIDNIGHT + 100_000_000 + i for i in range(50)], pub, frame_base=100
            )
        now = [MIDNIGHT + 30 * S]
        s = settings(env, clock=lambda: now[0], seal_grace=10.0)
        async with running(s) as arc:
            await until(lambda: arc.stats.written >= len(pub.raw) + len(pub.records))
            await until(lambda: arc.stats.sealed > 0, what="yesterday sealed")
            raw_store, norm_store = stores(env)
            d1, d2 = date(2026, 7, 20), date(2026, 7, 21)
            m1 = read_manifest(raw_store, "kalshi-sim", "kalshi", "raw", d1)
            assert m1 is not None and m1["status"] == "sealed"
            assert m1["record_count"] == 50 and {f["hour"] for f in m1["files"]} == {23}
            # the new day is still open: hour 00 stays in the spool until it is over
            open_day = read_manifest(raw_store, "kalshi-sim", "kalshi", "raw", d2)
            assert open_day is not None and open_day["status"] == "open"
            assert open_day["record_count"] == 0 and open_day["pending"]["records"] == 50
            assert any(
                sf.key.startswith("kalshi-sim/kalshi/2026/07/21/")
                for sf in arc.spool.files.values()
            )
            now[0] = MIDNIGHT + 86_400 * S + 60 * S
            await until(lambda: not arc.spool.files, what="everything sealed")
        m2 = read_manifest(raw_store, "kalshi-sim", "kalshi", "raw", d2)
        assert (
            m2 is not None and m2["record_count"] == 50 and {f["hour"] for f in m2["files"]} == {0}
        )
        for rtype in ("orderbook", "ticker", "trade"):
            for day in (d1, d2):
                m = read_manifest(norm_store, "kalshi-sim", "kalshi", rtype, day)
                assert m is not None and m["status"] == "sealed"
                for f in m["files"]:
                    recs = core.decode_records(core.read_archive(norm_store.get(f["key"])).data)
                    assert all(keys.day_of_ns(r["receive_ts"]) == day for r in recs)
        check_exactly_once(env, pub)


async def test_restart_mid_day_keeps_the_manifest_whole(tmp_path: Path) -> None:
    async with nats_server(tmp_path / "nats") as ns:
        env = environment(tmp_path, ns.url)
        await make_stream(ns.url, env)
        pub = Published()
        async with client(ns.url) as nc:
            await publish_frames(nc, frame_mix(80, seed=1), [T0_NS + i for i in range(80)], pub)
            await archive_until_acked(settings(env), ns.url, pub.last_seq)
            raw_store, _ = stores(env)
            day = keys.day_of_ns(T0_NS)
            first = read_manifest(raw_store, "kalshi-sim", "kalshi", "raw", day)
            assert first is not None
            later = T0_NS + 2 * 3600 * S
            await publish_frames(
                nc, frame_mix(80, seed=2), [later + i for i in range(80)], pub, frame_base=100
            )
            await archive_until_acked(settings(env), ns.url, pub.last_seq)
        manifest = read_manifest(raw_store, "kalshi-sim", "kalshi", "raw", day)
        assert manifest is not None
        assert {f["hour"] for f in manifest["files"]} == {14, 16}
        assert {f["key"] for f in first["files"]} < {f["key"] for f in manifest["files"]}
        assert manifest["record_count"] == len(pub.raw) == 160
        check_exactly_once(env, pub)


def test_duplicate_delivery_is_dropped_by_stream_sequence(tmp_path: Path) -> None:
    env = environment(tmp_path, "nats://127.0.0.1:1")
    arc = Archiver(settings(env))
    arc.recover(0)
    frames = frame_mix(20)
    batch = core.normalize_kalshi(frames, [T0_NS + i for i in range(20)], 3)
    # (subject, stream seq, stored ns, headers, payload) each
    msgs: list[tuple[str, int, int, dict[str, str] | None, bytes]] = [
        (f"kalshi-sim.kalshi.raw.{core.FRAME_KINDS[batch.kinds[i]]}", i + 1, 0, {"Ssmd-Receive-Ns": str(T0_NS + i)}, f)
        for i, f in enumerate(frames)
    ]  # fmt: skip
    # the same frame content at two different stream sequences is two messages (kept)
    msgs.append((msgs[0][0], 21, 0, {"Ssmd-Receive-Ns": str(T0_NS)}, frames[0]))
    arc.process(core.Deliveries(msgs))
    arc.process(core.Deliveries(msgs[:10]))  # a redelivery
    arc.process(core.Deliveries(list(reversed(msgs))))  # again, out of order
    assert arc.stats.duplicates == 10 + 21
    arc.seal_due(everything=True)
    arc.spool.close()
    raw_store, _ = stores(env)
    seqs = sorted(orjson.loads(line)["seq"] for _, line in raw_lines(raw_store))
    assert seqs == list(range(1, 22))


async def test_nats_restart_while_archiving(tmp_path: Path) -> None:
    async with nats_server(tmp_path / "nats") as ns:
        env = environment(tmp_path, ns.url)
        await make_stream(ns.url, env)
        pub = Published()
        async with running(settings(env)) as arc:
            async with client(ns.url) as nc:
                await publish_frames(
                    nc, frame_mix(100, seed=1), [T0_NS + i for i in range(100)], pub
                )
            await until(lambda: _acked(ns.url, pub.last_seq), what="first part acked")
            ns.stop()
            await ns.start()
            async with client(ns.url) as nc:
                await publish_frames(
                    nc, frame_mix(100, seed=2), [T0_NS + 10**6 + i for i in range(100)], pub,
                    frame_base=1000,
                )  # fmt: skip
            await until(lambda: _acked(ns.url, pub.last_seq), what="second part acked")
            await until(lambda: not arc.spool.files, what="sealed")
        check_exactly_once(env, pub)


async def _acked(url: str, last: int) -> bool:
    return await ack_floor(url) >= last
