"""Any date range of the archive as a Polars LazyFrame: `scan` for normalized tables,
`raw` for raw frames.

    import ssmd.data
    trades = ssmd.data.scan("trade", "2026-12-01", "2026-12-03", env="kalshi-sim",
                            tickers=["KXBTCD-26DEC0317-T118000"]).collect()

Each day is read from the Parquet export (`ssmd data export`) when the export holds it
and was made from the day's current manifest, otherwise from the archive itself (sealed
files, then the spool for open days). Both give the same columns. Ticker filters skip
whole files (archive) or row groups (Parquet); time filters skip whole days, and any
other filter given to the LazyFrame is pushed down to each file read.

Times: `start` and `end` are dates (a whole UTC day; `end` inclusive) or datetimes
(`end` exclusive) or UTC nanoseconds (int, `end` exclusive); strings in ISO 8601
are read as such, a time without a zone as UTC. The window applies to `receive_ts`, when ssmd received the message, which is
also how the archive is split into days.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import orjson
import polars as pl

from ssmd.data.kinds import RECORD_TYPE, closest, parse_kinds
from ssmd.data.source import DataFile, Dataset
from ssmd.exceptions import DataError
from ssmd.store import keys

__all__ = [
    "RAW_SCHEMA",
    "Window",
    "days",
    "raw",
    "raw_line_seq",
    "scan",
    "schema_of",
    "window",
]

DateLike = date | datetime | str | int  # int: UTC nanoseconds

RAW_SCHEMA: dict[str, pl.DataType] = {
    "receive_ts": pl.Datetime("ns", "UTC"),
    "msgtype": pl.String(),
    "conn_id": pl.String(),  # the connection id the connector gave the frame
    "stream_seq": pl.UInt64(),  # the JetStream sequence the frame was archived from
    "frame": pl.Binary(),  # the frame byte for byte as the exchange sent it
}


@dataclass(frozen=True)
class Window:
    """A receive-time window [start_ns, end_ns) and the UTC days it touches."""

    start_ns: int
    end_ns: int

    @property
    def first_day(self) -> date:
        return keys.day_of_ns(self.start_ns)

    @property
    def last_day(self) -> date:
        return keys.day_of_ns(self.end_ns - 1)

    def days(self) -> list[date]:
        first, last = self.first_day, self.last_day
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]

    def covers(self, day: date) -> bool:
        """True when the window holds the whole day (no row filter needed)."""
        start = _ns(datetime(day.year, day.month, day.day, tzinfo=UTC))
        return self.start_ns <= start and start + 86_400 * 10**9 <= self.end_ns

    def describe(self) -> str:
        day = 86_400 * 10**9
        if self.start_ns % day == 0 and self.end_ns % day == 0:
            return f"from {self.first_day} to {self.last_day}"
        return f"from {_iso(self.start_ns)} to {_iso(self.end_ns)} (exclusive)"


def _ns(moment: datetime) -> int:
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 10**9, UTC).isoformat().replace("+00:00", "Z")


def _parse(value: DateLike, what: str) -> date | datetime | int:
    if isinstance(value, (int, date)):
        return value
    text = value.strip()
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{what} {value!r} is neither a date (YYYY-MM-DD) nor a time (YYYY-MM-DDTHH:MM:SSZ)"
        ) from None


def _start_ns(value: date | datetime | int) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, datetime):
        return _ns(value if value.tzinfo else value.replace(tzinfo=UTC))
    return _ns(datetime(value.year, value.month, value.day, tzinfo=UTC))


def window(start: DateLike, end: DateLike | None = None) -> Window:
    """The receive-time window of `start`..`end` (see the module doc); `end` None is the
    day of `start` (or, for a time, the end of its day)."""
    first = _parse(start, "start")
    last = _parse(end, "end") if end is not None else None
    start_ns = _start_ns(first)
    if last is None:
        end_ns = _start_ns(keys.day_of_ns(start_ns)) + 86_400 * 10**9
    elif isinstance(last, (datetime, int)):
        end_ns = _start_ns(last)
    else:
        end_ns = _start_ns(last) + 86_400 * 10**9
    if end_ns <= start_ns:
        raise ValueError(f"the range {_iso(start_ns)} to {_iso(end_ns)} is empty: it ends first")
    return Window(start_ns, end_ns)


def schema_of(kind: str) -> pl.Schema:
    """The columns of a kind's table (from the archive or the export alike)."""
    return Dataset.read_empty(kind).schema


def _kind(name: str) -> str:
    kinds = parse_kinds(name)
    if len(kinds) != 1:
        raise DataError(
            f"{name!r} names several tables ({', '.join(kinds)}). Fix: scan one at a time"
        )
    return kinds[0]


def held_days_of(ds: Dataset, record_types: Iterable[str]) -> str:
    """The days the archive holds of some record types, as short ranges for messages."""
    days = sorted({d for t in record_types for d in ds.days(t)})
    if not days:
        return "none"
    spans: list[tuple[date, date]] = []
    for day in days:
        if spans and (day - spans[-1][1]).days == 1:
            spans[-1] = (spans[-1][0], day)
        else:
            spans.append((day, day))
    text = [a.isoformat() if a == b else f"{a} to {b}" for a, b in spans[-8:]]
    more = f"{len(spans) - 8} earlier spans and " if len(spans) > 8 else ""
    return more + ", ".join(text)


