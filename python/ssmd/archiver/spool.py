"""The durable local spool: a write-ahead journal plus one append-only file per open archive file.

Per batch, every item is appended to one journal file (`journal.bin`) and the journal
is fsynced once; the archiver acks after that (`commit()`). Items also go into an
in-memory ssmd.core.ArchiveWriter per open file. A checkpoint (every
`checkpoint_interval` seconds, when `checkpoint_bytes` are pending, and before any
seal) writes each pending writer as one independent zstd frame to that file's spool
(`{key}.spool`, exactly the bytes the sealed object will hold), appends an entry to
its sidecar index (`{key}.seqs`), fsyncs them, then empties the journal.

    journal entry = u8 store, u16 key length, u32 n, u32 items length, key,
                    n x u32 item length, n x (u64 stream seq, u64 receive ns), items
                    (store 2, "covered": sequences done without a file, no key
                    and empty items; see `cover()`)
    index entry   = u64 end offset of the frame, u32 n, n x (u64 stream seq, u64 receive ns)
                                                                       (little endian)

Items arrive as ssmd.core.Chunk objects, already in these layouts, so that the
per-item work of a batch stays in Rust (ssmd.core.route_batch).

Recovery (`recover()`): an index or seal marker without its spool file (a kill in the
middle of a seal's clean-up) is deleted; each spool keeps the longest prefix where
complete zstd frames and index entries agree (a torn tail is cut); then every complete
journal entry whose stream sequence is not already in a spool index is replayed, a
checkpoint is taken, and the journal is emptied. Memory is bounded: at most `checkpoint_bytes` are pending.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import struct
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from ssmd import core
from ssmd.exceptions import SsmdError
from ssmd.store.local import fsync_dir
from ssmd.store.space import write_all

__all__ = ["Spool", "SpoolFile", "read_index", "read_journal", "spool_dir"]


def spool_dir(data_dir: Path | str, env: str, extra_feed: str | None = None) -> Path:
    """Where the archiver of environment `env` keeps its spool under the data directory
    (readers of unsealed data, ssmd.data, find it here too): the environment's own feed
    at archiver/{env}/spool, each further venue it captures (`extra_feed`) at
    archiver/{env}/venues/{feed}/spool, so that each archiver has a spool of its own."""
    root = Path(data_dir) / "archiver" / env
    return root / "spool" if extra_feed is None else root / "venues" / extra_feed / "spool"


_HEAD = struct.Struct("<QI")
_ITEM = struct.Struct("<QQ")
_JOURNAL = struct.Struct("<BHII")
_LENGTH = struct.Struct("<I")
DATA_SUFFIX = ".spool"
INDEX_SUFFIX = ".seqs"
MARKER_SUFFIX = ".sealing"
STORES = ("raw", "normalized")
COVERED = "covered"  # journal entries of sequences done without being stored
_ENTRY_KINDS = (*STORES, COVERED)
JOURNAL = "journal.bin"


def read_index(path: Path) -> Iterator[tuple[int, list[tuple[int, int]], int]]:
    """(frame end offset, [(seq, receive_ns)], index end offset) per complete entry."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return
    pos = 0
    while pos + _HEAD.size <= len(data):
        end, n = _HEAD.unpack_from(data, pos)
        body = pos + _HEAD.size
        stop = body + n * _ITEM.size
        if stop > len(data):
            return
        items = [_ITEM.unpack_from(data, body + i * _ITEM.size) for i in range(n)]
        pos = stop
        yield end, items, pos


