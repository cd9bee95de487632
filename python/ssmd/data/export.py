"""`ssmd data export`: the normalized archive as Hive-partitioned Parquet (or CSV/JSONL).

    {out}/type=trade/date=2026-12-03/part-0.parquet
    {out}/ssmd-export.json      what each partition was made from

One file per table and day, zstd-compressed (level 1), rows sorted by (ticker, exchange_ts)
in row groups of ROW_GROUP rows with statistics, so that a filter on ticker or
time reads only the row groups that can match. Columns are those of `scan`
(exact `*_e6` integers in units of 1e-6, plus the seed schema's Float64 `price` and
UInt32 `size` for trades and book levels).

Memory: a partition is read, sorted and written in batches of files in ticker order
(BATCH_BYTES of compressed archive at a time, a market's files always together),
streamed into the file; a day is never held whole.

Incremental: a partition keeps the sha256 of the manifest it was made from and is
written again only when that manifest changed (or when it held open data). Open
data (still in the archiver's spool) is exported only with `include_open`, and the
partition is then marked open. A partition is written to a temporary name and
renamed, and the state file is replaced after each one, so an interrupted export
resumes where it stopped.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from ssmd.data.kinds import RECORD_TYPE
from ssmd.data.query import check_tickers, held_days_of, schema_of
from ssmd.data.source import DataFile, Dataset
from ssmd.exceptions import ArchiveError, DataError
from ssmd.records import SCALE_E6, archive_ticker
from ssmd.store import keys

__all__ = [
    "FORMATS",
    "STATE_FILE",
    "ExportRequest",
    "ExportSummary",
    "Partition",
    "export",
    "plan",
    "read_state",
    "usable_partition",
]

FORMATS = ("parquet", "csv", "jsonl")
STATE_FILE = "ssmd-export.json"
STATE_VERSION = 1
# The columns a partition was written with; 2: trades have `source`; 3: trades have
# `taker_side`. A partition written with others is written again, and not read by `scan`.
COLUMNS_VERSION = 3
ROW_GROUP = 64 * 1024  # rows: small enough that a ticker filter skips most of a day
BATCH_BYTES = 16 << 20  # compressed archive bytes read, sorted and written at a time
# zstd level 1 writes about twice as fast as the default (3) for files a few percent
# larger, and reads as fast.
ZSTD_LEVEL = 1


@dataclass(frozen=True)
class Partition:
    """An exported partition usable by `scan`: its file and the tickers it holds."""

    path: Path
    tickers: frozenset[str]


@dataclass
class ExportRequest:
    kinds: list[str]
    days: list[date]
    out: Path
    format: str = "parquet"
    tickers: list[str] | None = None
    series: list[str] | None = None
    include_open: bool = False
    allow_partial: bool = False

    @property
    def selection(self) -> dict[str, list[str] | None]:
        return {
            "tickers": sorted(self.tickers) if self.tickers else None,
            "series": sorted(self.series) if self.series else None,
        }


@dataclass
class Task:
    """One partition to consider: a table on a day."""

    kind: str
    day: date
    files: list[DataFile]
    digest: str | None  # sha256 of the day's manifest, None when there is none yet
    complete: bool  # the manifest is sealed and nothing of the day is spooled
    records: int  # the manifest's count (for progress), or the files' when unknown
    tickers: dict[str, str] = field(default_factory=dict)  # key -> ticker (the manifest's)

    @property
    def name(self) -> str:
        return f"{self.kind}/{self.day.isoformat()}"


@dataclass
class ExportSummary:
    out: str
    format: str
    written: list[str] = field(default_factory=list)  # partitions written
    unchanged: list[str] = field(default_factory=list)  # up to date, not written again
    open: list[str] = field(default_factory=list)  # written with spooled (open) data
    rows: int = 0
    bytes: int = 0
    seconds: float = 0.0
    skipped_files: list[dict[str, str]] = field(default_factory=list)  # --allow-partial

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"rows_per_s": round(self.rows_per_s)}


def _state_path(out: Path) -> Path:
    return out / STATE_FILE


def read_state(out: Path) -> dict[str, Any] | None:
    """The export state in `out`, None when there is none (or it cannot be read)."""
    try:
        state: dict[str, Any] = orjson.loads(_state_path(out).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return state if state.get("state_version") == STATE_VERSION else None


def _write_state(out: Path, state: dict[str, Any]) -> None:
    path = _state_path(out)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(orjson.dumps(state, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    os.replace(tmp, path)


def usable_partition(
    ds: Dataset, state: dict[str, Any] | None, kind: str, day: date
) -> Partition | None:
    """The exported Parquet partition of `kind` on `day` when it holds exactly what the
    archive holds now: a full export (no ticker or series selection), made from the
    day's current manifest, that manifest sealed and no open data in it."""
    if state is None or state.get("format") != "parquet" or state.get("env") != ds.env:
        return None
    assert ds.export_dir is not None, "a state read from the export folder"
    if state.get("feed") != ds.feed or any(state.get("selection", {}).values()):
        return None
    entry = state.get("partitions", {}).get(f"{kind}/{day.isoformat()}")
    if entry is None or not entry.get("complete") or entry.get("open"):
        return None
    if entry.get("columns") != COLUMNS_VERSION:
        return None
    held = ds.manifest(RECORD_TYPE[kind], day)
    if held is None or held[1] != entry.get("manifest_sha256"):
        return None
    path = ds.export_dir / entry["file"]
    if not path.is_file():
        return None
    return Partition(path, frozenset(entry.get("tickers", ())))