def _no_data(ds: Dataset, what: str, record_type: str, win: Window) -> DataError:
    return DataError(
        f"no {what} data in environment {ds.env} (feed {ds.feed}) {win.describe()}; "
        f"days with {what} data: {held_days_of(ds, [record_type])}. "
        "Fix: choose dates from those"
    )


def check_tickers(
    ds: Dataset, tickers: Iterable[str], found: set[str], what: str, days: list[date]
) -> None:
    """DataError for tickers with no file in `days`, naming the closest tickers that
    have some (`found`: tickers asked for that do)."""
    missing = [t for t in tickers if t not in found]
    if not missing:
        return
    known = sorted(ds.tickers_of(days))
    hints = "; ".join(f"{t!r}{closest(t, known) or ' (nothing close)'}" for t in missing)
    raise DataError(
        f"no {what} data for {hints} in environment {ds.env} from {days[0]} to {days[-1]}. "
        "Fix: check the ticker (Kalshi market tickers are upper case)"
    )


def days(
    kind: str,
    *,
    env: str | None = None,
    data_dir: str | Path | None = None,
    config_dir: str | Path | None = None,
    feed: str | None = None,
    dataset: Dataset | None = None,
) -> list[date]:
    """The UTC days the archive holds of a table (`raw` for raw frames), sealed or open,
    in order."""
    ds = dataset or Dataset.open(env, data_dir=data_dir, config_dir=config_dir, feed=feed)
    return ds.days(keys.RAW_DATA_TYPE if kind == "raw" else RECORD_TYPE[_kind(kind)])


def scan(
    kind: str,
    start: DateLike,
    end: DateLike | None = None,
    *,
    tickers: Iterable[str] | None = None,
    env: str | None = None,
    data_dir: str | Path | None = None,
    config_dir: str | Path | None = None,
    feed: str | None = None,
    include_open: bool = True,
    dataset: Dataset | None = None,
) -> pl.LazyFrame:
    """One table (ssmd.records.TABLE_KINDS: trade, ticker, book_delta, book_level,
    lifecycle, event_lifecycle, status, connector_event, spot_level, spot_ticker) over
    `start`..`end`.

    `env` defaults to $SSMD_ENV; `data_dir` and `config_dir` as for the CLI.
    `include_open=False` leaves out data still in the archiver's spool. Raises
    DataError for an unknown kind or ticker (naming the closest known ones) and for a
    range without data (naming the days that have some); ArchiveError, when the
    frame is collected, for a damaged file (naming it and the offset).
    """
    from ssmd.data.export import read_state, usable_partition

    table = _kind(kind)
    ds = dataset or Dataset.open(env, data_dir=data_dir, config_dir=config_dir, feed=feed)
    win = window(start, end)
    record_type = RECORD_TYPE[table]
    wanted = sorted(set(tickers)) if tickers is not None else None
    parquet: list[str] = []
    files: list[DataFile] = []
    days_with_data: list[date] = []
    found: set[str] = set()
    state = read_state(ds.export_dir) if ds.export_dir is not None else None
    for day in win.days():
        exported = usable_partition(ds, state, table, day)
        if exported is not None and not (include_open and ds.has_open(record_type, day)):
            parquet.append(str(exported.path))
            days_with_data.append(day)
            found.update(t for t in wanted or () if t in exported.tickers)
            continue
        day_files = ds.normalized_files(record_type, day, include_open=include_open)
        if not day_files:
            continue
        days_with_data.append(day)
        if wanted is None:
            files += day_files
            continue
        types = {f.info.data_type for f in day_files}  # trades: live and backfilled
        keyed = {
            keys.normalized_key(ds.env, ds.feed, rt, day, t): t for t in wanted for rt in types
        }
        for f in day_files:
            if f.key in keyed:
                files.append(f)
                found.add(keyed[f.key])
    if not days_with_data:
        raise _no_data(ds, table, record_type, win)
    if wanted is not None:
        check_tickers(ds, wanted, found, table, days_with_data)
    schema = schema_of(table)
    parts = []
    if parquet:
        parts.append(pl.scan_parquet(parquet, hive_partitioning=False, schema=schema))
    if files:
        parts.append(_archive_source(ds, files, table, schema))
    frame = pl.concat(parts, how="vertical") if len(parts) > 1 else parts[0]
    if not all(win.covers(d) for d in days_with_data):
        ts = pl.col("receive_ts").dt.epoch("ns")
        frame = frame.filter((ts >= win.start_ns) & (ts < win.end_ns))
    if wanted is not None:
        frame = frame.filter(pl.col("ticker").is_in(wanted))
    return frame


