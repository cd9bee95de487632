"""The one reader of an environment's archive: manifests, sealed files and the spool.

`ssmd.data.scan`, the export, the point-in-time books and the `ssmd data` commands
all read through a `Dataset`; nothing else opens archive files. Keys come from
ssmd.store.keys (the one key builder), objects from ssmd.store (local disk or S3),
open data from the archiver's spool (`{data_dir}/archiver/{env}/spool/files/`).

    ds = Dataset.open("kalshi-sim")
    for f in ds.normalized_files("trade", day, tickers={"KXBTC-..."}):
        frame = ds.read(f, "trade")     # Polars, the seed columns added

A file that cannot be read (a sealed file cut short, a corrupt zstd frame, a bad
record) raises ArchiveError naming the file and the offset.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from ssmd import core
from ssmd.archiver.spool import DATA_SUFFIX, MARKER_SUFFIX
from ssmd.data.inventory import Archive
from ssmd.data.kinds import with_seed_columns
from ssmd.exceptions import ArchiveError, DecodeError
from ssmd.store import keys
from ssmd.store.base import ObjectStore

if TYPE_CHECKING:
    import polars
    import pyarrow

    from ssmd.config import ResolvedEnvironment

__all__ = ["DataFile", "Dataset", "default_export_dir"]

ENV_VAR = "SSMD_ENV"


def default_export_dir(data_dir: Path, env: str, feed: str) -> Path:
    """Where `ssmd data export` writes by default and `scan` looks for Parquet."""
    return data_dir / "export" / env / feed


@dataclass(frozen=True, slots=True)
class DataFile:
    """One archive data file: a sealed object in a store, or a spool file (open data)."""

    key: str
    info: keys.KeyInfo
    sealed: bool
    size: int  # bytes when listed (a spool file grows)
    store: ObjectStore | None = None
    path: Path | None = None  # the spool file

    @property
    def location(self) -> str:
        """Where the file is, for messages: the object's URL or the spool path."""
        if self.path is not None:
            return str(self.path)
        assert self.store is not None
        return f"{self.store.url.rstrip('/')}/{self.key}"

    def load(self) -> bytes:
        if self.path is not None:
            return self.path.read_bytes()
        assert self.store is not None
        return self.store.get(self.key)

    def chunks(self, size: int = 1 << 20) -> Iterator[bytes]:
        """The file's bytes in pieces of about `size`, for readers that stream."""
        if self.path is None:
            assert self.store is not None
            yield from self.store.iter_chunks(self.key, size)
            return
        with self.path.open("rb") as f:
            while chunk := f.read(size):
                yield chunk


