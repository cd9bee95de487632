"""kill -9 of the archiver process mid-batch and mid-seal, torn spool tails, SIGTERM."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from _support import kalshi_fixture
from _support.archfix import (
    PREFIX,
    T0_NS,
    Published,
    ack_floor,
    check_exactly_once,
    environment,
    make_stream,
    publish_frames,
    spawn,
    stores,
    until,
    wait_exit,
)
from ssmd import core
from ssmd.archiver.manifest import read_manifest
from ssmd.bus import subjects
from ssmd.store import keys
from ssmd.testing.frames import frame_mix
from ssmd.testing.nats import client, nats_server


def spool_files(tmp: Path) -> list[Path]:
    return sorted((tmp / "archiver").rglob("*.spool"))


async def finish_and_check(tmp: Path, url: str, env, pub: Published) -> None:  # type: ignore[no-untyped-def]
    proc = spawn(tmp, url)
    try:
        await until(lambda: _acked_and_sealed(tmp, url, pub.last_seq), what="archiver caught up")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert wait_exit(proc) == 0, (tmp / "archiver.log").read_text()
    check_exactly_once(env, pub)
    raw_store, _ = stores(env)
    m = read_manifest(raw_store, "kalshi-sim", "kalshi", "raw", keys.day_of_ns(T0_NS))
    assert m is not None and m["record_count"] == len(pub.raw)
    assert not list((tmp / "raw").rglob("*.tmp")) and not list((tmp / "normalized").rglob("*.tmp"))


async def _acked_and_sealed(tmp: Path, url: str, last: int) -> bool:
    return await ack_floor(url) >= last and not spool_files(tmp)


@pytest.mark.parametrize("step", ["before_commit", "before_ack", "marker", "meta", "object"])
async def test_kill_9_at_each_step_then_restart_is_exactly_once(tmp_path: Path, step: str) -> None:
    async with nats_server(tmp_path / "nats") as ns:
        env = environment(tmp_path, ns.url)
        await make_stream(ns.url, env)
        pub = Published()
        frames = frame_mix(400)
        async with client(ns.url) as nc:
            await publish_frames(nc, frames, [T0_NS + i * 1_000_000 for i in range(400)], pub)
        proc = spawn(tmp_path, ns.url, crash_at=step)
        assert wait_exit(proc) == -signal.SIGKILL
        if step == "before_ack":
            journal = next((tmp_path / "archiver").rglob("journal.bin"))
            assert journal.stat().st_size > 0, "the crash should leave the journal behind"
        if step in ("marker", "meta", "object"):
            assert list((tmp_path / "archiver").rglob("*.sealing"))
        await finish_and_check(tmp_path, ns.url, env, pub)


async def test_torn_spool_tail_is_cut_and_redelivered(tmp_path: Path) -> None:
    async with nats_server(tmp_path / "nats") as ns:
        env = environment(tmp_path, ns.url)
        await make_stream(ns.url, env)
        pub = Published()
        frames = frame_mix(300)
        async with client(ns.url) as nc:
            await publish_frames(nc, frames, [T0_NS + i for i in range(300)], pub)
        proc = spawn(tmp_path, ns.url, crash_at="before_ack")
        assert wait_exit(proc) == -signal.SIGKILL
        # a half-written tail: cut every spool file and index in the middle of the last frame
        for path in spool_files(tmp_path):
            size = path.stat().st_size
            with open(path, "r+b") as fh:
                fh.truncate(size - 3)
            index = path.with_name(path.name[: -len(".spool")] + ".seqs")
            with open(index, "r+b") as fh:
                fh.truncate(index.stat().st_size - 5)
        await finish_and_check(tmp_path, ns.url, env, pub)


async def test_kill_9_while_busy_then_restart(tmp_path: Path) -> None:
    async with nats_server(tmp_path / "nats") as ns:
        env = environment(tmp_path, ns.url)
        await make_stream(ns.url, env)
        pub = Published()
        proc = spawn(tmp_path, ns.url, "--batch", "50")
        async with client(ns.url) as nc:
            for round_no in range(6):
                frames = frame_mix(150, seed=round_no)
                base = T0_NS + round_no * 3_600_000_000_000
                await publish_frames(
                    nc, frames, [base + i for i in range(150)], pub, frame_base=round_no * 1000
                )
                if round_no == 2:
                    await until(lambda: _floor_above(ns.url, 1), what="some progress")
                    proc.kill()
                    assert wait_exit(proc) == -signal.SIGKILL
                    proc = spawn(tmp_path, ns.url, "--batch", "50")
        proc.send_signal(signal.SIGTERM)
        wait_exit(proc)
        await finish_and_check(tmp_path, ns.url, env, pub)


async def _floor_above(url: str, n: int) -> bool:
    return await ack_floor(url) > n


async def test_sigterm_seals_what_is_due_and_writes_manifests(tmp_path: Path) -> None:
    async with nats_server(tmp_path / "nats") as ns:
        env = environment(tmp_path, ns.url)
        await make_stream(ns.url, env)
        pub = Published()
        now = time.time_ns()
        old = frame_mix(100, seed=1)
        new = frame_mix(100, seed=2)
        async with client(ns.url) as nc:
            await publish_frames(nc, old, [T0_NS + i for i in range(100)], pub)
            await publish_frames(nc, new, [now + i for i in range(100)], pub, frame_base=1000)
        proc = spawn(tmp_path, ns.url)
        await until(lambda: _floor_above(ns.url, pub.last_seq - 1), what="all acked")
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert wait_exit(proc, timeout=25) == 0
        assert time.monotonic() - started < 20
        raw_store, _ = stores(env)
        past = read_manifest(raw_store, "kalshi-sim", "kalshi", "raw", keys.day_of_ns(T0_NS))
        assert past is not None and past["status"] == "sealed" and past["pending"]["records"] == 0
        today = read_manifest(raw_store, "kalshi-sim", "kalshi", "raw", keys.day_of_ns(now))
        assert today is not None and today["status"] == "open"
        assert today["pending"]["records"] == 100  # the current hour stays in the spool
        # what is in the spool is readable: complete frames, every line JSON
        from ssmd import core

        lines = 0
        for path in spool_files(tmp_path):
            if "/raw/" in path.as_posix():
                contents = core.read_archive(path.read_bytes())
                assert contents.truncated_tail is None
                for line in contents.data.splitlines():
                    orjson.loads(line)
                    lines += 1
        assert lines == 100


async def test_book_checkpoints_acked_before_a_kill_9_are_not_holes(tmp_path: Path) -> None:
    """Book checkpoints are acked without being stored; a kill -9 before the next spool
    checkpoint must not turn them into stream holes after the restart."""
    async with nats_server(tmp_path / "nats") as ns:
        env = environment(tmp_path, ns.url)
        await make_stream(ns.url, env)
        pub = Published()
        books = core.BookSet()
        book_seqs: list[int] = []
        async with client(ns.url) as nc:
            js = nc.jetstream()
            snapshot = kalshi_fixture("orderbook_snapshot_c")
            await publish_frames(
                nc, [snapshot, *frame_mix(100)], [T0_NS + i for i in range(101)], pub
            )
            for payload in pub.records.values():
                books.apply(payload)
            checkpoints = books.checkpoint(T0_NS + 200, everything=True)
            assert checkpoints
            for ticker, record in checkpoints:
                subject = f"{PREFIX}.book.{subjects.escape_token(ticker)}"
                book_seqs.append((await js.publish(subject, record)).seq)
            more = frame_mix(100, seed=5)
            await publish_frames(
                nc, more, [T0_NS + 300 + i for i in range(100)], pub, frame_base=1000
            )
        last = max(pub.last_seq, *book_seqs)
        proc = spawn(tmp_path, ns.url, crash_at="after_ack")
        assert wait_exit(proc) == -signal.SIGKILL
        assert await ack_floor(ns.url) > 0, "the crash should come after an ack"
        raw_store, _ = stores(env)

        def archived() -> dict[str, Any] | None:
            m = read_manifest(raw_store, "kalshi-sim", "kalshi", "raw", keys.day_of_ns(T0_NS))
            return m if m is not None and m["record_count"] == len(pub.raw) else None

        proc = spawn(tmp_path, ns.url)
        try:
            await until(lambda: _acked_and_sealed(tmp_path, ns.url, last), what="caught up")
            await until(archived, what="the raw manifest of everything")
        finally:
            proc.send_signal(signal.SIGTERM)
            assert wait_exit(proc) == 0, (tmp_path / "archiver.log").read_text()
        check_exactly_once(env, pub)
        m = archived()
        assert m is not None
        assert [g for g in m["gaps"] if g["reason"] == "stream_hole"] == [], m["gaps"]
