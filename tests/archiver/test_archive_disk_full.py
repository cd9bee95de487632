"""The archiver on a full disk: it stops acking, says once which path is full, reports
unhealthy, retries, and resumes by itself when space returns, losing nothing.

The disk is a real tmpfs mounted for the test when running as root; elsewhere the
storage fault hook (SSMD_DISK_FULL_FLAG) makes every write of the archiver fail with
ENOSPC while its flag file exists.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from _support.archfix import (
    T0_NS,
    Published,
    ack_floor,
    check_exactly_once,
    environment,
    make_stream,
    publish_frames,
    running,
    settings,
    until,
)
from ssmd.archiver import Archiver
from ssmd.store import space
from ssmd.testing.frames import frame_mix
from ssmd.testing.nats import client, nats_server
from ssmd.up.components import Plan
from ssmd.up.status import parse_metrics

FULL_LINE = "disk full"
BACK_LINE = "disk space is back"


class Disk:
    """The archiver's data dir on a disk the test can fill and free."""

    def __init__(self, path: Path, flag: Path | None) -> None:
        self.path, self.flag = path, flag
        self.ballast = path / "ballast"

    def fill(self) -> None:
        if self.flag is not None:
            self.flag.touch()
            return
        with open(self.ballast, "ab", buffering=0) as fh:
            for size in (1 << 20, 4096, 1):
                with contextlib.suppress(OSError):
                    while True:
                        fh.write(b"\0" * size)
        probe = self.path / "probe"
        with pytest.raises(OSError) as err, open(probe, "wb", buffering=0) as fh:
            fh.write(b"\0" * 8192)
        assert err.value.errno == errno.ENOSPC
        probe.unlink()

    def free(self) -> None:
        if self.flag is not None:
            self.flag.unlink()
        else:
            self.ballast.unlink()


def _mount_tmpfs(where: Path) -> bool:
    if os.geteuid() != 0:
        return False
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(where)], capture_output=True
    )
    return done.returncode == 0


@pytest.fixture(params=["tmpfs", "hook"])
def disk(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Disk]:
    where = tmp_path / "disk"
    if request.param == "hook":
        where.mkdir()
        flag = tmp_path / "disk-is-full"
        monkeypatch.setenv(space.FULL_FLAG_ENV, str(flag))
        yield Disk(where, flag)
        return
    if not _mount_tmpfs(where):
        pytest.skip("a tmpfs needs root (the hook variant covers this machine)")
    try:
        yield Disk(where, None)
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


async def _health(arc: Archiver) -> tuple[int, dict[str, object]]:
    assert arc.health_server is not None
    async with httpx.AsyncClient(timeout=5) as http:
        r = await http.get(f"http://127.0.0.1:{arc.health_server.port}/health")
    return r.status_code, orjson.loads(r.content)


async def _disk_full_metric(arc: Archiver) -> float:
    assert arc.health_server is not None
    async with httpx.AsyncClient(timeout=5) as http:
        r = await http.get(f"http://127.0.0.1:{arc.health_server.port}/metrics")
    return parse_metrics(r.text).total("ssmd_archiver_disk_full", feed="kalshi")


def _lines(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


async def _done(arc: Archiver, url: str, last_seq: int) -> bool:
    return await ack_floor(url) >= last_seq and not arc.spool.files


async def test_a_full_disk_stops_acking_and_resumes_when_space_returns(
    disk: Disk, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="ssmd.archiver")
    async with nats_server(tmp_path / "nats") as ns:
        env = environment(disk.path, ns.url)
        await make_stream(ns.url, env)
        pub = Published()
        async with running(settings(env, health_port=0)) as arc, client(ns.url) as nc:
            await until(lambda: arc.health_server is not None, what="health served")
            await publish_frames(nc, frame_mix(200, seed=1), [T0_NS + i for i in range(200)], pub)
            await until(lambda: _done(arc, ns.url, pub.last_seq), what="first part archived")
            first = pub.last_seq
            assert (await _health(arc))[0] == 200 and await _disk_full_metric(arc) == 0

            disk.fill()
            await publish_frames(
                nc, frame_mix(600, seed=2), [T0_NS + 10**6 + i for i in range(600)], pub,
                frame_base=1000,
            )  # fmt: skip
            await until(lambda: arc.disk_full is not None, what="the disk found full")
            # it retries while the disk stays full, and says so once
            await until(lambda: arc.disk_full is not None and arc.disk_full.retries >= 2,
                        what="two retries")  # fmt: skip
            status, body = await _health(arc)
            assert status == 503 and body["storage"] == "disk full", body
            assert await _disk_full_metric(arc) == 1
            assert await ack_floor(ns.url) == first, "a message was acked on a full disk"
            said = _lines(caplog, FULL_LINE)
            assert len(said) == 1, said
            assert str(disk.path) in said[0] and "needs" in said[0], said[0]

            disk.free()
            await until(lambda: _done(arc, ns.url, pub.last_seq), what="everything archived")
            assert arc.disk_full is None
            assert (await _health(arc))[0] == 200 and await _disk_full_metric(arc) == 0
            assert len(_lines(caplog, BACK_LINE)) == 1
            assert len(_lines(caplog, FULL_LINE)) == 1
        check_exactly_once(env, pub)


async def test_starting_on_a_full_disk_waits_unhealthy_then_archives(
    disk: Disk, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="ssmd.archiver")
    async with nats_server(tmp_path / "nats") as ns:
        env = environment(disk.path, ns.url)
        await make_stream(ns.url, env)
        pub = Published()
        async with client(ns.url) as nc:
            await publish_frames(nc, frame_mix(300, seed=3), [T0_NS + i for i in range(300)], pub)
        disk.fill()
        async with running(settings(env, health_port=0)) as arc:
            await until(lambda: arc.health_server is not None, what="health served")
            await until(lambda: arc.disk_full is not None, what="the disk found full")
            status, body = await _health(arc)
            assert status == 503 and body["storage"] == "disk full", body
            assert await ack_floor(ns.url) == 0
            # `ssmd up` takes an archiver waiting for space as started: the others go on.
            async with httpx.AsyncClient(timeout=5) as http:
                assert arc.health_server is not None
                plan = Plan(
                    env.name, tmp_path, disk.path, ns.url, env.nats.stream, http, None,
                    archiver_port=arc.health_server.port,
                )  # fmt: skip
                ready = plan.archiver().ready
                assert ready is not None and await ready()
            assert len(_lines(caplog, FULL_LINE)) == 1

            disk.free()
            await until(lambda: _done(arc, ns.url, pub.last_seq), what="everything archived")
            assert (await _health(arc))[0] == 200
        check_exactly_once(env, pub)
