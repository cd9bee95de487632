"""What a replay sends, in order: the archived frames, the archived connector events,
and gap notices, merged by receive time.

    source = ReplaySource(ds, start_ns, end_ns, tickers={"KXBTCD-..."})
    for entry in source.entries(from_ns):
        ...   # entry.frame (RawFrame) or entry.event (a connector_event record)
        for notice in source.drain_notices(): ...

Gap notices are connector `gap` events (the record every consumer of the stream
already reads) made by the replay for what no archived `gap` event says: the day's
manifest gaps of a lost connection or a stopped or crashed connector, and an archive
file left out because it is damaged (from the damage to the end of that file's hour).
Their reason starts with `replay:`.
"""

from __future__ import annotations

import heapq
import logging
from collections import deque
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, NamedTuple

from ssmd import core, records
from ssmd.data.source import DataFile, Dataset
from ssmd.data.stream import ConnectorEvent, RawFrame, connector_events, raw_frames
from ssmd.exceptions import ArchiveError
from ssmd.store import keys

__all__ = ["NOTICE_PREFIX", "Entry", "ReplaySource", "as_event", "frame_ticker", "gap_record"]

log = logging.getLogger(__name__)

NOTICE_PREFIX = "replay:"
# Manifest gaps that no archived `gap` event announces (the others are replayed as the
# connector and the archiver wrote them).
_SILENT_GAPS = ("disconnect", "connector_stopped", "connector_crashed")
_TICKER = b'"market_ticker":"'


class Entry(NamedTuple):
    """One thing to send: a frame, or a connector event (archived or a notice)."""

    receive_ns: int
    frame: RawFrame | None = None
    event: ConnectorEvent | None = None


def gap_record(
    at_ns: int, reason: str, *, duration_ns: int = 0, tickers: list[str] | None = None
) -> dict[str, Any]:
    """A connector `gap` event announcing a gap of the replay (reason `replay: ...`)."""
    return records.connector_event(
        "gap",
        at_ns,
        exchange_ns=at_ns,
        reason=f"{NOTICE_PREFIX} {reason}",
        duration_ns=duration_ns,
        tickers=tickers or [],
    )


def as_event(rec: dict[str, Any]) -> ConnectorEvent:
    return ConnectorEvent(int(rec["receive_ts"]), core.encode_records([rec]), rec)


def frame_ticker(frame: bytes) -> str | None:
    """The market ticker a Kalshi frame names, without parsing it (None: none)."""
    at = frame.find(_TICKER)
    if at < 0:
        return None
    start = at + len(_TICKER)
    end = frame.find(b'"', start)
    return frame[start:end].decode("utf-8", "replace") if end > 0 else None


@dataclass
class ReplaySource:
    ds: Dataset
    start_ns: int
    end_ns: int
    tickers: set[str] | None = None
    damaged: list[str] = field(default_factory=list)  # files left out, with why
    _notices: deque[ConnectorEvent] = field(default_factory=deque)
    _position: int = 0

    def entries(self, from_ns: int | None = None) -> Generator[Entry, None, None]:
        """Everything from `from_ns` (default: the start) to the end, in receive order."""
        start = max(self.start_ns, from_ns if from_ns is not None else self.start_ns)
        frames = raw_frames(self.ds, start, self.end_ns, on_damage=self._damage)
        # Events are few (a day's heartbeats, gaps): merged into the frames by hand
        # rather than compared with every frame; on equal times the frame goes first.
        events = heapq.merge(
            connector_events(self.ds, start, self.end_ns, on_damage=self._damage),
            self._manifest_gaps(start),
            key=lambda e: e.receive_ns,
        )
        event = next(events, None)
        for f in frames:
            while event is not None and event.receive_ns < f.receive_ns:
                self._position = event.receive_ns
                yield Entry(event.receive_ns, event=event)
                event = next(events, None)
            if self._wanted(f):
                self._position = f.receive_ns
                yield Entry(f.receive_ns, f)
        while event is not None:
            self._position = event.receive_ns
            yield Entry(event.receive_ns, event=event)
            event = next(events, None)

    def books_at(self, at_ns: int) -> list[tuple[str, bytes]]:
        """The books of the day's markets just before `at_ns` as `book` checkpoint
        records (ssmd.data.books), for consumers to start from: a replay from the middle
        of a day, or of a day whose snapshots came the day before."""
        from ssmd.data.books import book_records_at

        tickers = self.ds.tickers_of([keys.day_of_ns(at_ns)])
        if self.tickers is not None:
            tickers &= self.tickers
        return book_records_at(tickers, at_ns, dataset=self.ds)

    def drain_notices(self) -> Iterator[ConnectorEvent]:
        """Gap notices for damage found since the last call."""
        while self._notices:
            yield self._notices.popleft()

    def _wanted(self, frame: RawFrame) -> bool:
        if frame.msgtype == "undecodable":
            return False  # a normalized payload the archiver could not read, not a frame
        if self.tickers is None:
            return True
        ticker = frame_ticker(frame.frame)
        return ticker is None or ticker in self.tickers

    def _damage(self, file: DataFile, exc: ArchiveError) -> None:
        log.warning("%s; left out of the replay", exc)
        self.damaged.append(str(exc))
        at = max(self._position, self.start_ns)
        if file.info.hour is not None:
            end = (at // core.HOUR_NS + 1) * core.HOUR_NS
        else:  # a normalized file (events) is a day's
            end = (at // core.DAY_NS + 1) * core.DAY_NS
        self._notices.append(
            as_event(gap_record(at, f"damaged archive file left out: {exc}", duration_ns=end - at))
        )

    def _manifest_gaps(self, start: int) -> list[ConnectorEvent]:
        out = []
        day, last = keys.day_of_ns(start), keys.day_of_ns(self.end_ns - 1)
        seen: set[tuple[str, int]] = set()
        for offset in range((last - day).days + 1):
            for gap in self.ds.gaps(day + timedelta(days=offset)):
                at, reason = int(gap["start_ns"]), str(gap["reason"])
                if reason not in _SILENT_GAPS or not start <= at < self.end_ns:
                    continue
                if (reason, at) in seen:
                    continue
                seen.add((reason, at))
                rec = gap_record(
                    at,
                    f"{reason}: {gap.get('detail', '')}".rstrip(": "),
                    duration_ns=int(gap["end_ns"]) - at,
                    tickers=[str(t) for t in gap.get("markets", [])],
                )
                out.append(as_event(rec))
        out.sort(key=lambda e: e.receive_ns)
        return out
