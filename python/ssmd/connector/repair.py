"""What the connector does with the losses a batch reveals (pipeline.Outcome's gaps and
resynced books).

- A gap on a book stream: a `gap` event (or an `error` event when an update could not be
  read, so no seq is missing but a change is), then snapshots until the books are exact
  (ssmd.connector.resync), and a `resync` event once they are.
- A gap on a stream whose records cannot be fetched again (trades, lifecycle): the `gap`
  event is the record of the loss, naming every market the stream carries.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from ssmd.connector.events import EventLog
from ssmd.connector.pipeline import Gap
from ssmd.connector.resync import Key, Resyncs
from ssmd.connector.shards import Shard, ShardSet

__all__ = ["Repair"]


class Repair:
    def __init__(
        self,
        events: EventLog,
        shards: ShardSet,
        *,
        timeout: float,
        retries: int,
        spawn: Callable[[Coroutine[Any, Any, None]], None],
        on_timeout: Callable[[], None],
        on_lost: Callable[[], None],
    ) -> None:
        self.events = events
        self.shards = shards
        self.on_lost = on_lost
        self.resyncs = Resyncs(
            timeout=timeout,
            retries=retries,
            spawn=spawn,
            on_escalate=self._escalated,
            on_timeout=on_timeout,
        )

    def batch(self, gaps: list[Gap], resynced: list[str]) -> None:
        for gap in gaps:
            shard = self.shards.by_conn(gap.conn_id)
            if gap.book:
                self._book_gap(gap, shard)
            else:
                self._lost(gap, shard)
        for ticker in resynced:
            for conn_id, sid in self.resyncs.snapshot(ticker):
                self.events.emit(
                    "resync",
                    self.shards.by_conn(conn_id),
                    f"sid {sid}: books exact again",
                    conn_id=conn_id,
                    sid=sid,
                )

    def _book_gap(self, gap: Gap, shard: Shard | None) -> None:
        if gap.unreadable:
            # No seq is missing, so not a `gap` event; but a change is, so the books of
            # the sid are fetched again like after one.
            self.events.emit(
                "error",
                shard,
                f"sid {gap.sid}: orderbook_delta seq {gap.received} has no readable "
                "market (published raw); its books are invalid until snapshots",
                tickers=gap.tickers,
                conn_id=gap.conn_id,
                sid=gap.sid,
            )
        else:
            self.events.emit(
                "gap",
                shard,
                f"sid {gap.sid}: expected seq {gap.expected}, received {gap.received}",
                tickers=gap.tickers,
                conn_id=gap.conn_id,
                sid=gap.sid,
                expected_seq=gap.expected,
                received_seq=gap.received,
            )
        if shard is not None:
            self.resyncs.gap(shard, (gap.conn_id, gap.sid), gap.tickers or sorted(shard.markets))

    def _escalated(self, shard: Shard, key: Key, reason: str, tickers: list[str]) -> None:
        self.events.emit("error", shard, reason, tickers=tickers, conn_id=key[0], sid=key[1])

    def _lost(self, gap: Gap, shard: Shard | None) -> None:
        """Tickers: every market the stream carries (a lost trade may have been on any of
        them); on the global shard, the next record's."""
        channel = "?"
        tickers = gap.tickers
        if shard is not None:
            channel = next((c for c, s in shard.sids.items() if s == gap.sid), channel)
            if not shard.is_global and shard.markets:
                tickers = sorted(shard.markets)
        self.on_lost()
        self.events.emit(
            "gap",
            shard,
            f"sid {gap.sid} ({channel}): expected seq {gap.expected}, received {gap.received} "
            f"(next record {(gap.tickers or [''])[0] or '?'}); "
            f"{gap.received - gap.expected} messages lost, not recoverable",
            tickers=tickers,
            conn_id=gap.conn_id,
            sid=gap.sid,
            expected_seq=gap.expected,
            received_seq=gap.received,
        )