def check_out_dir(out: Path, ds: Dataset, request: ExportRequest) -> dict[str, Any]:
    """The state of the export in `out` (a new one for an empty or missing folder).

    Refuses (DataError) a folder that holds something else, or an export of another
    environment, feed, format or selection."""
    state = read_state(out)
    if state is None:
        if out.exists() and not out.is_dir():
            raise DataError(f"{out} is a file, not a folder. Fix: choose a folder with --out")
        others = sorted(p.name for p in out.iterdir())[:3] if out.is_dir() else []
        if others:
            raise DataError(
                f"{out} is not empty ({', '.join(others)}, ...) and holds no ssmd export "
                f"({STATE_FILE}). Fix: choose an empty or new folder with --out"
            )
        return {
            "state_version": STATE_VERSION,
            "env": ds.env,
            "feed": ds.feed,
            "format": request.format,
            "selection": request.selection,
            "partitions": {},
        }
    mine: dict[str, Any] = {
        "env": ds.env,
        "feed": ds.feed,
        "format": request.format,
        "selection": request.selection,
    }
    theirs = {k: state.get(k) for k in mine}
    if theirs != mine:
        differ = ", ".join(
            f"{k} {theirs[k]!r} (asked: {mine[k]!r})" for k in mine if theirs[k] != mine[k]
        )
        raise DataError(
            f"{out} holds an export with another {differ}. Fix: export into another "
            "folder with --out, or ask for what it holds"
        )
    return state


def _series_filter(series: list[str]) -> pl.Expr:
    """Kalshi market tickers start with their series ticker and a dash."""
    expr = pl.lit(False)
    for name in series:
        expr = expr | pl.col("ticker").str.starts_with(f"{name}-")
    return expr


