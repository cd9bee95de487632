"""Sealing: turning a spool file into a stored object, crash-safe, with its meta.

A spool file already holds the exact bytes of the object (independent zstd
frames), so sealing a new object uploads the spool file as is. When the object
exists (late data for an hour or day already sealed), the new object is the old
one followed by the spool's frames: concatenated independent frames are a valid
archive.

Order, so that kill -9 at any step is safe:
  1. marker `{spool}.sealing` = sha256 of the object before this seal (or null) and how
     many bytes of the spool this seal puts, fsynced;
  2. put `{key}.meta.json` (counts, sequence range, timestamps, sha256 of the new object);
  3. put the object (temp + rename, or one PUT);
  4. delete spool, index and marker.
On restart a spool with a marker is sealed again unless the stored object's
sha256 already differs from the marker's (step 3 happened): then the spool is
only deleted. Nothing is appended twice, nothing acked is lost.

A seal that fails without a crash (the store away) leaves the same marker, and the
spool takes more data meanwhile. When step 3 had happened after all (the store took the
PUT, its answer was lost), the bytes the spool holds beyond what the marker says are
sealed on top of the new object (the marker's `skip`), never dropped.
"""

from __future__ import annotations

import builtins
import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

from ssmd import core
from ssmd.archiver.spool import Spool, SpoolFile, read_index
from ssmd.records import archive_ticker
from ssmd.store.base import ObjectStore
from ssmd.store.keys import meta_key
from ssmd.store.local import write_durably
from ssmd.store.space import write_all

__all__ = ["FileMeta", "read_meta", "scan_object", "seal"]

log = logging.getLogger(__name__)


@dataclass
class FileMeta:
    key: str
    records: int
    bytes: int
    sha256: str
    seq_first: int  # 0 = unknown
    seq_last: int
    first_receive_ns: int
    last_receive_ns: int
    sealed_at: str = ""
    # normalized files: the records' ticker (a long ticker's key gives only a hash of it)
    ticker: str | None = None

    def to_json(self) -> builtins.bytes:
        return orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2)


def _sha_of_chunks(chunks: Iterator[bytes]) -> tuple[str, int]:
    h = hashlib.sha256()
    n = 0
    for c in chunks:
        h.update(c)
        n += len(c)
    return h.hexdigest(), n


def read_meta(store: ObjectStore, key: str) -> FileMeta | None:
    try:
        raw = orjson.loads(store.get(meta_key(key)))
        return FileMeta(**raw)
    except FileNotFoundError:
        return None
    except (orjson.JSONDecodeError, TypeError):
        return None


def scan_object(store: ObjectStore, key: str, kind: str) -> FileMeta:
    """Counts and ranges of a stored object computed from its bytes (bounded memory).

    Raw lines carry their stream sequence; normalized records do not (seq 0 = unknown).
    """
    h = hashlib.sha256()
    size = 0
    reader = core.ArchiveReader()
    meta = FileMeta(key, 0, 0, "", 0, 0, 0, 0)
    tail = b""

    def note(seq: int, ts: int) -> None:
        meta.records += 1
        if seq:
            meta.seq_first = min(meta.seq_first or seq, seq)
            meta.seq_last = max(meta.seq_last, seq)
        if ts:
            meta.first_receive_ns = min(meta.first_receive_ns or ts, ts)
            meta.last_receive_ns = max(meta.last_receive_ns, ts)

    for chunk in store.iter_chunks(key):
        h.update(chunk)
        size += len(chunk)
        reader.feed(chunk)
        content = reader.take()
        if not content:
            continue
        if kind == "raw":
            lines = (tail + content).split(b"\n")
            tail = lines.pop()
            for line in lines:
                obj = orjson.loads(line)
                note(int(obj.get("seq", 0)), int(obj.get("rns", obj.get("ts", 0) * 1_000_000)))
        else:
            for rec in core.decode_records(content):
                note(0, int(rec.get("receive_ts") or 0))
                meta.ticker = meta.ticker or rec.get("ticker") or None
    meta.sha256 = h.hexdigest()
    meta.bytes = size
    return meta


