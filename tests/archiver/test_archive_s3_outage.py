"""S3 away while the archiver runs: it goes on consuming, spooling and acking, says so
once, reports it on /health and /metrics, retries with a backoff, and seals everything
exactly once when S3 is back; a stop during the outage leaves the data in the spool.

S3 is a moto server behind a TCP proxy that the test cuts (every connection reset, new
ones too) and restores.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from _support.archfix import (
    ENV,
    FEED,
    T0_NS,
    MotoServer,
    Published,
    ack_floor,
    check_exactly_once,
    environment,
    make_bucket,
    make_stream,
    publish_frames,
    raw_lines,
    running,
    s3_config,
    s3_credentials,
    settings,
    until,
)
from _support.tcpproxy import TcpProxy
from ssmd.archiver import Archiver
from ssmd.archiver.manifest import read_manifest
from ssmd.config import Overrides, load_environment
from ssmd.store import keys
from ssmd.store.base import ObjectStore
from ssmd.store.s3 import S3ObjectStore
from ssmd.testing.frames import frame_mix
from ssmd.testing.nats import client, free_port, nats_server
from ssmd.up.components import Plan
from ssmd.up.status import parse_metrics

OUTAGE_LINE = "s3 unreachable"
BACK_LINE = "is back"
DAY = keys.day_of_ns(T0_NS)


class Proxy:
    """The TcpProxy on an event loop of its own (a thread), so that it forwards whatever
    the test's loop, which runs the archiver too, is doing."""

    def __init__(self, port: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.proxy = TcpProxy("127.0.0.1", port)

    def _run(self, fn: Callable[[], Coroutine[Any, Any, None]]) -> None:
        asyncio.run_coroutine_threadsafe(fn(), self.loop).result(30)

    def start(self) -> None:
        self.thread.start()
        self._run(self.proxy.start)

    def cut(self) -> None:
        async def cut() -> None:
            self.proxy.cut()

        self._run(cut)

    def restore(self) -> None:
        async def restore() -> None:
            self.proxy.restore()

        self._run(restore)

    @property
    def url(self) -> str:
        return self.proxy.url

    @property
    def refused(self) -> int:
        return self.proxy.refused

    def close(self) -> None:
        self._run(self.proxy.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@contextlib.asynccontextmanager
async def s3_behind_proxy(tmp: Path, *buckets: str) -> AsyncIterator[tuple[MotoServer, Proxy]]:
    moto = MotoServer(tmp)
    moto.start()
    proxy = Proxy(moto.port)
    proxy.start()
    try:
        for bucket in buckets:
            make_bucket(moto.url, bucket)
        yield moto, proxy
    finally:
        proxy.close()
        moto.stop()


async def _get(port: int, path: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5) as http:
        return await http.get(f"http://127.0.0.1:{port}{path}")


def _lines(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


def _buckets(lines: list[str]) -> set[str]:
    return {line.split(f"{OUTAGE_LINE}: ", 1)[1].split(" ", 1)[0] for line in lines}


def check_manifests(store: ObjectStore, data_types: set[str], records: int | None = None) -> None:
    """Each manifest lists every stored object once, with its true sha256 and size."""
    total = 0
    for data_type in data_types:
        manifest = read_manifest(store, ENV, FEED, data_type, DAY)
        assert manifest is not None, f"no {data_type} manifest"
        listed = [f["key"] for f in manifest["files"]]
        assert len(listed) == len(set(listed)), "a file listed twice"
        for entry in manifest["files"]:
            data = store.get(entry["key"])
            assert entry["sha256"] == hashlib.sha256(data).hexdigest(), entry["key"]
            assert entry["bytes"] == len(data)
        assert manifest["pending"]["files"] == 0, manifest["pending"]
        total += manifest["record_count"]
    if records is not None:
        assert total == records


async def test_s3_cut_during_seals_keeps_acking_and_seals_everything_once_when_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="ssmd.archiver")
    s3_credentials(monkeypatch)
    async with (
        s3_behind_proxy(tmp_path, "raw", "normalized") as (moto, proxy),
        nats_server(tmp_path / "nats") as ns,
    ):
        raw = S3ObjectStore("raw", endpoint=proxy.url)
        norm = S3ObjectStore("normalized", endpoint=proxy.url)
        env = environment(tmp_path, ns.url)
        await make_stream(ns.url, env)
        pub = Published()
        s = settings(env, raw_store=raw, normalized_store=norm, health_port=0)
        async with running(s) as arc, client(ns.url) as nc:
            # hour 14 sealed while S3 is there: the next part of it must be merged
            await publish_frames(
                nc, frame_mix(200, seed=1, markets=4), [T0_NS + i for i in range(200)], pub
            )
            await until(lambda: _archived(arc, ns.url, pub.last_seq), what="first part sealed")
            assert arc.health_server is not None
            port = arc.health_server.port

            proxy.cut()
            await publish_frames(
                nc, frame_mix(400, seed=2, markets=4), [T0_NS + 10**6 + i for i in range(400)], pub,
                frame_base=1000,
            )  # fmt: skip
            # acked although nothing can be sealed: the spool is what makes it durable
            await until(lambda: _acked(ns.url, pub.last_seq), what="acked during the outage")
            await until(lambda: proxy.refused >= 3, what="sealing retried")
            assert arc.spool.files, "sealed with S3 cut?"
            r = await _get(port, "/health")
            body = orjson.loads(r.content)
            assert r.status_code == 503, body
            assert body["storage"].startswith(f"{OUTAGE_LINE}: "), body
            assert proxy.url in body["storage"], body
            assert "Fix:" in body["storage_error"], body
            samples = parse_metrics((await _get(port, "/metrics")).text)
            assert samples.total("ssmd_archiver_seal_failures_total") >= 1
            assert samples.total("ssmd_archiver_seal_overdue_seconds") > 0
            said = _lines(caplog, OUTAGE_LINE)
            assert said and len(said) == len(_buckets(said)), said  # once per bucket
            assert all(proxy.url in line and "Fix:" in line for line in said), said
            # `ssmd up` takes an archiver waiting for its storage as started
            async with httpx.AsyncClient(timeout=5) as http:
                plan = Plan(
                    env.name, tmp_path, tmp_path, ns.url, env.nats.stream, http, None,
                    archiver_port=port,
                )  # fmt: skip
                ready = plan.archiver().ready
                assert ready is not None and await ready()

            proxy.restore()
            await until(lambda: _archived(arc, ns.url, pub.last_seq), what="sealed when back")
            r = await _get(port, "/health")
            assert r.status_code == 200 and orjson.loads(r.content)["storage"] == "ok"
            samples = parse_metrics((await _get(port, "/metrics")).text)
            assert samples.total("ssmd_archiver_seal_overdue_seconds") == 0
            said = _lines(caplog, OUTAGE_LINE)  # the other bucket may have failed since
            assert len(said) == len(_buckets(said)), said
            assert len(_lines(caplog, BACK_LINE)) == len(said)
        direct = (
            S3ObjectStore("raw", endpoint=moto.url),
            S3ObjectStore("normalized", endpoint=moto.url),
        )
        check_exactly_once(env, pub, direct)
        check_manifests(direct[0], {"raw"}, records=len(pub.raw))
        check_manifests(direct[1], {"trade", "orderbook", "ticker"})


async def _acked(url: str, last_seq: int) -> bool:
    return await ack_floor(url) >= last_seq


async def _archived(arc: Archiver, url: str, last_seq: int) -> bool:
    return await _acked(url, last_seq) and not arc.spool.files


# ---- the process: SIGTERM during the outage ---------------------------------------------------


def _spawn(
    config: Path, data: Path, nats_url: str, endpoint: str, port: int
) -> subprocess.Popen[bytes]:
    cmd = [
        str(Path(sys.executable).parent / "ssmd"), "archiver", "run", "--env", ENV,
        "--config-dir", str(config), "--nats-url", nats_url, "--data-dir", str(data),
        "--s3-endpoint", endpoint, "--seal-grace", "0", "--ack-wait", "2",
        "--shutdown-timeout", "10", "--health-port", str(port), "--log-level", "WARNING",
    ]  # fmt: skip
    with open(data / "archiver.log", "ab") as log:
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, env=dict(os.environ))


async def _exited(proc: subprocess.Popen[bytes], timeout: float) -> int:
    await until(lambda: proc.poll() is not None, timeout, "the archiver's exit")
    return int(proc.returncode)


async def _health(port: int) -> dict[str, object] | None:
    try:
        return dict(orjson.loads((await _get(port, "/health")).content))
    except httpx.HTTPError:
        return None


async def test_sigterm_during_an_s3_outage_exits_in_time_and_the_next_start_seals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3_credentials(monkeypatch)  # this process and the archiver's
    config = s3_config(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    async with (
        s3_behind_proxy(tmp_path, "ssmd-raw", "ssmd-normalized") as (moto, proxy),
        nats_server(tmp_path / "nats") as ns,
    ):
        env = load_environment(
            ENV, config, Overrides(nats_url=ns.url, data_dir=str(data), s3_endpoint=moto.url)
        )
        await make_stream(ns.url, env)
        pub = Published()
        port = free_port()
        proc = _spawn(config, data, ns.url, proxy.url, port)
        try:
            async with client(ns.url) as nc:
                await publish_frames(
                    nc, frame_mix(200, seed=3, markets=4), [T0_NS + i for i in range(200)], pub
                )
                await until(lambda: _spool_empty(port, ns.url, pub.last_seq), what="first part")
                proxy.cut()
                await publish_frames(
                    nc, frame_mix(300, seed=4, markets=4), [T0_NS + 10**6 + i for i in range(300)], pub,
                    frame_base=1000,
                )  # fmt: skip
                await until(lambda: _acked(ns.url, pub.last_seq), what="acked during the outage")
                await until(lambda: _storage_down(port), what="the outage on /health")
            proc.send_signal(signal.SIGTERM)
            # its own shutdown, not the hard exit after --shutdown-timeout (exit 1)
            assert await _exited(proc, 15) == 0
            log = (data / "archiver.log").read_text()
            left = [line for line in log.splitlines() if "left in the spool" in line]
            assert len(left) == 1, log
            assert "sealed at the next start" in left[0], left[0]
            assert list((data / "archiver").rglob("*.spool")), "the unsealed data is gone"

            proxy.restore()
            proc = _spawn(config, data, ns.url, proxy.url, port)
            await until(lambda: _spool_empty(port, ns.url, pub.last_seq), what="sealed at start")
            proc.send_signal(signal.SIGTERM)
            assert await _exited(proc, 15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        direct = (
            S3ObjectStore("ssmd-raw", endpoint=moto.url),
            S3ObjectStore("ssmd-normalized", endpoint=moto.url),
        )
        check_exactly_once(env, pub, direct)
        check_manifests(direct[0], {"raw"}, records=len(pub.raw))
        assert not list((data / "archiver").rglob("*.spool"))


async def _spool_empty(port: int, url: str, last_seq: int) -> bool:
    body = await _health(port)
    return (
        body is not None
        and body["storage"] == "ok"
        and body["spool_files"] == 0
        and await _acked(url, last_seq)
    )


async def _storage_down(port: int) -> bool:
    body = await _health(port)
    return body is not None and str(body["storage"]).startswith(OUTAGE_LINE)


async def test_s3_away_at_start_is_waited_out_not_an_exit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3_credentials(monkeypatch)
    async with (
        s3_behind_proxy(tmp_path, "raw", "normalized") as (moto, proxy),
        nats_server(tmp_path / "nats") as ns,
    ):
        env = environment(tmp_path, ns.url)
        await make_stream(ns.url, env)
        pub = Published()
        async with client(ns.url) as nc:
            await publish_frames(
                nc, frame_mix(200, seed=5, markets=4), [T0_NS + i for i in range(200)], pub
            )
        proxy.cut()
        s = settings(
            env,
            raw_store=S3ObjectStore("raw", endpoint=proxy.url),
            normalized_store=S3ObjectStore("normalized", endpoint=proxy.url),
            health_port=0,
        )
        async with running(s) as arc:
            await until(lambda: _acked(ns.url, pub.last_seq), what="acked with S3 away")
            assert arc.health_server is not None
            body = orjson.loads((await _get(arc.health_server.port, "/health")).content)
            assert body["storage"].startswith(f"{OUTAGE_LINE}: "), body
            proxy.restore()
            await until(lambda: _archived(arc, ns.url, pub.last_seq), what="sealed when back")
        direct = (
            S3ObjectStore("raw", endpoint=moto.url),
            S3ObjectStore("normalized", endpoint=moto.url),
        )
        check_exactly_once(env, pub, direct)
        check_manifests(direct[0], {"raw"}, records=len(pub.raw))


async def test_a_bucket_deleted_while_running_is_reported_with_the_fix_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import boto3

    caplog.set_level("INFO", logger="ssmd.archiver")
    s3_credentials(monkeypatch)
    async with (
        s3_behind_proxy(tmp_path, "raw", "normalized") as (moto, _),
        nats_server(tmp_path / "nats") as ns,
    ):
        env = environment(tmp_path, ns.url)
        await make_stream(ns.url, env)
        pub = Published()
        raw = S3ObjectStore("raw", endpoint=moto.url)
        norm = S3ObjectStore("normalized", endpoint=moto.url)
        s = settings(env, raw_store=raw, normalized_store=norm, health_port=0)
        async with running(s) as arc, client(ns.url) as nc:
            await publish_frames(
                nc, frame_mix(100, seed=6, markets=4), [T0_NS + i for i in range(100)], pub
            )
            await until(lambda: _archived(arc, ns.url, pub.last_seq), what="first part sealed")
            s3 = boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1")
            for obj in raw.list(""):
                s3.delete_object(Bucket="raw", Key=obj.key)
            s3.delete_bucket(Bucket="raw")
            before = set(pub.raw)
            await publish_frames(
                nc, frame_mix(100, seed=7, markets=4), [T0_NS + 10**6 + i for i in range(100)],
                pub, frame_base=1000,
            )  # fmt: skip
            await until(lambda: _acked(ns.url, pub.last_seq), what="acked, the bucket gone")
            await until(lambda: arc.store_outages, what="the refusal noticed")
            assert arc.health_server is not None
            r = await _get(arc.health_server.port, "/health")
            body = orjson.loads(r.content)
            assert r.status_code == 503, body
            assert body["storage"] == f"s3 refused: raw at {moto.url}", body
            assert "NoSuchBucket" in body["storage_error"], body
            assert "Fix: create it" in body["storage_error"], body
            said = _lines(caplog, "s3 refused")
            assert len(said) == 1 and "Fix: create it" in said[0], said
        # stopped while refused: the next start, with the bucket back, seals what waited
        make_bucket(moto.url, "raw")
        async with running(s) as arc:
            await until(lambda: _archived(arc, ns.url, pub.last_seq), what="sealed at restart")
        seqs = {orjson.loads(line)["seq"] for _, line in raw_lines(raw)}
        assert seqs == set(pub.raw) - before