def plan(
    ds: Dataset, request: ExportRequest, state: dict[str, Any]
) -> tuple[list[Task], list[str]]:
    """The partitions to write, and those already up to date. DataError when the range
    holds no data of the kinds asked for, or a ticker asked for has none."""
    todo: list[Task] = []
    unchanged: list[str] = []
    found: set[str] = set()
    open_only: list[str] = []  # partitions with nothing sealed yet, left out
    prefixes = tuple(f"{s}-" for s in request.series or ())
    for kind in request.kinds:
        record_type = RECORD_TYPE[kind]
        for day in request.days:
            every = ds.normalized_files(record_type, day)
            held = ds.manifest(record_type, day)
            if not every and held is None:
                continue
            sealed = [f for f in every if f.sealed]
            spooled = len(sealed) < len(every)
            if spooled and not sealed and not request.include_open:
                open_only.append(f"{kind}/{day.isoformat()}")
                continue
            files = every if request.include_open else sealed
            if request.tickers:
                types = {f.info.data_type for f in files}  # trades: live and backfilled
                keyed = {
                    keys.normalized_key(ds.env, ds.feed, rt, day, t): t
                    for t in request.tickers
                    for rt in types
                }
                found.update(keyed[f.key] for f in files if f.key in keyed)
                files = [f for f in files if f.key in keyed]
            if prefixes:
                files = [
                    f for f in files if f.info.ticker is None or f.info.ticker.startswith(prefixes)
                ]
            manifest, digest = held if held is not None else ({}, None)
            complete = manifest.get("status") == "sealed" and not spooled
            task = Task(
                kind,
                day,
                files,
                digest,
                complete,
                int(manifest.get("record_count", 0)),
                {f["key"]: f["ticker"] for f in manifest.get("files", []) if f.get("ticker")},
            )
            entry = state["partitions"].get(task.name)
            up_to_date = (
                entry is not None
                and digest is not None
                and entry.get("manifest_sha256") == digest
                and entry.get("columns") == COLUMNS_VERSION
                and not entry.get("open")
                and not entry.get("partial")  # a damaged file left out: try again
                and not (spooled and request.include_open)
                and (request.out / entry["file"]).is_file()
            )
            if up_to_date:
                unchanged.append(task.name)
            else:
                todo.append(task)
    if not todo and not unchanged and open_only:
        raise DataError(
            f"{', '.join(open_only)} hold only open data (still in the archiver's spool). "
            "Fix: pass --include-open to export it, marked open"
        )
    if not todo and not unchanged:
        kinds = ", ".join(request.kinds)
        held_days = held_days_of(ds, {RECORD_TYPE[k] for k in request.kinds})
        raise DataError(
            f"no {kinds} data in environment {ds.env} (feed {ds.feed}) from "
            f"{request.days[0]} to {request.days[-1]}; days with data: {held_days}. "
            "Fix: choose dates from those"
        )
    if request.tickers:
        check_tickers(ds, request.tickers, found, "normalized", request.days)
    return todo, unchanged


@dataclass
class _Written:
    """What went into a partition's file, and how far the partition is (for progress)."""

    rows: int = 0
    tickers: set[str] = field(default_factory=set)
    records_done: int = 0  # of the partition's records (its manifest's), by bytes read


def _ticker_of(file: DataFile, task: Task) -> str:
    """A file's ticker: from its key, else the manifest, else its first record (a hashed
    segment of a file not sealed yet)."""
    if file.info.ticker is not None:
        return file.info.ticker
    if file.key in task.tickers:
        return task.tickers[file.key]
    return archive_ticker([file.load()]) or ""


def _ticker_batches(task: Task) -> Iterator[list[DataFile]]:
    """The partition's files in ticker order, in batches of about BATCH_BYTES; the files
    of one ticker (a sealed file and late data in the spool) stay in one batch."""
    by_ticker: dict[str, list[DataFile]] = {}
    for file in task.files:
        by_ticker.setdefault(_ticker_of(file, task), []).append(file)
    batch: list[DataFile] = []
    size = 0
    for ticker in sorted(by_ticker):
        files = by_ticker[ticker]
        if batch and size + sum(f.size for f in files) > BATCH_BYTES:
            yield batch
            batch, size = [], 0
        batch += files
        size += sum(f.size for f in files)
    if batch:
        yield batch


