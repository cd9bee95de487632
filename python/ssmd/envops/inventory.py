"""Find what an environment owns, wherever it is (owned.py says how it is recognised)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path

from nats.js import JetStreamContext

from ssmd.config import LocalStore, ResolvedEnvironment, Store
from ssmd.config.resolve import mask_url
from ssmd.envops.owned import Holding, Prefixes
from ssmd.store.base import open_store

__all__ = ["file_holdings", "nats_holdings", "object_holdings", "redis_holdings"]

KV_STREAM = "KV_"  # JetStream keeps KV bucket B in stream KV_B
PAGE = 256  # streams per STREAM.LIST answer


def _location(store: Store) -> str:
    return str(store.path) if isinstance(store, LocalStore) else f"s3://{store.bucket}"


def object_holdings(env: ResolvedEnvironment, day: date | None) -> list[Holding]:
    """The archive's objects under the environment's prefix (of one day with `day`); one
    holding per bucket (raw and normalized may share one)."""
    p = Prefixes(env.name)
    out: list[Holding] = []
    stores = {"raw objects": env.raw_store, "normalized objects": env.normalized_store}
    seen: dict[Store, Holding] = {}
    for kind, location in stores.items():
        if location in seen:
            seen[location].kind = "raw and normalized objects"
            continue
        store = open_store(location)
        held = Holding(kind, store.url, p.objects + (day.isoformat() if day else ""))
        for obj in store.list(p.objects):
            if p.owns_object(obj.key, day):
                held.items.append(obj.key)
                held.count += 1
                held.size += obj.size
        seen[location] = held
        out.append(held)
    return out


async def _streams(js: JetStreamContext) -> list[tuple[str, list[str], int, int, int]]:
    """(name, subjects, messages, bytes, consumers) of every stream, all pages."""
    out = []
    offset = 0
    while True:
        page = await js.streams_info(offset)
        for info in page:
            state = info.state
            out.append(
                (
                    info.config.name or "",
                    list(info.config.subjects or []),
                    state.messages,
                    state.bytes,
                    state.consumer_count,
                )
            )
        offset += len(page)
        if len(page) < PAGE:
            return out


async def nats_holdings(js: JetStreamContext, env: str, where: str) -> list[Holding]:
    """The streams (with their consumers) and KV buckets of `env`."""
    p = Prefixes(env)
    out = []
    for name, subjects, messages, size, consumers in await _streams(js):
        if name.startswith(KV_STREAM):
            bucket = name[len(KV_STREAM) :]
            if bucket.startswith(p.kv_bucket):
                out.append(Holding("kv bucket", where, bucket, messages, size))
        elif p.owns_stream(subjects):
            held = Holding("stream", where, name, messages, size)
            held.items = [f"{consumers} consumers"]
            out.append(held)
    return out


async def redis_holdings(url: str, env: str) -> Holding:
    """The Redis keys under `{env}:`; bytes as Redis counts them (MEMORY USAGE)."""
    import redis.asyncio as aioredis

    p = Prefixes(env)
    held = Holding("redis keys", mask_url(url), p.redis + "*")
    client = aioredis.Redis.from_url(url)
    try:
        async for key in client.scan_iter(match=p.redis + "*", count=1000):
            held.items.append(key.decode() if isinstance(key, bytes) else str(key))
        for i in range(0, len(held.items), 500):
            pipe = client.pipeline(transaction=False)
            for key in held.items[i : i + 500]:
                pipe.memory_usage(key)
            held.size += sum(int(n or 0) for n in await pipe.execute())
    finally:
        await client.aclose()
    held.count = len(held.items)
    return held


def _tree_size(path: Path) -> tuple[int, int]:
    files = size = 0
    for dirpath, _dirs, names in os.walk(path):
        for name in names:
            try:
                size += os.lstat(os.path.join(dirpath, name)).st_size
            except FileNotFoundError:
                continue
            files += 1
    return files, size


def _spools(spool_dir: Path, p: Prefixes) -> Iterator[Path]:
    if spool_dir.is_dir():
        yield from sorted(f for f in spool_dir.iterdir() if p.owns_spool(f.name))


def file_holdings(env: ResolvedEnvironment) -> list[Holding]:
    """The connector's spools and the environment's directories under the data dir."""
    p = Prefixes(env.name)
    data_dir = env.data_dir
    out = []
    for spool in _spools(data_dir / "spool", p):
        out.append(Holding("spool", str(spool.parent), str(spool), 1, spool.stat().st_size))
    for directory in p.directories(data_dir):
        if directory.is_dir():
            files, size = _tree_size(directory)
            out.append(Holding("directory", str(directory.parent), str(directory), files, size))
    return out
