"""What each pane of `ssmd tui` shows, as rows of text: pure functions of what the
services answered (the gateway's JSON, `ssmd up`'s figures, the archive's inventory),
so they are tested without a terminal.

Prices are dollars and sizes contracts, as the gateway renders them; times UTC.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Final

from ssmd.up.status import Figures, human_bytes

__all__ = [
    "COMPONENT_ORDER",
    "Row",
    "book_text",
    "component_rows",
    "count",
    "day_rows",
    "gap_rows",
    "issue_rows",
    "issues_on",
    "ladder_rows",
    "market_rows",
    "quality_text",
    "trade_rows",
]

Row = tuple[str, ...]
NONE: Final = "-"
# Shown in this order; others (simulator, temporal, health, ...) after them.
COMPONENT_ORDER: Final[tuple[str, ...]] = (
    "nats",
    "simulator",
    "connector",
    "archiver",
    "secmaster",
    "gateway",
)


def count(n: int, what: str) -> str:
    """`1 market`, `2 markets`."""
    return f"{n:,} {what}{'' if n == 1 else 's'}"


def _num(value: Any) -> str:
    if value is None:
        return NONE
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.6f}".rstrip("0")
    return f"{int(value):,}"


def _price(value: Any) -> str:
    return NONE if value is None else f"{float(value):.4f}".rstrip("0").rstrip(".") or "0"


def _ms_time(ms: Any) -> str:
    if ms is None:
        return NONE
    return datetime.fromtimestamp(int(ms) / 1000, UTC).strftime("%H:%M:%S.%f")[:-3]


def _short(text: Any, width: int) -> str:
    s = NONE if text is None else " ".join(str(text).split())
    return s if len(s) <= width else s[: width - 1] + "…"


def _figures(name: str, f: Figures | None, health: dict[str, Any] | None) -> str:
    """The rates and counts of one component, from `ssmd up`'s figures."""
    if name == "gateway" and health is not None and f is None:
        return f"health {health.get('status', '?')}"
    if f is None:
        return ""
    if name == "connector":
        shards = ", ".join(f"#{s.get('shard')} {s.get('state')}" for s in f.shards) or "none"
        return (
            f"{f.received_per_s:,.0f} frames/s in, {f.published_per_s:,.0f} msgs/s out; "
            f"{int(f.markets_subscribed):,} markets; shards {shards}; {int(f.gaps):,} gaps"
        )
    if name == "archiver":
        return (
            f"{f.archived_per_s:,.0f} records/s; {int(f.archived):,} archived; "
            f"{int(f.files_sealed):,} files sealed ({human_bytes(f.sealed_bytes)}); "
            f"{int(f.spool_records):,} spooled"
        )
    if name == "gateway":
        clients = (
            "- clients" if f.gateway_clients is None else count(int(f.gateway_clients), "client")
        )
        status = f"health {health.get('status', '?')}; " if health is not None else ""
        return f"{status}{clients}"
    return ""


def component_rows(
    states: dict[str, tuple[str, str]],
    figures: Figures | None = None,
    health: dict[str, Any] | None = None,
) -> list[Row]:
    """(component, state, detail, rates) per component; `states` maps a name to its
    (state, detail), e.g. ("running", "pid 123")."""
    names = [n for n in COMPONENT_ORDER if n in states]
    names += sorted(n for n in states if n not in COMPONENT_ORDER)
    return [(n, states[n][0], states[n][1], _figures(n, figures, health)) for n in names]


def market_rows(markets: Iterable[dict[str, Any]]) -> list[Row]:
    """ticker, status, live best bid and ask (else the last sync's quotes), last trade
    price, volume, title."""
    out: list[Row] = []
    for m in markets:
        book = m.get("book") or {}
        bid, ask = book.get("best_bid"), book.get("best_ask")
        last = m.get("last_trade") or {}
        out.append(
            (
                str(m["ticker"]),
                str(m.get("status") or NONE),
                _price(bid[0] if bid else m.get("yes_bid")),
                _price(ask[0] if ask else m.get("yes_ask")),
                _price(last.get("price", m.get("last_price"))),
                _num(m.get("volume")),
                _short(m.get("title"), 48),
            )
        )
    return out


def ladder_rows(book: dict[str, Any], depth: int = 15) -> list[Row]:
    """The book side by side, best first: bid size, bid, ask, ask size."""
    bids, asks = list(book.get("bids") or [])[:depth], list(book.get("asks") or [])[:depth]
    rows: list[Row] = []
    for i in range(max(len(bids), len(asks))):
        b = bids[i] if i < len(bids) else None
        a = asks[i] if i < len(asks) else None
        rows.append(
            (
                _num(b[1]) if b else "",
                _price(b[0]) if b else "",
                _price(a[0]) if a else "",
                _num(a[1]) if a else "",
            )
        )
    return rows