def _merge(old: FileMeta | None, sf: SpoolFile, key: str) -> FileMeta:
    def lo(a: int, b: int) -> int:
        return min(x for x in (a, b) if x) if (a or b) else 0

    if old is None:
        return FileMeta(key, sf.count, 0, "", sf.seq_first, sf.seq_last, sf.ts_first, sf.ts_last)
    return FileMeta(
        key,
        old.records + sf.count,
        0,
        "",
        lo(old.seq_first, sf.seq_first),
        max(old.seq_last, sf.seq_last),
        lo(old.first_receive_ns, sf.ts_first),
        max(old.last_receive_ns, sf.ts_last),
    )


def _file_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        while c := fh.read(1 << 20):
            yield c


def _file_sha(path: Path) -> tuple[str, int]:
    return _sha_of_chunks(_file_chunks(path))


def _download(store: ObjectStore, key: str, dest: Path) -> str | None:
    """The stored object copied to `dest`; its sha256, or None (no file) when there is
    none yet."""
    try:
        store.download(key, dest)
    except FileNotFoundError:
        return None
    return _file_sha(dest)[0]


def _write_marker(path: Path, base_sha: str | None, skip: int, size: int) -> None:
    """The object's sha256 before this seal; the seal puts spool bytes [skip, size)."""
    # Atomic: a kill while writing must not leave a marker that says nothing.
    write_durably(path, orjson.dumps({"base_sha256": base_sha, "skip": skip, "size": size}))


def _tail(sf: SpoolFile, skip: int) -> SpoolFile:
    """Counts and ranges of the items of the spool's frames after byte `skip`."""
    tail = SpoolFile(sf.store, sf.key, sf.path)
    for end, items, _ in read_index(sf.index_path):
        if end > skip:
            for seq, ts in items:
                tail.note(1, seq, seq, ts, ts)
    return tail


def seal(
    spool: Spool,
    sf: SpoolFile,
    store: ObjectStore,
    *,
    now: Callable[[], float] = time.time,
    crash_hook: Callable[[str], None] | None = None,
) -> FileMeta | None:
    """Seal one spool file into `store`; returns the object's meta (None when empty)."""
    spool.checkpoint()  # the spool file holds everything, the journal nothing
    spool.close_file(sf)
    # The stored object, downloaded once: its sha256 says what a crash left, and late
    # data is appended to this copy. Removed however the seal ends: a copy left behind
    # on a full disk would keep it full.
    merged = sf.path.with_name(sf.path.name + ".merge")
    try:
        return _seal(spool, sf, store, merged, now, crash_hook or (lambda _step: None))
    finally:
        merged.unlink(missing_ok=True)


def _seal(
    spool: Spool,
    sf: SpoolFile,
    store: ObjectStore,
    merged: Path,
    now: Callable[[], float],
    hook: Callable[[str], None],
) -> FileMeta | None:
    key = sf.key
    marker = sf.marker_path
    skip = 0  # spool bytes already in the object
    if marker.exists():
        state = orjson.loads(marker.read_bytes())
        base = state.get("base_sha256")
        skip = int(state.get("skip") or 0)
        put = state.get("size")  # spool bytes the interrupted seal put (None: all)
        current = _download(store, key, merged)
        if current != base:
            # The object was replaced by this seal before the crash: only clean up.
            meta = read_meta(store, key)
            if meta is None or meta.sha256 != current:
                meta = scan_object(store, key, sf.store)
                store.put_atomic(meta_key(key), meta.to_json())
            if put is None or sf.size <= put:
                spool.remove(sf)
                return meta
            # Data came after that seal's failure: sealed on top of the new object.
            base, skip = current, int(put)
    else:
        if sf.count == 0 and sf.size == 0:
            spool.remove(sf)
            return None
        base = _download(store, key, merged)
    _write_marker(marker, base, skip, sf.size)
    hook("marker")
    old_meta: FileMeta | None = None
    content = sf.path
    if base is not None:
        old_meta = read_meta(store, key)
        if old_meta is None or old_meta.sha256 != base:
            old_meta = scan_object(store, key, sf.store)
        with open(merged, "ab", buffering=0) as out, open(sf.path, "rb") as src:
            src.seek(skip)
            while c := src.read(1 << 20):
                write_all(out, c)
        content = merged
    meta = _merge(old_meta, sf if skip == 0 else _tail(sf, skip), key)
    meta.sha256, meta.bytes = _file_sha(content)
    if sf.store == "normalized":
        meta.ticker = archive_ticker(_file_chunks(content)) or None
    meta.sealed_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now()))
    store.put_atomic(meta_key(key), meta.to_json())
    hook("meta")
    store.put_atomic(key, content)
    hook("object")
    spool.remove(sf)
    return meta
