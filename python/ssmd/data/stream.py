"""Raw frames and connector events of a receive-time window, one at a time, in receive
order, with bounded memory: what a replay reads.

    ds = Dataset.open("kalshi-sim")
    for frame in raw_frames(ds, start_ns, end_ns):
        ...  # frame.receive_ns, frame.msgtype, frame.frame (the bytes as received)

The raw archive keeps one file per frame kind and hour of receive time. Hour by hour,
every file of the hour is streamed through zstd at once and the files are merged by
(receive time, stream sequence), the order the connector received and published them
in. Memory holds about one zstd frame per file of one hour (the archiver writes a
frame every few seconds), never an hour or a day.

A damaged file (a corrupt zstd frame, a sealed file cut short, a line that is not a
raw line) raises ArchiveError naming it; with `on_damage`, the frames before the
damage are given, the rest of the file is left out and reported there.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NamedTuple

from ssmd import core
from ssmd.data.source import DataFile, Dataset
from ssmd.exceptions import ArchiveError, DecodeError
from ssmd.store import keys

__all__ = ["ConnectorEvent", "RawFrame", "connector_events", "raw_frames"]

Damage = Callable[[DataFile, ArchiveError], None]
RawLine = tuple[int, int, str, str | None, bytes]  # RawFrame's fields, as core.raw_lines gives them


class RawFrame(NamedTuple):
    """One archived frame: when it was received, the stream sequence it was archived
    from, the connector's frame kind and connection, and the bytes as received. A tuple
    in that order, so that frames sort in receive order as they are."""

    receive_ns: int
    stream_seq: int
    msgtype: str
    conn_id: str | None
    frame: bytes


@dataclass(frozen=True, slots=True)
class ConnectorEvent:
    """One archived connector event: its receive time, the packed record as stored, and
    the record decoded."""

    receive_ns: int
    data: bytes
    record: dict[str, Any]


def raw_frames(
    ds: Dataset,
    start_ns: int,
    end_ns: int,
    *,
    msgtypes: Iterable[str] | None = None,
    include_open: bool = True,
    on_damage: Damage | None = None,
) -> Iterator[RawFrame]:
    """The frames received in [start_ns, end_ns), in receive order (see the module doc);
    `msgtypes` keeps only those frame kinds (other files are not read)."""
    wanted = set(msgtypes) if msgtypes is not None else None
    day_listed = None
    day_files: list[DataFile] = []
    hour_start = start_ns // core.HOUR_NS * core.HOUR_NS
    while hour_start < end_ns:
        day = keys.day_of_ns(hour_start)
        if day != day_listed:
            day_files, day_listed = ds.raw_files(day, include_open=include_open), day
        hour = keys.hour_of_ns(hour_start)
        files = [
            f
            for f in day_files
            if f.info.hour == hour and (wanted is None or f.info.msgtype in wanted)
        ]
        for frame in heapq.merge(*(_file_frames(f, on_damage) for f in files)):
            if frame[0] >= end_ns:
                return
            if frame[0] >= start_ns:
                yield RawFrame._make(frame)
        hour_start += core.HOUR_NS


def _file_frames(file: DataFile, on_damage: Damage | None) -> Iterator[RawLine]:
    """One raw file's frames as its bytes stream in (as core.raw_lines gives them)."""
    reader = core.ArchiveReader()
    tail = b""
    lines_before = 0
    try:
        for chunk in file.chunks():
            reader.feed(chunk)
            data = tail + reader.take()
            cut = data.rfind(b"\n") + 1
            data, tail = data[:cut], data[cut:]
            yield from core.raw_lines(data, lines_before + 1)
            lines_before += data.count(b"\n")
        contents = reader.finish()
        if contents.truncated_tail is not None and file.sealed:
            offset, length = contents.truncated_tail
            raise ArchiveError(
                f"{file.location}: archive ends inside a zstd frame "
                f"({length} bytes at byte {offset})"
            )
        yield from core.raw_lines(tail + contents.data, lines_before + 1)
    except ArchiveError as exc:
        located = exc if file.location in str(exc) else ArchiveError(f"{file.location}: {exc}")
        if on_damage is None:
            raise located from None
        on_damage(file, located)


def connector_events(
    ds: Dataset,
    start_ns: int,
    end_ns: int,
    *,
    include_open: bool = True,
    on_damage: Damage | None = None,
) -> Iterator[ConnectorEvent]:
    """The connector events (and the archiver's, which are stored with them) received
    in [start_ns, end_ns), in receive order, a day's events file at a time (a few
    thousand records a day: heartbeats every few seconds, and the rest)."""
    day = keys.day_of_ns(start_ns)
    last = keys.day_of_ns(end_ns - 1)
    while day <= last:
        events: list[ConnectorEvent] = []
        for file in ds.normalized_files(keys.EVENTS_TYPE, day, include_open=include_open):
            try:
                events += _events_of(file)
            except ArchiveError as exc:
                if on_damage is None:
                    raise
                on_damage(file, exc)
        events.sort(key=lambda e: e.receive_ns)
        for event in events:
            if start_ns <= event.receive_ns < end_ns:
                yield event
        day += timedelta(days=1)


def _events_of(file: DataFile) -> list[ConnectorEvent]:
    contents = core.read_archive(file.load())
    if contents.truncated_tail is not None and file.sealed:
        offset, length = contents.truncated_tail
        raise ArchiveError(
            f"{file.location}: archive ends inside a zstd frame ({length} bytes at byte {offset})"
        )
    data = contents.data
    try:
        spans = core.record_spans(data)
        records = core.decode_records(data)
    except DecodeError as exc:
        raise ArchiveError(f"{file.location}: {exc}") from None
    return [
        ConnectorEvent(int(rec["receive_ts"]), data[start:end], rec)
        for (start, end), rec in zip(spans, records, strict=True)
    ]
