"""Helpers for archiver tests: a stream filled in the connector's format, an archiver
in-process or as a subprocess, and readers of everything archived."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson

from ssmd import core
from ssmd.archiver import Archiver, ArchiverSettings, ConsumerSettings
from ssmd.bus import subjects
from ssmd.bus.stream import ensure_stream
from ssmd.config import Overrides, ResolvedEnvironment, load_environment
from ssmd.store import keys
from ssmd.store.base import ObjectStore
from ssmd.store.local import LocalObjectStore
from ssmd.testing import until
from ssmd.testing.frames import frame_mix
from ssmd.testing.nats import NatsServer, client, free_port, nats_server

ROOT = Path(__file__).resolve().parents[2]

__all__ = [
    "ENV",
    "FEED",
    "NatsServer",
    "client",
    "frame_mix",
    "free_port",
    "nats_server",
    "until",
]

ENV = "kalshi-sim"
FEED = "kalshi"
PREFIX = f"{ENV}.{FEED}"
STREAM = "SSMD_KALSHI_SIM"
DAY_NS = 86_400 * 1_000_000_000
T0_NS = 1_784_557_805 * 1_000_000_000  # 2026-07-20 14:30:05 UTC


def environment(tmp: Path, nats_url: str, **over: str) -> ResolvedEnvironment:
    return load_environment(
        ENV, ROOT / "exchanges", Overrides(nats_url=nats_url, data_dir=str(tmp), **over), environ={}
    )


def settings(env: ResolvedEnvironment, **kw: Any) -> ArchiverSettings:
    kw.setdefault("consumer", ConsumerSettings(ack_wait=2.0, expires=0.5, heartbeat=0.1))
    kw.setdefault("seal_grace", 0.0)
    kw.setdefault("seal_check_interval", 0.0)
    return ArchiverSettings.from_environment(env, **kw)


async def make_stream(url: str, env: ResolvedEnvironment) -> None:
    async with client(url) as nc:
        await ensure_stream(nc.jetstream(), env.nats)


class Published:
    """What the tests put on the stream, to compare with what was archived."""

    def __init__(self) -> None:
        self.raw: dict[int, tuple[bytes, str, int]] = {}  # seq -> (frame, msgtype, receive ns)
        self.records: dict[int, bytes] = {}  # seq -> packed record
        self.events: dict[int, bytes] = {}

    @property
    def last_seq(self) -> int:
        return max([0, *self.raw, *self.records, *self.events])


async def publish_frames(
    nc: Any,
    frames: list[bytes],
    receive_ns: list[int],
    pub: Published,
    conn_id: int = 7,
    msg_ids: bool = True,
    frame_base: int = 0,
) -> None:
    """Publish like the connector: raw frames (with headers), then their records."""
    js = nc.jetstream()
    batch = core.normalize_kalshi(frames, receive_ns, conn_id)
    kinds = batch.kinds
    for i, frame in enumerate(frames):
        msgtype = core.FRAME_KINDS[kinds[i]]
        headers = {"Ssmd-Receive-Ns": str(receive_ns[i]), "Ssmd-Conn-Id": str(conn_id)}
        if msg_ids:
            headers["Nats-Msg-Id"] = f"{conn_id}:{frame_base + i + 1}"
        ack = await js.publish(subjects.raw(ENV, FEED, msgtype), frame, headers=headers)
        if not ack.duplicate:
            pub.raw[ack.seq] = (frame, msgtype, receive_ns[i])
    data = batch.data
    for fi, rtype, ticker, start, end in batch.records:
        payload = data[start:end]
        headers = {"Nats-Msg-Id": f"{conn_id}:{frame_base + fi + 1}:n{start}"} if msg_ids else None
        ack = await js.publish(subjects.record(ENV, FEED, rtype, ticker), payload, headers=headers)
        if not ack.duplicate:
            pub.records[ack.seq] = payload


async def publish_event(nc: Any, pub: Published, **rec: Any) -> int:
    base = {
        "kind": "connector_event",
        "conn_id": 0,
        "sid": 0,
        "shard": 0,
        "reason": "",
        "duration_ns": 0,
        "expected_seq": 0,
        "received_seq": 0,
        "tickers": [],
    }
    payload = core.encode_records([base | rec])
    ack = await nc.jetstream().publish(subjects.event(ENV, FEED, rec["event"]), payload)
    pub.events[ack.seq] = payload
    return int(ack.seq)


async def ack_floor(url: str, durable: str = "archiver", stream: str = STREAM) -> int:
    async with client(url) as nc:
        try:
            info = await nc.jetstream().consumer_info(stream, durable)
        except Exception:
            return 0
        return int(info.ack_floor.stream_seq) if info.ack_floor else 0


@contextlib.asynccontextmanager
async def running(s: ArchiverSettings) -> AsyncIterator[Archiver]:
    arc = Archiver(s)
    stop = asyncio.Event()
    task = asyncio.create_task(arc.run(stop))
    try:
        yield arc
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def archive_until_acked(s: ArchiverSettings, url: str, last_seq: int) -> Archiver:
    """Run an archiver until everything up to `last_seq` is acked and nothing is spooled."""
    async with running(s) as arc:
        await until(lambda: _done(arc, url, last_seq), what=f"ack floor {last_seq} and empty spool")
    return arc


async def _done(arc: Archiver, url: str, last_seq: int) -> bool:
    return await ack_floor(url) >= last_seq and arc.stats.batches > 0 and not arc.spool.files


# ---- reading back ---------------------------------------------------------------------------


def stores(env: ResolvedEnvironment) -> tuple[ObjectStore, ObjectStore]:
    from ssmd.store import open_store

    return open_store(env.raw_store), open_store(env.normalized_store)


def raw_lines(store: ObjectStore) -> list[tuple[str, bytes]]:
    """(key, line) for every line of every sealed raw file."""
    out = []
    for obj in store.list(f"{ENV}/{FEED}/"):
        info = keys.parse_key(obj.key)
        if info is None or info.kind != "raw":
            continue
        data = core.read_archive(store.get(obj.key)).data
        out.extend((obj.key, line) for line in data.split(b"\n") if line)
    return out


def normalized_records(store: ObjectStore) -> list[tuple[str, bytes]]:
    """(key, packed record) for every record of every sealed normalized file."""
    out = []
    for obj in store.list(f"{ENV}/{FEED}/v1/"):
        info = keys.parse_key(obj.key)
        if info is None or info.kind != "normalized":
            continue
        data = core.read_archive(store.get(obj.key)).data
        out.extend((obj.key, data[a:b]) for a, b in core.record_spans(data))
    return out


def check_exactly_once(
    env: ResolvedEnvironment, pub: Published, use: tuple[ObjectStore, ObjectStore] | None = None
) -> None:
    raw_store, norm_store = use or stores(env)
    lines = raw_lines(raw_store)
    seqs = [orjson.loads(line)["seq"] for _, line in lines]
    assert len(seqs) == len(set(seqs)), "a raw frame was archived twice"
    assert set(seqs) == set(pub.raw), "raw frames missing or extra"
    for key, line in lines:
        obj = orjson.loads(line)
        frame, msgtype, rns = pub.raw[obj["seq"]]
        assert obj["type"] == msgtype and obj["rns"] == rns
        assert keys.parse_key(key).msgtype == msgtype  # type: ignore[union-attr]
        if "data" in obj:
            assert b'"data":' + frame + b',"conn":' in line
    records = sorted(p for _, p in normalized_records(norm_store))
    expected = sorted([*pub.records.values(), *pub.events.values()])
    # archiver-made events (stream holes) are extra; compare the published ones
    wanted = set(expected)
    got = [r for r in records if r in wanted]
    assert len(got) == len(expected), f"{len(got)} records archived, {len(expected)} published"
    assert got == expected


def spawn(
    tmp: Path, url: str, *args: str, crash_at: str | None = None, **env: str
) -> subprocess.Popen[bytes]:
    environ = dict(os.environ)
    environ.pop("SSMD_ARCHIVER_CRASH_AT", None)
    if crash_at:
        environ["SSMD_ARCHIVER_CRASH_AT"] = crash_at
    environ.update(env)
    code = "import sys; from ssmd.cli import main; sys.argv[0] = 'ssmd'; main()"
    cmd = [
        sys.executable, "-c", code, "archiver", "run", "--env", ENV,
        "--config-dir", str(ROOT / "exchanges"), "--nats-url", url, "--data-dir", str(tmp),
        "--seal-grace", "0", "--ack-wait", "2", "--log-level", os.environ.get("ARCH_LOG", "WARNING"), *args,
    ]  # fmt: skip
    with open(tmp / "archiver.log", "ab") as log:
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, env=environ)


def wait_exit(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("archiver did not exit")
        time.sleep(0.02)
    return int(proc.returncode)


def local_root(store: ObjectStore) -> Path:
    assert isinstance(store, LocalObjectStore)
    return store.root


# ---- S3 (a moto server process) -----------------------------------------------------------


class MotoServer:
    def __init__(self, tmp: Path, auth: bool = False) -> None:
        self.port = free_port()
        self.tmp = tmp
        self.auth = auth
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        import urllib.request

        environ = dict(os.environ)
        if self.auth:
            environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"
        binary = Path(sys.executable).parent / "moto_server"
        with open(self.tmp / f"moto-{self.port}.log", "ab") as log:
            self.proc = subprocess.Popen(
                [str(binary), "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log, stderr=log, env=environ,
            )  # fmt: skip
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(self.url + "/moto-api/", timeout=1):
                    return
            except Exception:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


def s3_credentials(monkeypatch: Any) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(var, raising=False)


def make_bucket(endpoint: str, name: str) -> None:
    import boto3

    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=name)


def s3_config(tmp: Path, name: str = ENV) -> Path:
    """The shipped configuration, with environment `name` a copy of ENV that archives to
    the S3 buckets ssmd-raw and ssmd-normalized (the endpoint given at run time)."""
    config = tmp / "exchanges"
    shutil.copytree(ROOT / "exchanges", config)
    text = (config / "environments" / f"{ENV}.yaml").read_text()
    text = text.replace(f"name: {ENV}", f"name: {name}").replace(
        "    raw:\n      path: raw\n    normalized:\n      path: normalized\n",
        "    raw:\n      bucket: ssmd-raw\n      region: us-east-1\n"
        "    normalized:\n      bucket: ssmd-normalized\n      region: us-east-1\n",
    )
    assert "ssmd-raw" in text
    (config / "environments" / f"{name}.yaml").write_text(text)
    return config
