"""Gaps of a day, derived from connector events and the archiver's own events.

Sources (all stored as connector_event records in the `events` files):
  disconnect          `disconnected` on a shard, until the next `connected` on that shard
  connector_stopped   the connector process said `stopped`, until the next process connects
  connector_crashed   the connector process ended without saying so (its heartbeats
                      ceased), until the next process connects (see outages.py)
  seq_gap             `gap` from the connector (books invalid), until a `resync` on the
                      same connection and sid (or any resync when sid is 0)
  records_lost        `gap` on a trade or lifecycle sid ("... not recoverable"): those
                      records are gone for good; a point in time (no duration)
  stream_hole         the archiver saw stream sequences missing that were still
                      within the stream's retention (deleted messages)
  archiver_downtime   the missing sequences had already expired: the archiver was down
                      longer than the stream's retention
A gap with no end event ends at the horizon (the end of the day, or now for an
open day). Gaps are clipped to the day, and the events may reach into the days around
it, so that an outage across midnight is a gap of both days. `markets` empty means
every market.

quality_score = 1 - sum(duration(g) * weight(g)) / window, clamped to [0, 1], where
weight(g) = 1 when g affects every market, else min(1, |markets(g)| / markets of the
day); window = the UTC day (for an open day: from midnight to the horizon).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ssmd.archiver.outages import outages
from ssmd.connector.groups import group_key

__all__ = ["ARCHIVER_REASON_PREFIX", "compute_gaps", "iso_ns", "quality_score"]

ARCHIVER_REASON_PREFIX = "archiver:"
LOST_MARK = "not recoverable"  # the connector's gap events on trade/lifecycle sids


def iso_ns(ns: int) -> str:
    dt = datetime.fromtimestamp(ns // 1_000_000_000, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{(ns % 1_000_000_000) // 1_000_000:03d}Z"


def _gap(start: int, end: int, reason: str, detail: str, markets: list[str]) -> dict[str, Any]:
    return {
        "start": iso_ns(start),
        "end": iso_ns(end),
        "start_ns": start,
        "end_ns": end,
        "duration_s": round((end - start) / 1e9, 3),
        "reason": reason,
        "detail": detail,
        "markets": sorted(set(markets)),
    }


def _books_back(later: list[dict[str, Any]], conn: int, sid: int, shard: int, horizon: int) -> int:
    """When the books of a seq gap on (conn, sid) are exact again or their connection
    ended (the next connection starts from snapshots; a lost connection is a gap of its
    own): the first resync on that sid, close of that connection, new connection of its
    shard or stop of its connector (of its shard group)."""
    for ev in later:
        kind, t = ev.get("event"), int(ev.get("receive_ts") or 0)
        if kind == "resync":
            if int(ev.get("conn_id") or 0) == conn and (
                sid == 0 or int(ev.get("sid") or 0) in (0, sid)
            ):
                return t
        elif (
            (kind == "disconnected" and int(ev.get("conn_id") or 0) == conn)
            or (kind == "connected" and int(ev.get("shard") or 0) == shard)
            or (kind == "stopped" and group_key(int(ev.get("shard") or 0)) == group_key(shard))
        ):
            return t
    return horizon


def compute_gaps(
    events: list[dict[str, Any]], day_start_ns: int, horizon_ns: int
) -> list[dict[str, Any]]:
    """The gaps within [day_start_ns, horizon_ns) from decoded connector_event records
    (the day's, and any of the days around it)."""
    evs = sorted(
        (e for e in events if e.get("kind") == "connector_event"),
        key=lambda e: int(e.get("receive_ts") or 0),
    )
    connector = [
        e for e in evs if not str(e.get("reason") or "").startswith(ARCHIVER_REASON_PREFIX)
    ]
    out = [_gap(*outage) for outage in outages(connector, horizon_ns)]
    seen_holes: set[tuple[int, int]] = set()
    for i, ev in enumerate(evs):
        kind = ev.get("event")
        t = int(ev.get("receive_ts") or 0)
        reason_text = str(ev.get("reason") or "")
        tickers = [str(x) for x in ev.get("tickers") or []]
        if kind == "gap" and reason_text.startswith(ARCHIVER_REASON_PREFIX):
            ident = (int(ev.get("expected_seq") or 0), int(ev.get("received_seq") or 0))
            if ident in seen_holes:
                continue
            seen_holes.add(ident)
            why = reason_text[len(ARCHIVER_REASON_PREFIX) :].split(" ", 1)[0]
            start = t - int(ev.get("duration_ns") or 0)
            reason = "archiver_downtime" if why == "retention" else "stream_hole"
            detail = (
                f"stream sequences {ident[0]}-{ident[1] - 1} missing ({why})"
                if ident[1] > ident[0]
                else reason_text
            )
            out.append(_gap(start, t, reason, detail, []))
            continue
        if kind == "gap" and LOST_MARK in reason_text:
            # trade/lifecycle records lost on a sid: nothing to resync, a point in time
            lost = int(ev.get("received_seq") or 0) - int(ev.get("expected_seq") or 0)
            detail = f"conn {ev.get('conn_id')} sid {ev.get('sid')}: {lost} records lost"
            out.append(_gap(t, t, "records_lost", detail, tickers))
        elif kind == "gap":
            conn, sid = int(ev.get("conn_id") or 0), int(ev.get("sid") or 0)
            end = _books_back(evs[i + 1 :], conn, sid, int(ev.get("shard") or 0), horizon_ns)
            detail = (
                f"conn {conn} sid {sid}: expected seq {ev.get('expected_seq')}, "
                f"got {ev.get('received_seq')}"
            )
            out.append(_gap(t, end, "seq_gap", detail, tickers))
    clipped = []
    for g in out:
        s, e = max(g["start_ns"], day_start_ns), min(g["end_ns"], horizon_ns)
        if e < s or (e == s and g["start_ns"] < g["end_ns"]):
            continue  # outside the day, or a span that only touches its edge
        clipped.append(_gap(s, e, g["reason"], g["detail"], g["markets"]))
    clipped.sort(key=lambda g: (g["start_ns"], g["reason"]))
    return clipped


def quality_score(gaps: list[dict[str, Any]], markets: int, window_ns: int) -> float:
    if window_ns <= 0:
        return 1.0
    lost = 0.0
    for g in gaps:
        dur = max(0, int(g["end_ns"]) - int(g["start_ns"]))
        n = len(g["markets"])
        weight = 1.0 if n == 0 or markets <= 0 else min(1.0, n / markets)
        lost += dur * weight
    return round(max(0.0, min(1.0, 1.0 - lost / window_ns)), 6)
