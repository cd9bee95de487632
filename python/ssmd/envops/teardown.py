"""`ssmd env teardown`: delete everything an environment owns (docs/teardown.md).

Refused while the environment runs (an `ssmd up` of it on the data directory, a
connector whose heartbeats are recent, a reader pulling from its stream) and, without
`force`, when the environment is marked `protected: true`. With `day`, only the
archive's objects of that UTC day go; the stream, KV buckets, Redis keys and spools stay.
An environment with `nats_url: embedded` keeps its streams in the data directory's
nats-server store: when no `ssmd up` runs, a nats-server is started on that store for
the time of the teardown.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import nats
import nats.errors
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from ssmd import core
from ssmd.bus import subjects
from ssmd.bus.connection import server_addresses
from ssmd.config import LocalStore, ResolvedEnvironment
from ssmd.envops.inventory import file_holdings, nats_holdings, object_holdings, redis_holdings
from ssmd.envops.owned import Holding, Prefixes
from ssmd.exceptions import ConfigError
from ssmd.store.base import open_store
from ssmd.upstate import running_env

__all__ = ["teardown"]

SILENT_INTERVALS = 3  # a connector whose last heartbeat is older than this many is gone
EMBEDDED_START_TIMEOUT = 30.0


def _check_protected(env: ResolvedEnvironment, force: bool) -> None:
    if env.environment.spec.protected and not force:
        raise ConfigError(
            f"environment {env.name} is protected (spec.protected: true in {env.file}); "
            "nothing deleted. Fix: pass --force if it really is to go, or set protected: false"
        )


def _check_not_up(env: ResolvedEnvironment) -> None:
    running = running_env(env.data_dir)
    if running is not None and running in (env.name, ""):
        raise ConfigError(
            f"environment {env.name} is running: `ssmd up` holds {env.data_dir}; nothing "
            "deleted. Fix: stop it (Ctrl-C) first"
        )


async def _last_event(
    js: JetStreamContext, env: ResolvedEnvironment, kind: str
) -> dict[str, Any] | None:
    subject = subjects.event(env.name, env.feed.name, kind)
    try:
        msg = await js.get_last_msg(env.nats.stream, subject)
    except NotFoundError:
        return None
    records = core.decode_records(msg.data or b"")
    return {**records[0], "seq": msg.seq} if records else None


async def _check_idle(js: JetStreamContext, env: ResolvedEnvironment) -> None:
    """Refuse when a connector still beats or a reader pulls from the stream."""
    stream = env.nats.stream
    try:
        consumers = await js.consumers_info(stream)
    except NotFoundError:
        return  # no stream: nothing captures into it
    beat = await _last_event(js, env, "heartbeat")
    if beat is not None:
        stop = await _last_event(js, env, "stopped")
        said_stop = stop is not None and stop["seq"] > beat["seq"]
        age_ns = time.time_ns() - int(beat.get("receive_ts") or 0)
        interval_ns = int(beat.get("duration_ns") or 5_000_000_000)
        if not said_stop and age_ns < SILENT_INTERVALS * interval_ns:
            raise ConfigError(
                f"environment {env.name} is running: a connector's heartbeat reached stream "
                f"{stream} {age_ns / 1e9:.0f} s ago; nothing deleted. Fix: stop its "
                "connectors first"
            )
    pulling = [c.name for c in consumers if (c.num_waiting or 0) > 0 or c.push_bound]
    if pulling:
        raise ConfigError(
            f"environment {env.name} is running: consumer(s) {', '.join(pulling)} of stream "
            f"{stream} are being read; nothing deleted. Fix: stop its archiver, gateway and "
            "security master first"
        )


@contextlib.asynccontextmanager
async def _embedded_server(store_dir: Path) -> AsyncIterator[str]:
    """A nats-server on the embedded store, for as long as the teardown needs it."""
    from ssmd.up.nats import free_port, jetstream_ready, nats_spec

    port = free_port()
    spec = nats_spec(store_dir, port)
    url = f"nats://127.0.0.1:{port}"
    proc = subprocess.Popen(spec.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + EMBEDDED_START_TIMEOUT
        while not await jetstream_ready(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise ConfigError(
                    f"the nats-server on {store_dir} did not start; nothing deleted. Fix: "
                    "check that no other nats-server uses that store"
                )
            await asyncio.sleep(0.1)  # the server gives no other sign of being ready
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.asynccontextmanager
async def _jetstream(
    env: ResolvedEnvironment,
) -> AsyncIterator[tuple[JetStreamContext, str] | None]:
    """The environment's JetStream, or None when it has none (embedded, never started)."""
    async with contextlib.AsyncExitStack() as stack:
        url = env.nats.url
        if env.nats.embedded:
            if not (env.embedded_nats_dir / "jetstream").is_dir():
                yield None
                return
            url = await stack.enter_async_context(_embedded_server(env.embedded_nats_dir))
        try:
            nc = await nats.connect(
                servers=[u for u in url.split(",") if u],
                name=f"ssmd-teardown-{env.name}",
                allow_reconnect=False,
                connect_timeout=5,
            )
        except (OSError, nats.errors.Error) as exc:
            raise ConfigError(
                f"cannot reach NATS at {server_addresses(url)} ({exc.__class__.__name__}); "
                "nothing deleted. Fix: start it, or pass --nats-url"
            ) from None
        stack.push_async_callback(nc.close)
        yield nc.jetstream(), server_addresses(url)