def book_text(book: dict[str, Any]) -> str:
    """The line above a market's book: valid or not, its depth, as of when."""
    valid = "valid" if book.get("valid") else "NOT VALID (awaiting a snapshot)"
    depth = f"{len(book.get('bids') or [])} bid / {len(book.get('asks') or [])} ask levels"
    return f"{book.get('ticker')}: book {valid}, {depth}, as of {_ms_time(book.get('ts'))} UTC"


def trade_rows(trades: Iterable[dict[str, Any]]) -> list[Row]:
    """time (UTC), taker side, YES price, size; in the order given (newest first)."""
    return [
        (_ms_time(t.get("ts")), str(t.get("side") or NONE), _price(t.get("price")),
         _num(t.get("size")))
        for t in trades
    ]  # fmt: skip


def day_rows(inventory: Iterable[dict[str, Any]]) -> list[Row]:
    """One row per day, newest first, over its data types: records, files, bytes,
    pending (spooled) records, open or sealed, gaps, and the lowest quality score."""
    days: dict[str, dict[str, Any]] = {}
    for r in inventory:
        d = days.setdefault(
            str(r["date"]),
            {"records": 0, "files": 0, "bytes": 0, "pending": 0, "open": False, "gaps": 0,
             "quality": None},
        )  # fmt: skip
        d["records"] += int(r.get("records") or 0)
        d["files"] += int(r.get("files") or 0)
        d["bytes"] += int(r.get("bytes") or 0)
        d["pending"] += int(r.get("pending_records") or 0)
        d["open"] |= r.get("status") != "sealed"
        d["gaps"] = max(d["gaps"], int(r.get("gaps") or 0))
        q = r.get("quality_score")
        if q is not None:
            d["quality"] = q if d["quality"] is None else min(d["quality"], q)
    return [
        (day, f"{d['records']:,}", f"{d['files']:,}", human_bytes(d["bytes"]),
         f"{d['pending']:,}", "open" if d["open"] else "sealed", f"{d['gaps']:,}",
         NONE if d["quality"] is None else f"{d['quality']:.6f}")
        for day, d in sorted(days.items(), reverse=True)
    ]  # fmt: skip


def gap_rows(gaps: Iterable[dict[str, Any]]) -> list[Row]:
    """start, end, seconds, reason, markets affected (all when none are named)."""
    out: list[Row] = []
    for g in gaps:
        markets = g.get("markets") or []
        out.append(
            (
                str(g.get("start") or NONE),
                str(g.get("end") or NONE),
                f"{float(g.get('duration_s') or 0):,.3f}",
                str(g.get("reason") or NONE),
                _short(", ".join(markets), 40) if markets else "all",
            )
        )
    return out


def quality_text(report: dict[str, Any], open_issues: int = 0) -> str:
    """One line of a day's quality report (ssmd.data's Archive.quality) and how many open
    data issues touch the day."""
    issues = f"; open data issues {open_issues:,}" if open_issues else ""  # touching the day
    if not report.get("found"):
        return (
            f"{report.get('date')}: no manifest yet (written when files seal or the archiver "
            f"stops){issues}"
        )
    by_reason = report.get("gap_seconds_by_reason") or {}
    reasons = ", ".join(f"{k} {float(v):,.1f} s" for k, v in sorted(by_reason.items()))
    score = report.get("quality_score")
    return (
        f"{report.get('date')}: quality {NONE if score is None else f'{score:.6f}'}; "
        f"gaps {reasons or 'none'}; malformed frames {_num(report.get('malformed_frames'))}; "
        f"quarantined {_num(report.get('quarantined'))}{issues}"
    )


def issues_on(issues: Iterable[dict[str, Any]], day: str) -> int:
    """How many of the issues' time ranges touch the day (YYYY-MM-DD, UTC)."""
    return sum(
        1 for i in issues if str(i.get("start") or "")[:10] <= day <= str(i.get("end") or "")[:10]
    )


def issue_rows(issues: Iterable[dict[str, Any]]) -> list[Row]:
    """id, market (all when none), start, end, reporter, what."""
    return [
        (str(i.get("id")), str(i.get("ticker") or "all"), str(i.get("start") or NONE),
         str(i.get("end") or NONE), str(i.get("reporter") or NONE),
         _short(i.get("description"), 60))
        for i in issues
    ]  # fmt: skip