def read_journal(path: Path) -> Iterator[tuple[str, str, int, int, bytes]]:
    """(store, key, seq, receive ns, item) per item of each complete journal entry
    (store COVERED: a sequence done without a file, key and item empty)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return
    pos = 0
    while pos + _JOURNAL.size <= len(data):
        store, klen, n, ilen = _JOURNAL.unpack_from(data, pos)
        key_at = pos + _JOURNAL.size
        lengths_at = key_at + klen
        meta_at = lengths_at + n * _LENGTH.size
        items_at = meta_at + n * _ITEM.size
        stop = items_at + ilen
        if stop > len(data) or store >= len(_ENTRY_KINDS):
            return
        key = data[key_at:lengths_at].decode()
        at = items_at
        for i in range(n):
            (length,) = _LENGTH.unpack_from(data, lengths_at + i * _LENGTH.size)
            seq, ts = _ITEM.unpack_from(data, meta_at + i * _ITEM.size)
            yield _ENTRY_KINDS[store], key, seq, ts, data[at : at + length]
            at += length
        pos = stop


@dataclass
class SpoolFile:
    """One archive file being written: where it goes and what is in it so far."""

    store: str  # "raw" or "normalized"
    key: str
    path: Path
    size: int = 0  # bytes of complete frames on disk
    index_size: int = 0
    count: int = 0  # items, pending ones included
    seq_first: int = 0
    seq_last: int = 0
    ts_first: int = 0
    ts_last: int = 0
    recovered: list[tuple[int, int]] = field(default_factory=list)  # (seq, ts) above the floor
    writer: core.ArchiveWriter | None = None
    pending: list[bytes] = field(default_factory=list)  # index layout, per chunk
    pending_count: int = 0

    @property
    def index_path(self) -> Path:
        return self.path.with_name(self.path.name[: -len(DATA_SUFFIX)] + INDEX_SUFFIX)

    @property
    def marker_path(self) -> Path:
        return self.path.with_name(self.path.name[: -len(DATA_SUFFIX)] + MARKER_SUFFIX)

    def note(self, count: int, seq_first: int, seq_last: int, ts_first: int, ts_last: int) -> None:
        """Counts `count` items with these ranges (0 = none, as in ssmd.core.Chunk)."""
        self.count += count
        if seq_first and (not self.seq_first or seq_first < self.seq_first):
            self.seq_first = seq_first
        self.seq_last = max(self.seq_last, seq_last)
        if ts_first and (not self.ts_first or ts_first < self.ts_first):
            self.ts_first = ts_first
        self.ts_last = max(self.ts_last, ts_last)


class Spool:
    """Spool files under `root/{store}/{key}.spool` and the journal `root/journal.bin`."""

    def __init__(
        self,
        root: Path,
        *,
        level: int = 3,
        max_open: int = 256,
        checkpoint_bytes: int = 64 << 20,
        checkpoint_interval: float = 5.0,
        on_checkpoint: Callable[[], None] | None = None,
    ) -> None:
        """`on_checkpoint` runs at each checkpoint once the spool files are durable and
        before the journal is emptied (the archiver saves its state there)."""
        self.root = root
        self.level = level
        self.max_open = max_open
        self.checkpoint_bytes = checkpoint_bytes
        self.checkpoint_interval = checkpoint_interval
        self.on_checkpoint = on_checkpoint
        self.files: dict[tuple[str, str], SpoolFile] = {}
        self._handles: OrderedDict[tuple[str, str], tuple[BinaryIO, BinaryIO]] = OrderedDict()
        self._journal_buf: list[bytes] = []
        self._journal: BinaryIO | None = None
        self._pending_bytes = 0
        self._pending_files: set[tuple[str, str]] = set()
        self._last_checkpoint = time.monotonic()
        self._journal_dirty = False

    @property
    def journal_path(self) -> Path:
        return self.root / JOURNAL

    def path_for(self, store: str, key: str) -> Path:
        return self.root / store / (key + DATA_SUFFIX)

    def _file(self, store: str, key: str) -> SpoolFile:
        ident = (store, key)
        sf = self.files.get(ident)
        if sf is None:
            sf = self.files[ident] = SpoolFile(store, key, self.path_for(store, key))
        return sf

    # ---- writing ------------------------------------------------------------------------

    def append(self, store: str, key: str, chunk: core.Chunk) -> None:
        """Add a chunk of items (whole lines or records) for one file."""
        sf = self._file(store, key)
        if sf.writer is None:
            sf.writer = core.ArchiveWriter(self.level)
        kb = key.encode()
        items = chunk.items
        head = _JOURNAL.pack(STORES.index(store), len(kb), chunk.count, len(items))
        self._journal_buf += (head, kb, chunk.lengths, chunk.meta, items)
        sf.writer.write(items)
        sf.note(chunk.count, chunk.seq_first, chunk.seq_last, chunk.ts_first, chunk.ts_last)
        sf.pending.append(chunk.meta)
        sf.pending_count += chunk.count
        self._pending_bytes += len(items)
        self._pending_files.add((store, key))

    def cover(self, chunk: core.Chunk) -> None:
        """Journal sequences that are done without being stored (book checkpoints).

        They are acked like the rest, so a restart must know them: until the next
        checkpoint saves the archiver's state, only the journal does (`recover`).
        """
        head = _JOURNAL.pack(_ENTRY_KINDS.index(COVERED), 0, chunk.count, len(chunk.items))
        self._journal_buf += (head, chunk.lengths, chunk.meta, chunk.items)

    def _write_journal(self) -> None:
        if not self._journal_buf:
            return
        if self._journal is None:
            self.root.mkdir(parents=True, exist_ok=True)
            new = not self.journal_path.exists()
            self._journal = open(self.journal_path, "ab", buffering=0)  # noqa: SIM115 - kept open
            if new:
                fsync_dir(self.root)
        synced = os.fstat(self._journal.fileno()).st_size
        data = b"".join(self._journal_buf)
        self._journal_buf.clear()
        try:
            write_all(self._journal, data)
            os.fdatasync(self._journal.fileno())
        except BaseException:
            # Not acked, so redelivered: the journal keeps only what was synced before.
            with contextlib.suppress(OSError):
                self._journal.truncate(synced)
            raise
        self._journal_dirty = True

    def commit(self) -> None:
        """Make everything appended so far durable (the archiver acks after this)."""
        self._write_journal()
        if self._pending_bytes >= self.checkpoint_bytes or (
            (self._pending_files or self._journal_dirty)
            and time.monotonic() - self._last_checkpoint >= self.checkpoint_interval
        ):
            self.checkpoint()

    def checkpoint(self) -> None:
        """Write pending items to their spool files, fsync them, then empty the journal.

        A write or sync that fails (a full disk) cuts the spool files back to what they
        held before, so that nothing unsynced is ever taken for durable: the items are
        still in the journal. The spool must then be abandoned (`abandon`) and the disk's
        state taken up again by `recover` on a new Spool.
        """
        self._write_journal()
        before = {
            ident: (sf.size, sf.index_size)
            for ident in self._pending_files
            if (sf := self.files.get(ident)) is not None
        }
        try:
            self._write_frames()
        except BaseException:
            self._cut_back(before)
            raise
        self._pending_files.clear()
        self._pending_bytes = 0
        self._last_checkpoint = time.monotonic()
        if self.on_checkpoint is not None:
            self.on_checkpoint()
        if self._journal_dirty or (self._journal is None and self.journal_path.exists()):
            if self._journal is None:
                self._journal = open(self.journal_path, "ab", buffering=0)  # noqa: SIM115
            self._journal.truncate(0)
            os.fsync(self._journal.fileno())
            self._journal_dirty = False

    def _write_frames(self) -> None:
        """One frame per pending file and its index entry, then one sync."""
        new_dirs: set[Path] = set()
        touched: list[tuple[BinaryIO, BinaryIO]] = []
        for ident in sorted(self._pending_files):
            sf = self.files.get(ident)
            if sf is None or sf.writer is None or not sf.pending:
                continue
            frame = sf.writer.flush()
            sf.writer = None  # a zstd context per open file would hold ~1 MB each
            if not sf.path.parent.exists():
                sf.path.parent.mkdir(parents=True, exist_ok=True)
            if not sf.path.exists():
                new_dirs.add(sf.path.parent)
            data, index = self._handles_for(sf)
            write_all(data, frame)
            sf.size += len(frame)
            entry = _HEAD.pack(sf.size, sf.pending_count) + b"".join(sf.pending)
            write_all(index, entry)
            sf.index_size += len(entry)
            sf.pending, sf.pending_count = [], 0
            touched.append((data, index))
        # One syncfs of the spool's filesystem instead of an fsync per file: a
        # checkpoint touches hundreds of files (one per market and type).
        if touched and not _syncfs(self.root):
            for data, index in touched:
                os.fdatasync(data.fileno())
                os.fdatasync(index.fileno())
            for d in new_dirs:
                fsync_dir(d)

    def _cut_back(self, sizes: dict[tuple[str, str], tuple[int, int]]) -> None:
        """Spool files and indexes back to (size, index size) after a failed checkpoint."""
        for ident, (size, index_size) in sizes.items():
            sf = self.files[ident]
            for path, length in ((sf.path, size), (sf.index_path, index_size)):
                with contextlib.suppress(OSError):  # shrinking needs no space
                    os.truncate(path, length)
            sf.size, sf.index_size = size, index_size

    def _handles_for(self, sf: SpoolFile) -> tuple[BinaryIO, BinaryIO]:
        ident = (sf.store, sf.key)
        pair = self._handles.get(ident)
        if pair is not None:
            self._handles.move_to_end(ident)
            return pair
        while len(self._handles) >= self.max_open:
            _, (a, b) = self._handles.popitem(last=False)
            a.close()
            b.close()
        # Unbuffered: a write that fails leaves nothing in a buffer to be written later.
        pair = (open(sf.path, "ab", buffering=0), open(sf.index_path, "ab", buffering=0))  # noqa: SIM115
        self._handles[ident] = pair
        return pair

    def close_file(self, sf: SpoolFile) -> None:
        pair = self._handles.pop((sf.store, sf.key), None)
        if pair is not None:
            pair[0].close()
            pair[1].close()

    def remove(self, sf: SpoolFile) -> None:
        """Forget a sealed file and delete its spool, index and marker."""
        self.close_file(sf)
        self.files.pop((sf.store, sf.key), None)
        self._pending_files.discard((sf.store, sf.key))
        for p in (sf.path, sf.index_path, sf.marker_path):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        with contextlib.suppress(OSError):
            fsync_dir(sf.path.parent)

    def abandon(self) -> None:
        """Close every file without writing anything pending, after a failed write: the
        disk holds what is durable (the synced journal, spool files cut back), and
        `recover` on a new Spool takes it up from there."""
        for a, b in self._handles.values():
            a.close()  # unbuffered: closing writes nothing
            b.close()
        self._handles.clear()
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        self._journal_buf.clear()
        self._pending_files.clear()
        self._pending_bytes = 0

    def close(self) -> None:
        if self._pending_files or self._journal_buf:
            self.checkpoint()
        for a, b in self._handles.values():
            a.close()
            b.close()
        self._handles.clear()
        if self._journal is not None:
            self._journal.close()
            self._journal = None

    # ---- recovery -----------------------------------------------------------------------

    def recover(
        self, floor: int = 0, covered: Callable[[int, int], object] | None = None
    ) -> list[SpoolFile]:
        """Load every spool left on disk (torn tails cut), replay the journal, checkpoint.

        Each SpoolFile's `recovered` holds its (seq, receive ns) above `floor`.
        `covered(seq, receive ns)` is called for each sequence the journal says was
        done without a file, before the checkpoint (which saves the archiver's state
        and then empties the journal).
        """
        journal = list(read_journal(self.journal_path))
        low = min([floor + 1, *(seq for _, _, seq, _, _ in journal if seq)])
        known: set[int] = set()
        for store in STORES:
            store_dir = self.root / store
            if not store_dir.is_dir():
                continue
            _remove_orphans(store_dir)
            for path in sorted(store_dir.rglob("*" + DATA_SUFFIX)):
                key = path.relative_to(store_dir).as_posix()[: -len(DATA_SUFFIX)]
                sf = SpoolFile(store, key, path)
                complete = _complete_len(path)
                good_data, good_index = 0, 0
                for end, items, index_end in read_index(sf.index_path):
                    if end > complete:
                        break
                    good_data, good_index = end, index_end
                    for seq, ts in items:
                        sf.note(1, seq, seq, ts, ts)
                        if seq >= low:
                            known.add(seq)
                            if seq > floor:
                                sf.recovered.append((seq, ts))
                _truncate(path, good_data)
                _truncate(sf.index_path, good_index)
                sf.size, sf.index_size = good_data, good_index
                self.files[(store, key)] = sf
        for store, key, seq, ts, item in journal:
            if store == COVERED:
                if covered is not None:
                    covered(seq, ts)
                continue
            if seq and seq in known:
                continue
            self.append(store, key, core.Chunk([item], [(seq, ts)]))
            if seq:
                known.add(seq)
                if seq > floor:
                    self.files[(store, key)].recovered.append((seq, ts))
        self._journal_buf.clear()  # replayed items are already in the journal
        self.checkpoint()
        return list(self.files.values())


def _remove_orphans(store_dir: Path) -> None:
    """Delete the indexes and seal markers whose spool file is gone.

    A seal deletes the spool file, then its index, then its marker; a kill between two
    of those leaves the rest behind, and they belong to an object already stored. Left
    there, they would be taken for the state of the next spool file of the same key:
    its index would start with the old entries, and its seal would trust the old
    marker and cut or drop the new data.
    """
    removed: set[Path] = set()
    for suffix in (INDEX_SUFFIX, MARKER_SUFFIX):
        for path in store_dir.rglob("*" + suffix):
            if not path.with_name(path.name[: -len(suffix)] + DATA_SUFFIX).exists():
                path.unlink()
                removed.add(path.parent)
    for d in removed:
        fsync_dir(d)


def _syncfs(path: Path) -> bool:
    """syncfs(2) on the filesystem holding `path`: data and metadata of every file on it."""
    global _LIBC
    if _LIBC is None:
        try:
            _LIBC = ctypes.CDLL(None, use_errno=True)
            _LIBC.syncfs.argtypes = [ctypes.c_int]
        except (OSError, AttributeError):
            _LIBC = False
    if _LIBC is False:
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        return bool(_LIBC.syncfs(fd) == 0)
    finally:
        os.close(fd)


_LIBC: Any = None


def _complete_len(path: Path) -> int:
    reader = core.ArchiveReader()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            reader.feed(chunk)
            reader.take()
    try:
        return int(reader.finish().complete_len)
    except SsmdError:
        # Damage before the tail cannot come from a crash; trust the index.
        return path.stat().st_size


def _truncate(path: Path, size: int) -> None:
    try:
        if path.stat().st_size == size:
            return
    except FileNotFoundError:
        if size == 0:
            path.touch()
        return
    with open(path, "r+b") as fh:
        fh.truncate(size)
        fh.flush()
        os.fsync(fh.fileno())
