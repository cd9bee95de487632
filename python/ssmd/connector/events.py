"""The connector's events (connected, gap, resync, buffer_full, heartbeat, stopped, ...):
each one a `connector_event` record on `{env}.{feed}.events.{kind}`, counted and logged;
the last 10,000 stay in `recent` for a program that runs the connector in-process (the
tests, the benchmarks).

Events go through the capture queue like frames (`put_event`: never dropped, never
behind the frames received before them), under this process's run id with a number of
their own, so their message ids are unique per run.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

from ssmd import core, records
from ssmd.connector.capture_queue import CaptureQueue, Item

if TYPE_CHECKING:
    from prometheus_client import Counter

    from ssmd.connector.shards import Shard

__all__ = ["EventLog"]

log = logging.getLogger(__name__)

KEPT: Final = 10_000
# Events of normal running, logged at INFO; the others (gap, error, disconnected, ...)
# at WARNING; heartbeats at DEBUG and not kept.
ROUTINE: Final = frozenset({"connected", "subscribed", "unsubscribed", "resync", "stopped"})


class EventLog:
    def __init__(
        self, queue: CaptureQueue, counter: Counter, feed: str, run_id: int, base_shard: int
    ) -> None:
        self.queue = queue
        self.counter = counter
        self.feed = feed
        self.run_id = run_id
        self.base_shard = base_shard
        self.recent: deque[tuple[str, int, str]] = deque(maxlen=KEPT)  # (kind, shard, reason)
        self._numbers = itertools.count(1)

    def emit(
        self,
        kind: str,
        shard: Shard | None,
        reason: str = "",
        *,
        duration_ns: int = 0,
        tickers: Iterable[str] = (),
        conn_id: int | None = None,
        expected_seq: int = 0,
        received_seq: int = 0,
        sid: int = 0,
    ) -> None:
        now = time.time_ns()
        rec = records.connector_event(
            kind,
            now,
            conn_id=conn_id if conn_id is not None else (shard.conn_id if shard else 0),
            sid=sid,
            shard=shard.number if shard else self.base_shard,
            reason=reason,
            duration_ns=duration_ns,
            expected_seq=expected_seq,
            received_seq=received_seq,
            tickers=tickers,
        )
        self.counter.labels(self.feed, kind).inc()
        if kind == "heartbeat":
            level = logging.DEBUG
        else:
            self.recent.append((kind, rec["shard"], reason))
            level = logging.INFO if kind in ROUTINE else logging.WARNING
        log.log(
            level,
            "connector event %s",
            kind,
            extra={
                "fields": {k: v for k, v in rec.items() if k != "tickers"}
                | {"markets": len(rec["tickers"])}
            },
        )
        payload = core.encode_records([rec])
        self.queue.put_event(Item(self.run_id, next(self._numbers), now, payload, kind))