def _archive_source(
    ds: Dataset, files: list[DataFile], kind: str, schema: pl.Schema
) -> pl.LazyFrame:
    """A LazyFrame that reads `files` in batches when collected, applying the projection,
    filters and row limit Polars pushes down to each batch."""
    from polars.io.plugins import register_io_source

    def source(
        with_columns: list[str] | None,
        predicate: pl.Expr | None,
        n_rows: int | None,
        _batch_size: int | None,
    ) -> Iterator[pl.DataFrame]:
        left = n_rows
        for batch in _batches(files):
            if left is not None and left <= 0:
                return
            frame = ds.read_many(batch, kind)
            if predicate is not None:
                frame = frame.filter(predicate)
            if with_columns is not None:
                frame = frame.select(with_columns)
            if left is not None:
                frame = frame.head(left)
                left -= frame.height
            yield frame

    return register_io_source(source, schema=schema, explain_name="ssmd archive")


_BATCH_BYTES = 16 << 20  # compressed bytes of archive files decoded together


def _batches(files: list[DataFile]) -> Iterator[list[DataFile]]:
    """Files in groups of about _BATCH_BYTES: small files are cheaper decoded together,
    and memory holds one group's rows at a time."""
    batch: list[DataFile] = []
    size = 0
    for file in files:
        if batch and size + file.size > _BATCH_BYTES:
            yield batch
            batch, size = [], 0
        batch.append(file)
        size += file.size
    if batch:
        yield batch


def raw(
    start: DateLike,
    end: DateLike | None = None,
    *,
    msgtypes: Iterable[str] | None = None,
    env: str | None = None,
    data_dir: str | Path | None = None,
    config_dir: str | Path | None = None,
    feed: str | None = None,
    include_open: bool = True,
    dataset: Dataset | None = None,
) -> pl.LazyFrame:
    """Raw frames over `start`..`end` (times as for `scan`): receive_ts, msgtype (the
    connector's frame kind), conn_id, stream_seq and `frame`, the bytes the exchange
    sent (frames kept as text or base64 in the archive are given back as bytes).
    `msgtypes` keeps only those frame kinds (whole files are skipped). Quarantined
    messages are not frames and are not included."""
    ds = dataset or Dataset.open(env, data_dir=data_dir, config_dir=config_dir, feed=feed)
    win = window(start, end)
    wanted = set(msgtypes) if msgtypes is not None else None
    files: list[DataFile] = []
    any_day = False
    for day in win.days():
        day_files = ds.raw_files(day, include_open=include_open)
        any_day = any_day or bool(day_files)
        files += [f for f in day_files if wanted is None or f.info.msgtype in wanted]
    if not any_day:
        raise _no_data(ds, "raw", keys.RAW_DATA_TYPE, win)
    frame = _raw_source(files)
    ts = pl.col("receive_ts").dt.epoch("ns")
    return frame.filter((ts >= win.start_ns) & (ts < win.end_ns))


def _raw_source(files: list[DataFile]) -> pl.LazyFrame:
    from polars.io.plugins import register_io_source

    def source(
        with_columns: list[str] | None,
        predicate: pl.Expr | None,
        n_rows: int | None,
        _batch_size: int | None,
    ) -> Iterator[pl.DataFrame]:
        for file in files:
            frame = read_raw_file(file)
            if predicate is not None:
                frame = frame.filter(predicate)
            if with_columns is not None:
                frame = frame.select(with_columns)
            yield frame

    return register_io_source(source, schema=RAW_SCHEMA, explain_name="ssmd raw archive")


_CONN = b',"conn":'


def read_raw_file(file: DataFile) -> pl.DataFrame:
    """One raw file's frames (see `raw`). A damaged file raises ArchiveError naming it."""
    from ssmd import core
    from ssmd.exceptions import ArchiveError

    contents = core.read_archive(file.load())
    if contents.truncated_tail is not None and file.sealed:
        offset, length = contents.truncated_tail
        raise ArchiveError(
            f"{file.location}: archive ends inside a zstd frame ({length} bytes at byte {offset})"
        )
    try:
        rows = core.raw_lines(contents.data)
    except ArchiveError as exc:
        raise ArchiveError(f"{file.location}: {exc}") from None
    names = ("receive_ts", "stream_seq", "msgtype", "conn_id", "frame")  # raw_lines' order
    columns = dict(zip(names, map(list, zip(*rows, strict=True)), strict=True)) if rows else {}
    return pl.DataFrame(
        {name: columns.get(name, []) for name in RAW_SCHEMA},
        schema={**RAW_SCHEMA, "receive_ts": pl.Int64},
    ).with_columns(pl.col("receive_ts").cast(RAW_SCHEMA["receive_ts"]))


def raw_line_seq(line: bytes) -> int | None:
    """The stream sequence of one raw archive line (None when it has none), read from
    the line's tail alone: the frame before it is not parsed."""
    tail_at = line.rfind(_CONN)
    try:
        fields = orjson.loads(b"{" + line[tail_at + 1 :] if tail_at >= 0 else line)
    except orjson.JSONDecodeError:
        return None
    seq = fields.get("seq") if isinstance(fields, dict) else None
    return seq if isinstance(seq, int) else None
