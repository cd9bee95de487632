"""From captured frames to messages: batch normalization, seq tracking, routing.

`Pipeline.process(items)` is synchronous and runs once per batch: it calls the venue's
codec (ssmd.venues.base.Codec; Kalshi's is normalize_kalshi) once per run of frames
from one connection, has the Rust core lay out the raw and normalized messages in one
OutBatch (subjects from ssmd.bus.subjects, ids `{conn}:{frame}` and `{conn}:{frame}:n`;
no Python object per message), asks the codec for
the batch's book events (Kalshi: a BookSet tracks seqs per (connection, sid) and the
books) and sequence events (a SeqTracker for trade and lifecycle records), and returns
what to publish plus what happened (gaps, resyncs, duplicates, lifecycle records) for
the runner to act on. Both walk the batch in frame order, so a frame that yields no
record (its market or body cannot be read; it is published raw) still takes its seq,
and the frame after it is no false gap.

`Pipeline.checkpoint` turns the books changed since its last call into `book`
records (the codec's checkpoint) for consumers that join late.

A `disconnected` connector event passing through (events travel in order with the
frames) makes the SeqTracker forget that connection (its frames are all behind) and
invalidates its books until snapshots arrive on the next connection.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ssmd import core
from ssmd.bus import subjects
from ssmd.bus.publisher import OutMsg
from ssmd.connector.capture_queue import Item
from ssmd.venues.base import Codec

__all__ = ["Gap", "Outcome", "Pipeline"]


@dataclass
class Gap:
    """A sequence gap on (conn_id, sid). `book` gaps can be repaired with snapshots;
    the others (trade, lifecycle) cannot: `tickers` then holds the ticker of the first
    record after the gap ("" when that frame yielded no record), and the event is the
    record of the loss.

    `unreadable`: no seq is missing, but the delta at seq `received` had no readable
    market, so the books of the sid (`tickers`) are invalid until snapshots."""

    conn_id: int
    sid: int
    expected: int
    received: int
    tickers: list[str]
    book: bool = True
    unreadable: bool = False


@dataclass
class Outcome:
    messages: core.OutBatch = field(default_factory=core.OutBatch)
    gaps: list[Gap] = field(default_factory=list)
    resynced: list[str] = field(default_factory=list)
    duplicates: int = 0
    lifecycle: list[dict[str, Any]] = field(default_factory=list)
    frames: Counter[str] = field(default_factory=Counter)
    problems: Counter[str] = field(default_factory=Counter)


class Pipeline:
    def __init__(
        self, env: str, feed: str, codec: Codec | None = None, *, exchange_headers: bool = False
    ) -> None:
        """`exchange_headers` (the replay's): every normalized record also carries its
        receive and exchange times (`Ssmd-Receive-Ns`, `Ssmd-Exchange-Ns`), and a raw
        frame the exchange time of its first record (frames without records, such as
        replies, get none)."""
        if codec is None:
            from ssmd.venues import venue

            codec = venue("kalshi").codec()
        self.env, self.feed = env, feed
        self.codec = codec
        self.exchange_headers = exchange_headers
        self.raw_subjects = [subjects.raw(env, feed, k) for k in codec.frame_kinds]
        self.kind_names = list(codec.frame_kinds)
        self._tokens: dict[str, str] = {}
        prefix = subjects.prefix(env, feed)
        self._heads = {
            t: subjects.type_prefix(prefix, t) for t in (*core.RECORD_TYPES, subjects.BOOK)
        }

    @property
    def books(self) -> Any:
        """The codec's books, when it has a BookSet (Kalshi)."""
        return getattr(self.codec, "books", None)

    @property
    def seq(self) -> Any:
        """The codec's SeqTracker, when it has one (Kalshi)."""
        return getattr(self.codec, "seq", None)

    def forget(self, conn_id: int) -> None:
        """A connection is gone: drop its sequence state (conn_ids are never reused) and
        mark its books invalid until the next connection's snapshots, so that the next
        checkpoint round says so to late readers."""
        self.codec.forget(conn_id)

    def _token(self, ticker: str) -> str:
        token = self._tokens.get(ticker)
        if token is None:
            if len(self._tokens) > 200_000:
                self._tokens.clear()
            token = self._tokens[ticker] = subjects.escape_token(ticker)
        return token

    def checkpoint(self, now_ns: int, everything: bool = False) -> list[OutMsg]:
        """Book checkpoints to publish after what has been processed so far: a `book`
        record per book changed since the last call (every book when `everything`) on
        `{env}.{feed}.book.{ticker}`. A consumer that joins late (the gateway) restores
        the books from the latest checkpoints and applies only the deltas after them."""
        return [
            OutMsg(self._heads[subjects.BOOK] + self._token(ticker), data, f"bk:{now_ns}:{ticker}")
            for ticker, data in self.codec.checkpoint(now_ns, everything)
        ]

    def event_message(self, item: Item) -> OutMsg:
        return OutMsg(
            subjects.event(self.env, self.feed, item.event),
            item.data,
            f"ev:{item.conn_id}:{item.frame_no}",
            None,
            item.receive_ns,
        )

    def process(self, items: list[Item]) -> Outcome:
        out = Outcome()
        i, n = 0, len(items)
        while i < n:
            item = items[i]
            if item.event:
                out.messages.append(self.event_message(item))
                if item.event == "disconnected":
                    for rec in core.decode_records(item.data):
                        self.forget(int(rec["conn_id"]))
                i += 1
                continue
            j = i + 1
            conn = item.conn_id
            while j < n and items[j].conn_id == conn and not items[j].event:
                j += 1
            self._frames(items[i:j], out)
            i = j
        return out

    def _frames(self, group: list[Item], out: Outcome) -> None:
        conn = group[0].conn_id
        frames = [it.data for it in group]
        receive_ns = [it.receive_ns for it in group]
        batch = self.codec.normalize(frames, receive_ns, conn)
        kinds = batch.kinds
        lifecycle = out.messages.add_frames(
            batch,
            frames,
            kinds,
            receive_ns,
            [it.frame_no for it in group],
            conn,
            self.raw_subjects,
            self._heads,
            self._token,
            self.exchange_headers,
        )
        for payload in lifecycle:
            out.lifecycle.extend(core.decode_records(payload))
        names = self.kind_names
        for k, count in Counter(kinds).items():
            out.frames[names[k]] += count
        for _, problem, _detail in batch.problems:
            out.problems[problem] += 1
        # In frame order, frames without a record included: each took its seq.
        for ev in self.codec.integrity(batch):
            if isinstance(ev, core.GapEvent):
                out.gaps.append(Gap(ev.conn_id, ev.stream, ev.expected, ev.received, ev.tickers))
            elif isinstance(ev, core.UnreadableEvent):
                out.gaps.append(
                    Gap(ev.conn_id, ev.stream, ev.seq, ev.seq, ev.tickers, unreadable=True)
                )
            elif isinstance(ev, core.ResyncedEvent):
                out.resynced.append(ev.ticker)
            elif isinstance(ev, core.DuplicateEvent):
                out.duplicates += 1
        for seq_event in self.codec.sequence(batch):
            if isinstance(seq_event, core.GapEvent):
                g = seq_event
                out.gaps.append(Gap(g.conn_id, g.stream, g.expected, g.received, g.tickers, False))
            else:
                out.duplicates += 1
