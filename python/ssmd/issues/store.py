"""Data issues in the security master database (table `data_issues`, migration 0003).

Each write also puts a journal entry into the secmaster outbox in the same transaction
(subject `{env}.journal.data_issue`), so the journal gets every report and resolution
even when NATS is away: the writer publishes the entry at once when it has a NATS
connection (and deletes it from the outbox on the ack), and otherwise the next secmaster
run that reaches NATS sends it with the rest of the outbox (docs/secmaster.md, "Journal").
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import orjson

from ssmd.exceptions import IssueError
from ssmd.issues.model import STATUSES, DataIssue, Report, iso_ms
from ssmd.secmaster.journal import journal_subject

if TYPE_CHECKING:
    from datetime import datetime

    from ssmd.secmaster.db import Store

__all__ = [
    "JOURNAL_KIND",
    "MAX_LIST",
    "Entry",
    "get",
    "list_issues",
    "report",
    "resolve",
]

JOURNAL_KIND: Final = "data_issue"
MAX_LIST: Final = 1000
_COLUMNS: Final = (
    "id",
    "feed",
    "ticker",
    "start_time",
    "end_time",
    "description",
    "reporter",
    "reported_at",
    "status",
    "resolved_at",
    "resolved_by",
    "resolution",
)


@dataclass(frozen=True)
class Entry:
    """A journal entry written to the outbox with the change (its outbox row id)."""

    outbox_id: int
    subject: str
    msg_id: str
    payload: bytes


def _issue(row: Iterable[Any]) -> DataIssue:
    return DataIssue(*row)


def _now() -> str:
    from datetime import UTC, datetime

    return iso_ms(datetime.now(UTC))


def _journal(store: Store, env: str, action: str, issue: DataIssue) -> Entry:
    body = orjson.dumps(
        {"kind": JOURNAL_KIND, "action": action, **issue.to_dict()}, option=orjson.OPT_SORT_KEYS
    )
    subject = journal_subject(env, JOURNAL_KIND)
    msg_id = f"{JOURNAL_KIND}:{issue.id}:{action}:{hashlib.sha256(body).hexdigest()[:16]}"
    rows = store.query(
        "INSERT INTO secmaster_outbox (subject, msg_id, payload, created_at) "
        "VALUES (?, ?, ?, ?) RETURNING id",
        (subject, msg_id, body.decode(), issue.resolved_at or issue.reported_at),
    )
    return Entry(int(rows[0][0]), subject, msg_id, body)


def report(
    store: Store, env: str, feed: str, what: Report, reporter: str, now: datetime | None = None
) -> tuple[DataIssue, Entry]:
    """Store a report (status open) and its journal entry, in one transaction."""
    at = iso_ms(now) if now is not None else _now()
    with store.transaction():
        rows = store.query(
            "INSERT INTO data_issues (feed, ticker, start_time, end_time, description, "
            "reporter, reported_at, status) VALUES (?, ?, ?, ?, ?, ?, ?, 'open') RETURNING id",
            (feed, what.ticker, what.start, what.end, what.description, reporter, at),
        )
        issue = DataIssue(
            int(rows[0][0]),
            feed,
            what.ticker,
            what.start,
            what.end,
            what.description,
            reporter,
            at,
            "open",
        )
        return issue, _journal(store, env, "reported", issue)


def get(store: Store, issue_id: int) -> DataIssue | None:
    rows = store.query(
        f"SELECT {', '.join(_COLUMNS)} FROM data_issues WHERE id = ?", (int(issue_id),)
    )
    return _issue(rows[0]) if rows else None


def list_issues(
    store: Store,
    *,
    status: str | None = "open",
    feed: str | None = None,
    ticker: str | None = None,
    start: str | None = None,
    end: str | None = None,
    limit: int = 100,
    keys: Sequence[str] | None = None,
) -> list[DataIssue]:
    """Issues by the time they begin, newest reports first among equal starts. `status`
    None is every status; `start`/`end` (iso_ms text) keep the issues whose range meets
    [start, end); `ticker` keeps that market's issues and those of every market; `keys`
    keeps the issues reported with these API keys (a gateway tenant's own)."""
    if status is not None and status not in STATUSES:
        raise IssueError(f"status {status!r} is not one of {', '.join(STATUSES)} (or all)")
    if not 1 <= limit <= MAX_LIST:
        raise IssueError(f"limit {limit} is outside 1..{MAX_LIST}")
    where: list[str] = []
    params: list[Any] = []
    for clause, value in (
        ("status = ?", status),
        ("feed = ?", feed),
        ("end_time >= ?", start),
        ("start_time < ?", end),
    ):
        if value is not None:
            where.append(clause)
            params.append(value)
    if ticker is not None:
        where.append("(ticker = ? OR ticker IS NULL)")
        params.append(ticker)
    if keys is not None:
        if not keys:
            return []
        # The reporter is the key's name, or the name, '/' and the label it gave itself.
        where.append(
            "(" + " OR ".join(["reporter = ? OR substr(reporter, 1, ?) = ?"] * len(keys)) + ")"
        )
        for name in keys:
            params += [name, len(name) + 1, name + "/"]
    sql = f"SELECT {', '.join(_COLUMNS)} FROM data_issues"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY start_time, id DESC LIMIT {int(limit)}"
    return [_issue(r) for r in store.query(sql, params)]


def resolve(
    store: Store,
    env: str,
    issue_id: int,
    resolved_by: str,
    resolution: str,
    now: datetime | None = None,
) -> tuple[DataIssue, Entry | None]:
    """Mark an issue resolved (and journal it); an issue already resolved is left as it
    is (no entry). IssueError when there is no such issue."""
    if not resolution.strip():
        raise IssueError("say how the issue was resolved (--note TEXT)")
    at = iso_ms(now) if now is not None else _now()
    with store.transaction():
        issue = get(store, issue_id)
        if issue is None:
            raise IssueError(
                f"no data issue {issue_id}; `ssmd data issues list --status all` lists them"
            )
        if issue.status == "resolved":
            return issue, None
        store.execute(
            "UPDATE data_issues SET status = 'resolved', resolved_at = ?, resolved_by = ?, "
            "resolution = ? WHERE id = ?",
            (at, resolved_by, resolution.strip(), issue.id),
        )
        done = DataIssue(
            **{
                **issue.to_dict(),
                "status": "resolved",
                "resolved_at": at,
                "resolved_by": resolved_by,
                "resolution": resolution.strip(),
            }
        )
        return done, _journal(store, env, "resolved", done)