def _rows(
    ds: Dataset,
    task: Task,
    request: ExportRequest,
    summary: ExportSummary,
    written: _Written,
    on_progress: Callable[[int], None] | None,
) -> pl.LazyFrame:
    """The partition's rows, sorted by (ticker, exchange_ts), read batch by batch as the
    writer asks for them: memory holds one batch, never the whole day. Progress goes
    by the share of the partition's bytes read."""
    from polars.io.plugins import register_io_source

    def left_out(file: DataFile, error: ArchiveError) -> None:
        summary.skipped_files.append({"file": file.location, "error": str(error)})

    def batches(
        with_columns: list[str] | None,
        _predicate: pl.Expr | None,
        _n_rows: int | None,
        _batch_size: int | None,
    ) -> Iterator[pl.DataFrame]:
        total = max(1, sum(f.size for f in task.files))
        read = 0
        for files in _ticker_batches(task):
            frame = ds.read_many(files, task.kind, left_out if request.allow_partial else None)
            if request.tickers:
                frame = frame.filter(pl.col("ticker").is_in(request.tickers))
            if request.series:
                frame = frame.filter(_series_filter(request.series))
            frame = frame.sort(["ticker", "exchange_ts"], maintain_order=True, nulls_last=True)
            written.rows += frame.height
            written.tickers.update(frame.get_column("ticker").drop_nulls().unique().to_list())
            read += sum(f.size for f in files)
            done = task.records * read // total
            if on_progress is not None:
                on_progress(done - written.records_done)
            written.records_done = done
            yield frame.select(with_columns) if with_columns is not None else frame

    return register_io_source(batches, schema=schema_of(task.kind))


def _write(rows: pl.LazyFrame, path: Path, fmt: str, metadata: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if fmt == "parquet":
        rows.sink_parquet(
            tmp,
            compression="zstd",
            compression_level=ZSTD_LEVEL,
            statistics=True,
            row_group_size=ROW_GROUP,
            metadata=metadata,
        )
    elif fmt == "csv":
        rows.sink_csv(tmp, check_extension=False)
    else:
        rows.sink_ndjson(tmp, check_extension=False)
    os.replace(tmp, path)


def export(
    ds: Dataset,
    request: ExportRequest,
    *,
    on_plan: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> ExportSummary:
    """Write the partitions `request` asks for that are missing or out of date.

    `on_plan(total_records)` is called once the work is known, `on_progress(records)`
    as each batch of a partition is read (records by the share of its bytes). A damaged file raises ArchiveError naming it and the offset,
    unless `allow_partial`: then it is left out and listed in the summary.
    """
    started = time.monotonic()
    state = check_out_dir(request.out, ds, request)
    todo, unchanged = plan(ds, request, state)
    summary = ExportSummary(str(request.out), request.format, unchanged=unchanged)
    if on_plan is not None:
        on_plan(sum(t.records for t in todo))
    request.out.mkdir(parents=True, exist_ok=True)
    for task in todo:
        skipped_before = len(summary.skipped_files)
        written = _Written()
        has_open = any(not f.sealed for f in task.files)
        relative = f"type={task.kind}/date={task.day.isoformat()}/part-0.{request.format}"
        metadata = {
            "ssmd.env": ds.env,
            "ssmd.feed": ds.feed,
            "ssmd.type": task.kind,
            "ssmd.date": task.day.isoformat(),
            "ssmd.manifest_sha256": task.digest or "",
            "ssmd.open": "true" if has_open else "false",
            "ssmd.scale_e6": str(SCALE_E6),  # units per dollar or contract of `*_e6`
        }
        _write(
            _rows(ds, task, request, summary, written, on_progress),
            request.out / relative,
            request.format,
            metadata,
        )
        partial = len(summary.skipped_files) > skipped_before
        state["partitions"][task.name] = {
            "file": relative,
            "manifest_sha256": task.digest,
            "columns": COLUMNS_VERSION,
            "complete": task.complete and not partial,
            "partial": partial,
            "open": has_open,
            "rows": written.rows,
            "tickers": sorted(written.tickers),
            "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        _write_state(request.out, state)
        summary.written.append(task.name)
        if has_open:
            summary.open.append(task.name)
        summary.rows += written.rows
        summary.bytes += (request.out / relative).stat().st_size
        if on_progress is not None and written.records_done < task.records:
            on_progress(task.records - written.records_done)
    if not state["partitions"]:
        _write_state(request.out, state)
    summary.seconds = time.monotonic() - started
    return summary