@dataclass
class Dataset:
    """An environment's archive as data: which days and files exist, and reading them."""

    archive: Archive
    feed: str
    data_dir: Path | None = None  # where the default export lives; None: no export

    @classmethod
    def open(
        cls,
        env: str | None = None,
        *,
        data_dir: str | Path | None = None,
        config_dir: str | Path | None = None,
        feed: str | None = None,
    ) -> Dataset:
        """The archive of environment `env` (default: $SSMD_ENV) as configured under
        `config_dir` (default: $SSMD_CONFIG_DIR, else ./exchanges)."""
        from ssmd.config import Overrides, load_environment
        from ssmd.exceptions import ConfigError

        name = env or os.environ.get(ENV_VAR)
        if not name:
            raise ConfigError(f"no environment given. Fix: pass env= (or --env), or set {ENV_VAR}")
        resolved = load_environment(
            name, config_dir, Overrides(data_dir=str(data_dir) if data_dir else None)
        )
        return cls.from_environment(resolved, feed)

    @classmethod
    def from_environment(cls, env: ResolvedEnvironment, feed: str | None = None) -> Dataset:
        """The archive of an environment already loaded."""
        return cls(Archive.from_environment(env), feed or env.feed.name, env.data_dir)

    @property
    def env(self) -> str:
        return self.archive.env

    @property
    def export_dir(self) -> Path | None:
        """The default export folder (`ssmd data export` without --out), where `scan`
        looks for Parquet."""
        if self.data_dir is None:
            return None
        return default_export_dir(self.data_dir, self.env, self.feed)

    @property
    def _spool_root(self) -> Path | None:
        spool = self.archive.spool_of(self.feed)
        return spool / "files" if spool is not None else None

    # ---- what exists ----------------------------------------------------------------------

    def days(self, record_type: str) -> list[date]:
        """Every day with files or a manifest of `record_type` ("raw" for raw frames),
        sealed or spooled."""
        if record_type == keys.RAW_DATA_TYPE:
            store, kind = self.archive.raw_store, "raw"
            prefix = keys.feed_prefix(self.env, self.feed)
        else:
            store, kind = self.archive.normalized_store, "normalized"
            prefix = keys.normalized_type_prefix(self.env, self.feed, record_type)
        found: set[date] = set()
        for obj in store.list(prefix):
            info = keys.parse_key(obj.key)
            if (
                info is not None
                and info.data_type == record_type
                and info.kind
                in (
                    kind,
                    "manifest",
                )
            ):
                found.add(info.day)
        for path in self._spool_paths(kind, prefix):
            info = keys.parse_key(self._spool_key(path))
            if info is not None and info.data_type == record_type:
                found.add(info.day)
        if record_type in keys.BACKFILLED_TYPES:
            found.update(self.days(keys.backfill_type(record_type)))
        return sorted(found)

    def manifest(self, data_type: str, day: date) -> tuple[dict[str, Any], str] | None:
        """The day's manifest of `data_type` and the sha256 of its bytes (what an export
        was made from; for trades, of the backfill's manifest after them, so that a
        backfill makes the day's export stale); None when there is none yet."""
        store = (
            self.archive.raw_store
            if data_type == keys.RAW_DATA_TYPE
            else self.archive.normalized_store
        )
        try:
            data = store.get(keys.manifest_key(self.env, self.feed, data_type, day))
        except FileNotFoundError:
            return None
        digest = hashlib.sha256(data)
        if data_type in keys.BACKFILLED_TYPES:
            backfill = keys.manifest_key(self.env, self.feed, keys.backfill_type(data_type), day)
            with contextlib.suppress(FileNotFoundError):
                digest.update(store.get(backfill))
        return orjson.loads(data), digest.hexdigest()

    def gaps(self, day: date, data_type: str = "orderbook") -> list[dict[str, Any]]:
        """The day's gaps (every manifest of a day lists them all) from the manifest of
        `data_type`, else any other of the day's; [] when the day has none yet."""
        for kind in (data_type, keys.EVENTS_TYPE, *core.RECORD_TYPES, keys.RAW_DATA_TYPE):
            held = self.manifest(kind, day)
            if held is not None:
                gaps: list[dict[str, Any]] = held[0].get("gaps", [])
                return gaps
        return []

    def normalized_files(
        self,
        record_type: str,
        day: date,
        *,
        tickers: Iterable[str] | None = None,
        include_open: bool = True,
    ) -> list[DataFile]:
        """The day's files of one record type (sealed, then spooled), only those of
        `tickers` when given (matched by key, so hashed segments match too). Trades
        come with the trades backfilled from the venue's REST API, after the live ones
        (`info.data_type` tells them apart)."""
        files = self._type_files(record_type, day, tickers, include_open)
        if record_type in keys.BACKFILLED_TYPES:
            files += self._type_files(keys.backfill_type(record_type), day, tickers, False)
        return files

    def _type_files(
        self, record_type: str, day: date, tickers: Iterable[str] | None, include_open: bool
    ) -> list[DataFile]:
        prefix = keys.normalized_day_prefix(self.env, self.feed, record_type, day)
        wanted = (
            None
            if tickers is None
            else {keys.normalized_key(self.env, self.feed, record_type, day, t) for t in tickers}
        )
        files = []
        store = self.archive.normalized_store
        for obj in store.list(prefix):
            info = keys.parse_key(obj.key)
            if info is None or info.kind != "normalized":
                continue
            if wanted is None or obj.key in wanted:
                files.append(DataFile(obj.key, info, True, obj.size, store=store))
        if include_open:
            for path in self._spool_paths("normalized", prefix):
                key = self._spool_key(path)
                info = keys.parse_key(key)
                if info is None or info.kind != "normalized":
                    continue
                if (wanted is None or key in wanted) and not self._sealed_already(store, key, path):
                    files.append(DataFile(key, info, False, path.stat().st_size, path=path))
        return files

    def tickers_of(self, days: Iterable[date]) -> set[str]:
        """Tickers with normalized files on any of `days` (for naming close matches): from
        the keys, and from the manifests for hashed segments."""
        found: set[str] = set()
        record_types = [t for t in core.RECORD_TYPES if t != keys.EVENTS_TYPE]
        for day in days:
            for record_type in record_types:
                hashed = False
                for f in self.normalized_files(record_type, day):
                    if f.info.ticker is not None:
                        found.add(f.info.ticker)
                    else:
                        hashed = True
                held = self.manifest(record_type, day) if hashed else None
                if held is not None:
                    found.update(f["ticker"] for f in held[0].get("files", []) if f.get("ticker"))
        return found

    def has_open(self, record_type: str, day: date) -> bool:
        """True when the spool holds files of `record_type` for `day` (data that came
        after the day's manifest was written, or a day not sealed yet)."""
        prefix = keys.normalized_day_prefix(self.env, self.feed, record_type, day)
        return bool(self._spool_paths("normalized", prefix))

    def raw_files(self, day: date, *, include_open: bool = True) -> list[DataFile]:
        """The day's raw frame files (every message type but quarantined ones), sealed
        then spooled, in key order."""
        prefix = keys.raw_day_prefix(self.env, self.feed, day)
        files = []
        store = self.archive.raw_store
        for obj in store.list(prefix):
            info = keys.parse_key(obj.key)
            if info is not None and info.kind == "raw" and info.msgtype != keys.QUARANTINE_MSGTYPE:
                files.append(DataFile(obj.key, info, True, obj.size, store=store))
        if include_open:
            for path in self._spool_paths("raw", prefix):
                key = self._spool_key(path)
                info = keys.parse_key(key)
                if (
                    info is not None
                    and info.kind == "raw"
                    and info.msgtype != keys.QUARANTINE_MSGTYPE
                    and not self._sealed_already(store, key, path)
                ):
                    files.append(DataFile(key, info, False, path.stat().st_size, path=path))
        return files

    @staticmethod
    def _sealed_already(store: ObjectStore, key: str, spool: Path) -> bool:
        """True for a spool file whose seal has already replaced the object (the archiver
        deletes the spool next): its records are in the object, read once from there.

        While sealing, the archiver keeps a marker with the sha256 of the object before
        (ssmd.archiver.seal); an object that no longer has it holds the spool."""
        marker = spool.with_name(spool.name[: -len(DATA_SUFFIX)] + MARKER_SUFFIX)
        try:
            base = orjson.loads(marker.read_bytes()).get("base_sha256")
            current = hashlib.sha256(store.get(key)).hexdigest()
        except (FileNotFoundError, orjson.JSONDecodeError):
            return False
        return bool(current != base)

    def _spool_paths(self, store: str, prefix: str) -> list[Path]:
        """Spool files (store "raw" or "normalized") of keys under `prefix`."""
        root = self._spool_root
        if root is None:
            return []
        top = root / store / prefix
        if not top.is_dir():
            return []
        return sorted(top.rglob(f"*{DATA_SUFFIX}"))

    def _spool_key(self, path: Path) -> str:
        root = self._spool_root
        assert root is not None
        rel = path.relative_to(root).as_posix()
        return rel.split("/", 1)[1][: -len(DATA_SUFFIX)]

    # ---- reading --------------------------------------------------------------------------

    def read(self, file: DataFile, kind: str) -> polars.DataFrame:
        """The records of `kind` in one normalized file, the seed columns added.

        A sealed file that ends inside a zstd frame is damage (sealing writes whole
        files); a spool file may, and gives the records of its complete frames.
        """
        import polars as pl

        frame = pl.from_arrow(self._table(file, kind))
        assert isinstance(frame, pl.DataFrame)
        return frame

    @staticmethod
    def _table(file: DataFile, kind: str) -> pyarrow.Table:
        from ssmd.records import archive_to_arrow

        try:
            table = archive_to_arrow(file.load(), kind, allow_truncated_tail=not file.sealed)
        except (ArchiveError, DecodeError) as exc:
            raise ArchiveError(f"{file.location}: {exc}") from None
        return with_seed_columns(table, kind, keys.source_of(file.info.data_type))

    def read_many(
        self,
        files: list[DataFile],
        kind: str,
        on_damage: Callable[[DataFile, ArchiveError], None] | None = None,
    ) -> polars.DataFrame:
        """The records of `kind` in several files as one frame, in file order.

        Sealed files of one type are decoded together in one pass (an archive is a
        sequence of independent zstd frames, so sealed files back to back are one
        archive), which saves the per-file cost of small files; spool files one by
        one. A damaged file raises ArchiveError naming it, or, with `on_damage`, is
        reported there and left out.
        """
        import polars as pl

        from ssmd.records import archive_to_arrow

        tables = []
        one_by_one = [f for f in files if not f.sealed]
        by_type: dict[str, list[DataFile]] = {}
        for f in files:
            if f.sealed:
                by_type.setdefault(f.info.data_type, []).append(f)
        try:
            for data_type, sealed in by_type.items():
                blob = b"".join(f.load() for f in sealed)
                table = archive_to_arrow(blob, kind)
                tables.append(with_seed_columns(table, kind, keys.source_of(data_type)))
        except (ArchiveError, DecodeError):
            tables, one_by_one = [], files  # find the damaged file(s)
        for file in one_by_one:
            try:
                tables.append(self._table(file, kind))
            except ArchiveError as exc:
                if on_damage is None:
                    raise
                on_damage(file, exc)
        if not tables:
            return self.read_empty(kind)
        frame = pl.from_arrow(pyarrow_concat(tables))
        assert isinstance(frame, pl.DataFrame)
        return frame

    @staticmethod
    def read_empty(kind: str) -> polars.DataFrame:
        """A table of `kind` without rows."""
        import polars as pl

        from ssmd.records import archive_to_arrow

        frame = pl.from_arrow(with_seed_columns(archive_to_arrow(b"", kind), kind))
        assert isinstance(frame, pl.DataFrame)
        return frame


def pyarrow_concat(tables: list[pyarrow.Table]) -> pyarrow.Table:
    import pyarrow as pa

    return tables[0] if len(tables) == 1 else pa.concat_tables(tables)