async def _delete(env: ResolvedEnvironment, js: JetStreamContext | None, held: Holding) -> None:
    if held.kind == "stream" and js is not None:
        with contextlib.suppress(NotFoundError):
            await js.delete_stream(held.name)
    elif held.kind == "kv bucket" and js is not None:
        with contextlib.suppress(NotFoundError):
            await js.delete_key_value(held.name)
    elif held.kind.endswith("objects"):
        _delete_objects(env, held)
    elif held.kind == "redis keys" and env.redis_url:
        await _delete_redis(env.redis_url, held.items)
    elif held.kind == "spool":
        Path(held.name).unlink(missing_ok=True)
    elif held.kind == "directory":
        shutil.rmtree(held.name, ignore_errors=True)


def _delete_objects(env: ResolvedEnvironment, held: Holding) -> None:
    for location in (env.raw_store, env.normalized_store):
        store = open_store(location)
        if store.url != held.where:
            continue
        for key in held.items:
            store.delete(key)
        if isinstance(location, LocalStore):
            _prune_empty(location.path / Prefixes(env.name).objects)
        return


def _prune_empty(top: Path) -> None:
    """Remove the directories the deleted objects left empty (top included)."""
    if not top.is_dir():
        return
    for dirpath, _dirs, _files in os.walk(top, topdown=False):
        with contextlib.suppress(OSError):
            os.rmdir(dirpath)  # fails, as meant, while anything is left in it


async def _delete_redis(url: str, keys: list[str]) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        for i in range(0, len(keys), 500):
            await client.unlink(*keys[i : i + 500])
    finally:
        await client.aclose()


async def teardown(
    env: ResolvedEnvironment,
    *,
    day: date | None = None,
    dry_run: bool = False,
    force: bool = False,
    confirm: Callable[[list[Holding]], bool] = lambda _held: True,
) -> tuple[list[Holding], bool]:
    """What the environment owns and whether it was deleted (False for a dry run or a
    declined confirmation). ConfigError, with nothing deleted, when refused."""
    _check_protected(env, force)
    _check_not_up(env)
    if day is not None and day > datetime.now(UTC).date():
        raise ConfigError(f"--date {day} is in the future; expected a past or current UTC day")
    async with _jetstream(env) as nats_side:
        js = nats_side[0] if nats_side else None
        held: list[Holding] = []
        if js is not None and nats_side is not None:
            await _check_idle(js, env)
            if day is None:
                held += await nats_holdings(js, env.name, nats_side[1])
        held += object_holdings(env, day)
        if day is None:
            if env.redis_url:
                held.append(await redis_holdings(env.redis_url, env.name))
            held += file_holdings(env)
        held = [h for h in held if h.count or h.kind in ("stream", "kv bucket")]
        if dry_run or not held or not confirm(held):
            return held, False
        for h in held:
            await _delete(env, js, h)
    return held, True
