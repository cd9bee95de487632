"""Manifests: one `manifest.json` per day and data type, rebuilt from what is stored.

The archiver rewrites a day's manifests after every seal, from a listing of the
stored objects and their `.meta.json` (a meta whose size or sha256 does not match
its object is recomputed from the object), so a restart never loses entries.
Fields (docs/archiver.md): feed, env, date, data_type, schema_version, status,
record_count, byte_size, first_timestamp, last_timestamp, gaps, quality_score,
connector_version, created_at, markets, files[], pending, quarantined,
quarantined_count.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

import orjson

from ssmd import __version__, core
from ssmd.archiver.gaps import compute_gaps, iso_ns, quality_score
from ssmd.archiver.seal import FileMeta, read_meta, scan_object
from ssmd.store import keys
from ssmd.store.base import ObjectStore

__all__ = [
    "SCHEMA_VERSION",
    "build_manifest",
    "day_bounds_ns",
    "read_manifest",
    "write_manifest",
]

SCHEMA_VERSION = "v1"
MANIFEST_VERSION = 1
# Quarantined messages listed one by one in a manifest at most (all are counted).
QUARANTINE_LISTED = 1000


def day_bounds_ns(day: date) -> tuple[int, int]:
    start = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 1_000_000_000
    return start, start + 86_400 * 1_000_000_000


def _day_objects(
    store: ObjectStore, env: str, feed: str, data_type: str, day: date
) -> list[tuple[str, int, keys.KeyInfo]]:
    prefix = (
        keys.raw_day_prefix(env, feed, day)
        if data_type == keys.RAW_DATA_TYPE
        else keys.normalized_day_prefix(env, feed, data_type, day)
    )
    out = []
    for obj in store.list(prefix):
        info = keys.parse_key(obj.key)
        if info is None or info.kind not in ("raw", "normalized"):
            continue
        if info.data_type != data_type or info.day != day:
            continue
        out.append((obj.key, obj.size, info))
    return out


def _file_entry(store: ObjectStore, key: str, size: int, info: keys.KeyInfo) -> dict[str, Any]:
    meta: FileMeta | None = read_meta(store, key)
    if meta is None or meta.bytes != size:
        meta = scan_object(store, key, info.kind)
    entry: dict[str, Any] = {
        "key": key,
        "name": key.rsplit("/", 1)[-1] if info.kind == "raw" else key.rsplit("/", 2)[-2],
        "records": meta.records,
        "bytes": meta.bytes,
        "sha256": meta.sha256,
        "seq_first": meta.seq_first or None,
        "seq_last": meta.seq_last or None,
        "first_timestamp": iso_ns(meta.first_receive_ns) if meta.first_receive_ns else None,
        "last_timestamp": iso_ns(meta.last_receive_ns) if meta.last_receive_ns else None,
        "first_receive_ns": meta.first_receive_ns or None,
        "last_receive_ns": meta.last_receive_ns or None,
    }
    if info.kind == "raw":
        entry["msgtype"] = info.msgtype
        entry["hour"] = info.hour
    else:
        # A hashed segment (a long ticker) gives no ticker back; the records do.
        entry["ticker"] = meta.ticker if meta.ticker is not None else info.ticker
    return entry


def _quarantined(store: ObjectStore, files: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first QUARANTINE_LISTED quarantined messages of the day's raw files."""
    out: list[dict[str, Any]] = []
    for f in files:
        if f.get("msgtype") != keys.QUARANTINE_MSGTYPE:
            continue
        reader = core.ArchiveReader()
        tail = b""
        for chunk in store.iter_chunks(f["key"]):
            reader.feed(chunk)
            lines = (tail + reader.take()).split(b"\n")
            tail = lines.pop()
            for line in lines:
                entry = orjson.loads(line)
                out.append(
                    {
                        "subject": entry.get("subject"),
                        "seq": entry.get("seq"),
                        "reason": entry.get("reason"),
                        "key": f["key"],
                    }
                )
                if len(out) >= QUARANTINE_LISTED:
                    return out
    return out


def build_manifest(
    store: ObjectStore,
    env: str,
    feed: str,
    data_type: str,
    day: date,
    *,
    events: Iterable[dict[str, Any]] = (),
    markets_of_day: int | None = None,
    status: str = "open",
    horizon_ns: int | None = None,
    pending: dict[str, Any] | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """The manifest of one day and data type, from the objects in `store`.

    `events`: the day's connector_event records (gaps); `horizon_ns`: where open gaps
    end (default: the end of the day); `pending`: what is still in the spool.
    """
    day_start, day_end = day_bounds_ns(day)
    horizon = min(day_end, horizon_ns) if horizon_ns is not None else day_end
    files = [
        _file_entry(store, k, s, i) for k, s, i in _day_objects(store, env, feed, data_type, day)
    ]
    tickers = {f["ticker"] for f in files if f.get("ticker")}
    firsts = [f["first_receive_ns"] for f in files if f["first_receive_ns"]]
    lasts = [f["last_receive_ns"] for f in files if f["last_receive_ns"]]
    gaps = compute_gaps(list(events), day_start, horizon)
    markets = markets_of_day if markets_of_day is not None else len(tickers)
    window = (day_end if status == "sealed" else horizon) - day_start
    by_type: dict[str, int] = {}
    for f in files:
        name = f.get("msgtype") or data_type
        by_type[name] = by_type.get(name, 0) + f["records"]
    raw = data_type == keys.RAW_DATA_TYPE
    return {
        "manifest_version": MANIFEST_VERSION,
        "env": env,
        "feed": feed,
        "date": day.isoformat(),
        "data_type": data_type,
        "format": "jsonl.zst" if data_type == keys.RAW_DATA_TYPE else "capnp.packed.zst",
        "schema_version": SCHEMA_VERSION,
        "status": status,
        "record_count": sum(f["records"] for f in files),
        "byte_size": sum(f["bytes"] for f in files),
        "first_timestamp": iso_ns(min(firsts)) if firsts else None,
        "last_timestamp": iso_ns(max(lasts)) if lasts else None,
        "markets": len(tickers),
        "records_by_type": by_type,
        "malformed_frames": by_type.get("malformed", 0) if raw else 0,
        "undecodable_records": by_type.get("undecodable", 0) if raw else 0,
        "quarantined_count": by_type.get(keys.QUARANTINE_MSGTYPE, 0) if raw else 0,
        "quarantined": _quarantined(store, files) if raw else [],
        "gaps": gaps,
        "quality_score": quality_score(gaps, markets, window),
        "connector_version": __version__,
        # Milliseconds: readers take a day's gaps from its newest manifest, and a stop
        # writes several within one second.
        "created_at": iso_ns(int((time.time() if now is None else now) * 1e9)),
        "files": files,
        "pending": pending or {"files": 0, "records": 0},
    }


def write_manifest(store: ObjectStore, manifest: dict[str, Any]) -> str:
    key = keys.manifest_key(
        manifest["env"],
        manifest["feed"],
        manifest["data_type"],
        date.fromisoformat(manifest["date"]),
    )
    store.put_atomic(key, orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    return key


def read_manifest(
    store: ObjectStore, env: str, feed: str, data_type: str, day: date
) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = orjson.loads(store.get(keys.manifest_key(env, feed, data_type, day)))
    except FileNotFoundError:
        return None
    return data
