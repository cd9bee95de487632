"""`ssmd env teardown`: everything of one environment goes, nothing of another.

The environments are `demo` and `demo-dev`: the prefix of the first is the start of the
name of the second, so a teardown that matched names without their separator would take
both. Real services: a nats-server, a redis-server and (for S3) a moto server.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
import redis
from typer.testing import CliRunner

from _support import ROOT
from _support.archfix import MotoServer, make_bucket, s3_credentials
from _support.secmaster_fixtures import redis_server
from ssmd import core
from ssmd.bus import subjects
from ssmd.bus.stream import ensure_stream
from ssmd.cli import app
from ssmd.config import Overrides, ResolvedEnvironment, load_environment
from ssmd.envops import Prefixes, teardown
from ssmd.exceptions import ConfigError
from ssmd.secmaster.journal import Journal
from ssmd.store import keys
from ssmd.store.base import ObjectStore, open_store
from ssmd.testing.nats import NatsServer, client, nats_server
from ssmd.upstate import UpLock

GONE, KEPT = "demo", "demo-dev"
FEED = "kalshi"
DAY1, DAY2 = date(2026, 7, 20), date(2026, 7, 21)
S3_STORAGE = (
    "    raw:\n      bucket: ssmd-raw\n      region: us-east-1\n"
    "    normalized:\n      bucket: ssmd-normalized\n      region: us-east-1\n"
)
LOCAL_STORAGE = "    raw:\n      path: raw\n    normalized:\n      path: normalized\n"


def write_config(tmp: Path, *, s3: bool = False, protected: str = "") -> Path:
    """The shipped tree plus `demo` and `demo-dev`, copies of kalshi-sim."""
    config = tmp / "exchanges"
    shutil.copytree(ROOT / "exchanges", config)
    text = (config / "environments" / "kalshi-sim.yaml").read_text()
    if s3:
        assert LOCAL_STORAGE in text
        text = text.replace(LOCAL_STORAGE, S3_STORAGE)
    for name in (GONE, KEPT):
        body = text.replace("name: kalshi-sim", f"name: {name}")
        if name == protected:
            body += "  protected: true\n"
        (config / "environments" / f"{name}.yaml").write_text(body)
    return config


def resolve(config: Path, name: str, data: Path, **over: str) -> ResolvedEnvironment:
    return load_environment(name, config, Overrides(data_dir=str(data), **over), environ={})


# ---- what each environment gets ------------------------------------------------------------


def seed_objects(env: ResolvedEnvironment) -> None:
    raw, norm = open_store(env.raw_store), open_store(env.normalized_store)
    for day in (DAY1, DAY2):
        raw.put_atomic(keys.raw_key(env.name, FEED, "trade", day, 14), b"r" * 100)
        raw.put_atomic(keys.manifest_key(env.name, FEED, "raw", day), b"{}")
        norm.put_atomic(keys.normalized_key(env.name, FEED, "trade", day, "KXBTCD-1"), b"n" * 50)


def object_keys(store: ObjectStore, env: str) -> list[str]:
    return [o.key for o in store.list(keys.env_prefix(env))]


async def seed_nats(url: str, env: ResolvedEnvironment) -> None:
    async with client(url) as nc:
        js = nc.jetstream()
        await ensure_stream(js, env.nats)
        await js.publish(subjects.raw(env.name, FEED, "trade"), b"{}")
        await js.add_consumer(env.nats.stream, durable_name="archiver")
        await Journal(js, env.name).ensure_stream()
        kv = await js.create_key_value(bucket=f"{env.name}_state")
        await kv.put("k", b"v")


async def streams(url: str) -> set[str]:
    async with client(url) as nc:
        return {s.config.name or "" for s in await nc.jetstream().streams_info()}


def seed_redis(url: str, env: str) -> None:
    r = redis.Redis.from_url(url)
    r.hset(f"{env}:{FEED}:market:KXBTCD-1", mapping={"ticker": "KXBTCD-1"})
    r.sadd(f"{env}:{FEED}:markets:status:open", "KXBTCD-1")
    r.set(f"{env}:{FEED}:secmaster:built", "now")
    r.close()


def redis_keys(url: str, env: str) -> list[bytes]:
    r = redis.Redis.from_url(url)
    try:
        return sorted(r.scan_iter(match=f"{env}:*"))
    finally:
        r.close()


def seed_files(env: ResolvedEnvironment) -> list[Path]:
    files = [
        env.data_dir / "spool" / f"connector-{env.name}.spool",
        env.data_dir / "spool" / f"connector-{env.name}.group-1-of-2.spool",
        env.data_dir / "archiver" / env.name / "spool" / "journal",
    ]
    for f in files:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"s" * 10)
    return files


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    d = tmp_path / "redis"
    d.mkdir()
    with redis_server(d) as url:
        yield url


# ---- the prefixes ---------------------------------------------------------------------------


def test_prefixes_end_with_a_separator_so_one_env_never_covers_another() -> None:
    p = Prefixes("kalshi")
    other = "kalshi-dev"
    assert p.owns_object(keys.raw_key("kalshi", FEED, "trade", DAY1, 1))
    assert not p.owns_object(keys.raw_key(other, FEED, "trade", DAY1, 1))
    assert not p.owns_object("kalshi")  # not a key of it either
    assert p.owns_object(keys.raw_key("kalshi", FEED, "trade", DAY1, 1), DAY1)
    assert not p.owns_object(keys.raw_key("kalshi", FEED, "trade", DAY2, 1), DAY1)
    assert p.owns_stream(["kalshi.kalshi.>"]) and p.owns_stream(["kalshi.journal.>"])
    assert not p.owns_stream([f"{other}.kalshi.>"])
    assert not p.owns_stream(["kalshi.kalshi.>", f"{other}.kalshi.>"])  # shared: left alone
    assert not p.owns_stream([])
    assert p.owns_spool("connector-kalshi.spool")
    assert not p.owns_spool(f"connector-{other}.spool")
    assert not f"{other}:x:y".startswith(p.redis) and not f"{other}_b".startswith(p.kv_bucket)
    with pytest.raises(ValueError):
        Prefixes("kalshi/")  # a name that could hold a separator is refused


# ---- the whole teardown, local and S3 --------------------------------------------------------


async def _teardown_keeps_the_other_env(
    config: Path, data: Path, nats_url: str, redis_url: str, **over: str
) -> None:
    envs = {
        n: resolve(config, n, data, nats_url=nats_url, redis_url=redis_url, **over)
        for n in (GONE, KEPT)
    }
    files = {}
    for name, env in envs.items():
        seed_objects(env)
        await seed_nats(nats_url, env)
        seed_redis(redis_url, name)
        files[name] = seed_files(env)
    gone, kept = envs[GONE], envs[KEPT]
    raw, norm = open_store(gone.raw_store), open_store(gone.normalized_store)
    kept_objects = object_keys(raw, KEPT) + object_keys(norm, KEPT)
    assert len(kept_objects) == 6
    before = await streams(nats_url)

    # a dry run lists, with counts and bytes, and deletes nothing
    held, deleted = await teardown(gone, dry_run=True)
    assert not deleted
    by_kind = {(h.kind, h.name): h for h in held}
    raw_held = next(h for h in held if h.kind == "raw objects")
    assert (raw_held.count, raw_held.size) == (4, 2 * 100 + 2 * 2)
    norm_held = next(h for h in held if h.kind == "normalized objects")
    assert (norm_held.count, norm_held.size) == (2, 100)
    assert {n for k, n in by_kind if k == "stream"} == {"SSMD_DEMO", "SSMD_DEMO_JOURNAL"}
    assert by_kind[("stream", "SSMD_DEMO")].count == 1  # its one message
    assert {n for k, n in by_kind if k == "kv bucket"} == {"demo_state"}
    assert by_kind[("redis keys", "demo:*")].count == 3
    assert by_kind[("redis keys", "demo:*")].size > 0
    assert sum(h.count for h in held if h.kind in ("spool", "directory")) == 3
    assert len(object_keys(raw, GONE)) == 4 and await streams(nats_url) == before

    # one day: only that day's objects
    held, deleted = await teardown(gone, day=DAY1)
    assert deleted and {h.kind for h in held} == {"raw objects", "normalized objects"}
    assert all(
        keys.parse_key(k).day == DAY2 for k in object_keys(raw, GONE) + object_keys(norm, GONE)
    )  # type: ignore[union-attr]
    assert len(object_keys(raw, GONE)) == 2 and len(object_keys(norm, GONE)) == 1
    assert await streams(nats_url) == before and len(redis_keys(redis_url, GONE)) == 3

    # everything
    held, deleted = await teardown(gone)
    assert deleted
    assert object_keys(raw, GONE) == [] and object_keys(norm, GONE) == []
    assert await streams(nats_url) == before - {"SSMD_DEMO", "SSMD_DEMO_JOURNAL", "KV_demo_state"}
    assert redis_keys(redis_url, GONE) == []
    assert not any(f.exists() for f in files[GONE])
    assert not (data / "archiver" / GONE).exists()

    # the other environment, whose name starts with the first's, is whole
    assert object_keys(raw, KEPT) + object_keys(norm, KEPT) == kept_objects
    assert {"SSMD_DEMO_DEV", "SSMD_DEMO_DEV_JOURNAL", "KV_demo-dev_state"} <= await streams(
        nats_url
    )
    assert len(redis_keys(redis_url, KEPT)) == 3
    assert all(f.exists() for f in files[KEPT])
    async with client(nats_url) as nc:
        info = await nc.jetstream().stream_info(kept.nats.stream)
        assert info.state.messages == 1 and info.state.consumer_count == 1

    # and a second teardown finds nothing left
    held, deleted = await teardown(gone)
    assert held == [] and not deleted


async def test_teardown_local(tmp_path: Path, redis_url: str) -> None:
    config = write_config(tmp_path)
    async with nats_server(tmp_path / "nats") as ns:
        await _teardown_keeps_the_other_env(config, tmp_path / "data", ns.url, redis_url)
    assert not (tmp_path / "data" / "raw" / GONE).exists()  # no empty directories left


async def test_teardown_s3_shared_buckets(
    tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3_credentials(monkeypatch)
    moto = MotoServer(tmp_path)
    moto.start()
    try:
        make_bucket(moto.url, "ssmd-raw")
        make_bucket(moto.url, "ssmd-normalized")
        config = write_config(tmp_path, s3=True)
        async with nats_server(tmp_path / "nats") as ns:
            await _teardown_keeps_the_other_env(
                config, tmp_path / "data", ns.url, redis_url, s3_endpoint=moto.url
            )
    finally:
        moto.stop()


# ---- refusals ------------------------------------------------------------------------------


async def test_protected_needs_force(tmp_path: Path) -> None:
    config = write_config(tmp_path, protected=GONE)
    env = resolve(config, GONE, tmp_path / "data")
    seed_objects(env)
    with pytest.raises(ConfigError, match="protected"):
        await teardown(env)
    assert len(object_keys(open_store(env.raw_store), GONE)) == 4
    _held, deleted = await teardown(env, force=True)
    assert deleted and object_keys(open_store(env.raw_store), GONE) == []


async def test_refused_while_ssmd_up_runs_it(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    data = tmp_path / "data"
    env = resolve(config, GONE, data)
    seed_objects(env)
    lock = UpLock(data)
    lock.acquire()
    try:
        lock.write(env=GONE)
        with pytest.raises(ConfigError, match="running"):
            await teardown(env)
        # another environment run by that `ssmd up` does not hold this one
        lock.write(env=KEPT)
        held, _deleted = await teardown(env, dry_run=True)
        assert [h.count for h in held if h.kind == "raw objects"] == [4]
    finally:
        lock.release()
    assert len(object_keys(open_store(env.raw_store), GONE)) == 4


def _event(kind: str, conn_id: int, interval_ns: int = 0) -> bytes:
    return core.encode_records(
        [
            {
                "kind": "connector_event",
                "event": kind,
                "receive_ts": time.time_ns(),
                "conn_id": conn_id,
                "sid": 0,
                "shard": 0,
                "reason": "",
                "duration_ns": interval_ns,
                "expected_seq": 0,
                "received_seq": 0,
                "tickers": [],
            }
        ]
    )


async def test_refused_while_a_connector_beats_or_a_reader_pulls(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    async with nats_server(tmp_path / "nats") as ns:
        env = resolve(config, GONE, tmp_path / "data", nats_url=ns.url)
        async with client(ns.url) as nc:
            js = nc.jetstream()
            await ensure_stream(js, env.nats)
            await js.publish(
                subjects.event(GONE, FEED, "heartbeat"), _event("heartbeat", 42, 5_000_000_000)
            )
            with pytest.raises(ConfigError, match="heartbeat"):
                await teardown(env, dry_run=True)
            # the connector said it stopped: no longer running
            await js.publish(subjects.event(GONE, FEED, "stopped"), _event("stopped", 42))
            held, _ = await teardown(env, dry_run=True)
            assert any(h.name == env.nats.stream for h in held)
            # a reader waiting on a pull consumer (of a subject with nothing in it yet)
            sub = await js.pull_subscribe(
                f"{GONE}.{FEED}.trade.>", durable="reader", stream=env.nats.stream
            )
            waiting = asyncio.create_task(sub.fetch(1, timeout=10))
            try:
                deadline = time.monotonic() + 5
                while (await js.consumer_info(env.nats.stream, "reader")).num_waiting == 0:
                    assert time.monotonic() < deadline, "the pull request never showed"
                    await asyncio.sleep(0.05)
                with pytest.raises(ConfigError, match="reader"):
                    await teardown(env, dry_run=True)
            finally:
                waiting.cancel()
        assert env.nats.stream in await streams(ns.url)


# ---- the command ---------------------------------------------------------------------------


def test_cli_dry_run_then_confirmed(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    data = tmp_path / "data"
    for name in (GONE, KEPT):
        seed_objects(resolve(config, name, data))
    common = ["--config-dir", str(config), "--data-dir", str(data)]
    runner = CliRunner()
    dry = runner.invoke(app, ["env", "teardown", GONE, "--dry-run", "--json", *common])
    assert dry.exit_code == 0, dry.output
    doc = json.loads(dry.output)
    assert doc["deleted"] is False
    assert {i["kind"]: i["count"] for i in doc["items"]} == {
        "raw objects": 4,
        "normalized objects": 2,
    }
    # no terminal and no --yes: refused, nothing deleted
    refused = runner.invoke(app, ["env", "teardown", GONE, *common])
    assert refused.exit_code == 1 and "--yes" in refused.output
    env = resolve(config, GONE, data)
    assert len(object_keys(open_store(env.raw_store), GONE)) == 4
    done = runner.invoke(app, ["env", "teardown", GONE, "--yes", *common])
    assert done.exit_code == 0, done.output
    assert "Deleted" in done.output
    assert object_keys(open_store(env.raw_store), GONE) == []
    assert len(object_keys(open_store(env.raw_store), KEPT)) == 4
    bad = runner.invoke(app, ["env", "teardown", GONE, "--date", "20-07-2026", *common])
    assert bad.exit_code == 1 and "YYYY-MM-DD" in bad.output


async def test_embedded_nats_store_without_ssmd_up(tmp_path: Path) -> None:
    """`nats_url: embedded` and no `ssmd up`: the streams in the data directory's store go,
    through a nats-server started on that store for the teardown."""
    config = write_config(tmp_path)
    data = tmp_path / "data"
    gone, kept = (resolve(config, n, data) for n in (GONE, KEPT))
    assert gone.nats.embedded
    server = NatsServer(gone.embedded_nats_dir)
    await server.start()
    try:
        for env in (gone, kept):
            await seed_nats(server.url, env)
    finally:
        server.stop()
    held, deleted = await teardown(gone)
    assert deleted and {h.name for h in held if h.kind == "stream"} == {
        "SSMD_DEMO",
        "SSMD_DEMO_JOURNAL",
    }
    await server.start()
    try:
        left = await streams(server.url)
    finally:
        server.stop()
    assert left == {"SSMD_DEMO_DEV", "SSMD_DEMO_DEV_JOURNAL", "KV_demo-dev_state"}
