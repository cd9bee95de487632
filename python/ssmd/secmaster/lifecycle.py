"""Live updates between syncs: lifecycle records from the stream, and the open/close sweep.

The connector publishes normalized `lifecycle` records (market_lifecycle_v2 and
event_lifecycle) on `{env}.{feed}.lifecycle.{ticker}`. `Live.apply_records` turns them
into store writes (source `lifecycle`):

    created             new market (initialized), open/close times, metadata
    activated           open (Kalshi `active`)
    deactivated         halted (`inactive`) or, with is_deactivated false, open again
    close_date_updated  close_time
    determined          determined, result, settlement_value_e6, determination_time
    settled             settled, settlement_time
    metadata_updated    title, subtitles, strike fields from the metadata
    event_lifecycle     the event row

Kalshi opens a market at its open_time and closes it at close_time without any
message, so `Live.sweep(now)` promotes initialized markets whose open_time has passed
to open, and open/halted markets whose close_time has passed to closed (source
`sweep`). Every status change is also published as a normalized `status` record on
`{env}.{feed}.status.{ticker}`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

import orjson

from ssmd import core
from ssmd.bus import subjects
from ssmd.secmaster.db import Change, Store
from ssmd.secmaster.model import Row, iso_from_ns, iso_from_seconds, series_of_ticker
from ssmd.secmaster.status import lifecycle_status

__all__ = ["Live", "StatusMsg", "lifecycle_market_row", "run_live"]

log = logging.getLogger(__name__)

StatusMsg = tuple[str, bytes, str]  # (subject, encoded status record, Nats-Msg-Id)
OnChanges = Callable[[list[Change]], Awaitable[None]]
PublishStatus = Callable[[list[StatusMsg]], Awaitable[None]]

_META_TEXT: Final = (
    "title",
    "yes_sub_title",
    "no_sub_title",
    "rules_primary",
    "rules_secondary",
    "strike_type",
    "functional_strike",
)


def _meta(rec: dict[str, Any]) -> dict[str, Any]:
    raw = rec.get("metadata_json")
    if not raw:
        return {}
    try:
        out = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return out if isinstance(out, dict) else {}


def _strike(v: Any) -> str | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    return str(v) if isinstance(v, str) and v else None


def lifecycle_market_row(rec: dict[str, Any], exists: bool) -> Row | None:
    """The partial `markets` row a market_lifecycle_v2 record implies (None: nothing to do)."""
    ticker = rec.get("ticker")
    if not isinstance(ticker, str) or not ticker:
        return None
    kind = str(rec.get("event_type") or "")
    row: Row = {"ticker": ticker}
    if rec.get("event_ticker"):
        row["event_ticker"] = str(rec["event_ticker"])
    if kind in ("created", "metadata_updated"):
        meta = _meta(rec)
        for k in _META_TEXT:
            if isinstance(meta.get(k), str):
                row[k] = meta[k]
        if isinstance(meta.get("event_ticker"), str) and meta["event_ticker"]:
            row["event_ticker"] = meta["event_ticker"]
        if isinstance(meta.get("can_close_early"), bool):
            row["can_close_early"] = int(meta["can_close_early"])
        for k in ("floor_strike", "cap_strike"):
            s = _strike(meta.get(k))
            if s is not None:
                row[k] = s
        if meta.get("custom_strike") is not None:
            row["custom_strike"] = orjson.dumps(
                meta["custom_strike"], option=orjson.OPT_SORT_KEYS
            ).decode()
        if rec.get("title") and "title" not in row:
            row["title"] = str(rec["title"])
        if kind == "created" and not exists:
            row["status"], row["status_text"] = "initialized", "initialized"
    if rec.get("open_ts"):
        row["open_time"] = iso_from_ns(int(rec["open_ts"]))
    if rec.get("close_ts"):
        row["close_time"] = iso_from_ns(int(rec["close_ts"]))
    change = lifecycle_status(kind, rec.get("is_deactivated", True))
    if change is not None:
        row["status"], row["status_text"] = change
    if kind == "determined":
        if rec.get("result"):
            row["result"] = str(rec["result"])
        if rec.get("settlement_value_e6") is not None:
            row["settlement_value_e6"] = int(rec["settlement_value_e6"])
        if rec.get("determination_ts"):
            row["determination_time"] = iso_from_ns(int(rec["determination_ts"]))
    elif kind == "settled":
        if rec.get("settled_ts"):
            row["settlement_time"] = iso_from_ns(int(rec["settled_ts"]))
    elif change is None and kind not in ("created", "metadata_updated", "close_date_updated"):
        log.warning("%s: unknown lifecycle event_type %r ignored", ticker, kind)
        return None
    return row if len(row) > 1 else None


def _event_row(rec: dict[str, Any]) -> Row | None:
    ev = rec.get("event_ticker") or rec.get("ticker")
    if not isinstance(ev, str) or not ev:
        return None
    row: Row = {"event_ticker": ev}
    for k in ("series_ticker", "title", "collateral_return_type", "strike_period"):
        if rec.get(k) is not None:
            row[k] = str(rec[k])
    if rec.get("subtitle") is not None:
        row["sub_title"] = str(rec["subtitle"])
    if rec.get("strike_date"):
        row["strike_date"] = iso_from_ns(int(rec["strike_date"]))
    return row


class Live:
    """Applies lifecycle records and the sweep to a store."""

    def __init__(
        self,
        store: Store,
        env: str,
        feed: str,
        *,
        journal_subject: str | None = None,
        on_changes: OnChanges | None = None,
        publish_status: PublishStatus | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.env, self.feed = env, feed
        self.journal_subject = journal_subject
        self.on_changes = on_changes
        self.publish_status = publish_status
        self.clock = clock
        self.applied = 0
        self.ignored = 0

    def status_messages(self, changes: list[Change]) -> list[StatusMsg]:
        out: list[StatusMsg] = []
        now_ns = int(self.clock() * 1e9)
        for c in changes:
            if c.kind != "market" or "status" not in c.fields:
                continue
            status = str(c.state.get("status") or "unknown")
            rec = {
                "kind": "status",
                "ticker": c.key,
                "status": status,
                "status_text": str(c.state.get("status_text") or ""),
                "receive_ts": now_ns,
                "exchange_ts": 0,
            }
            out.append(
                (
                    subjects.record(self.env, self.feed, "status", c.key),
                    core.encode_records([rec]),
                    f"status:{c.key}:{c.fields['status'][0]}>{status}:{c.at}",
                )
            )
        return out

    async def _done(self, changes: list[Change]) -> list[Change]:
        if not changes:
            return changes
        if self.on_changes is not None:
            await self.on_changes(changes)
        if self.publish_status is not None:
            msgs = self.status_messages(changes)
            if msgs:
                await self.publish_status(msgs)
        return changes

    async def apply_records(self, records: list[dict[str, Any]]) -> list[Change]:
        """Apply decoded normalized records (other kinds are ignored); one transaction."""
        now = iso_from_seconds(self.clock())
        market_recs = [r for r in records if r.get("kind") == "lifecycle"]
        event_rows = [
            row for r in records if r.get("kind") == "event_lifecycle" if (row := _event_row(r))
        ]
        self.ignored += len(records) - len(market_recs) - len(event_rows)
        changes: list[Change] = []
        with self.store.transaction():
            if event_rows:
                changes += self.store.apply_events(
                    event_rows, "lifecycle", self.journal_subject, now
                )
            tickers = sorted({str(r.get("ticker")) for r in market_recs if r.get("ticker")})
            existing = {t for t in tickers if self.store.market(t, self.feed) is not None}
            for rec in market_recs:  # in order: several events of one market may share a batch
                row = lifecycle_market_row(rec, str(rec.get("ticker")) in existing)
                if row is None:
                    self.ignored += 1
                    continue
                row["venue"] = self.feed
                t = str(row["ticker"])
                if t not in existing:
                    self._fill_new(row)
                    existing.add(t)
                changes += self.store.apply_markets([row], "lifecycle", self.journal_subject, now)
                self.applied += 1
        return await self._done(changes)

    def _fill_new(self, row: Row) -> None:
        ev = row.get("event_ticker")
        series = self.store.event_series([str(ev)]).get(str(ev)) if ev else None
        row["series_ticker"] = series or series_of_ticker(str(row["ticker"]))
        row["category"] = self.store.series_categories([str(row["series_ticker"])]).get(
            str(row["series_ticker"])
        )
        row.setdefault("status", "initialized")
        row.setdefault("status_text", "initialized")

    async def sweep(self, now: float | None = None) -> list[Change]:
        """Promote markets the clock has moved on (open_time or close_time passed)."""
        at = iso_from_seconds(self.clock() if now is None else now)
        changes: list[Change] = []
        while True:
            due = self.store.due_transitions(at, self.feed)
            if not due:
                break
            rows: list[Row] = []
            for ticker, status, open_time, close_time in due:
                market = {"venue": self.feed, "ticker": ticker}
                if close_time is not None and close_time <= at:
                    rows.append({**market, "status": "closed", "status_text": "closed"})
                elif status == "initialized" and open_time is not None:
                    rows.append({**market, "status": "open", "status_text": "active"})
            changes += await self._done(
                self.store.apply_markets(rows, "sweep", self.journal_subject, at)
            )
        return changes


async def run_live(
    live: Live,
    js: Any,
    stream: str,
    *,
    stop: asyncio.Event,
    durable: str = "ssmd-secmaster",
    sweep_every: float = 10.0,
    batch: int = 500,
) -> None:
    """Consume `{env}.{feed}.lifecycle.>` from `stream` (durable pull consumer, ack after
    the store committed) and sweep every `sweep_every` seconds, until `stop` is set."""
    subject = subjects.under(subjects.prefix(live.env, live.feed), "lifecycle")
    sub = await js.pull_subscribe(subject, durable=durable, stream=stream)
    next_sweep = 0.0
    try:
        while not stop.is_set():
            if time.monotonic() >= next_sweep:
                await live.sweep()
                next_sweep = time.monotonic() + sweep_every
            try:
                msgs = await sub.fetch(batch, timeout=1.0)
            except TimeoutError:
                # nats.errors.TimeoutError, or the builtin one nats-py raises when its
                # no-wait probe used up the deadline: both mean "nothing new".
                continue
            records: list[dict[str, Any]] = []
            for m in msgs:
                try:
                    records.extend(core.decode_records(m.data))
                except Exception as exc:  # a damaged message must not stop the consumer
                    log.warning("undecodable lifecycle message on %s: %s", m.subject, exc)
            await live.apply_records(records)
            for m in msgs:
                await m.ack()
    finally:
        await sub.unsubscribe()
