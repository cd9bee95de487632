"""Data issues in the security master database (SQLite and PostgreSQL): a report is stored
with its reporter and a journal entry in the outbox, listed by time range and status,
resolved once; bad reports are refused naming the field."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import orjson
import pytest

from _support.secmaster_fixtures import fresh_database, postgres_server
from ssmd import issues
from ssmd.exceptions import IssueError
from ssmd.issues.model import day_bounds, iso_ms
from ssmd.secmaster.db import Store

_names = itertools.count()
ENV, FEED = "issues-test", "kalshi"


@pytest.fixture(scope="module")
def pg_admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with postgres_server(tmp_path_factory.mktemp("pg")) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        s = Store.open(tmp_path / "sm.sqlite3")
    else:
        s = Store.open(fresh_database(request.getfixturevalue("pg_admin"), f"iss{next(_names)}"))
    s.migrate()
    yield s
    s.close()


def _report(ticker: str | None, start: str, end: str, text: str = "price jumps") -> issues.Report:
    body = {"start": start, "end": end, "description": text, "reporter": "agent-7"}
    if ticker is not None:
        body["ticker"] = ticker
    return issues.parse_report(body)


def test_report_list_resolve_and_journal(store: Store) -> None:
    at = datetime(2026, 12, 3, 12, 30, tzinfo=UTC)
    what = _report("KX-1", "2026-12-03T12:00:00Z", "2026-12-03T12:05:00.25Z")
    issue, entry = issues.report(store, ENV, FEED, what, what.reporter("alice"), now=at)
    assert (issue.ticker, issue.start, issue.end) == (
        "KX-1",
        "2026-12-03T12:00:00.000Z",
        "2026-12-03T12:05:00.250Z",
    )
    assert issue.reporter == "alice/agent-7" and issue.status == "open"
    assert issue.reported_at == iso_ms(at)
    assert issues.get(store, issue.id) == issue

    # The journal entry is in the outbox, written with the row.
    [(outbox_id, subject, msg_id, payload)] = store.outbox()
    assert (outbox_id, subject, msg_id) == (
        entry.outbox_id,
        f"{ENV}.journal.data_issue",
        entry.msg_id,
    )
    body = orjson.loads(payload)
    assert body["action"] == "reported" and body["id"] == issue.id and body["kind"] == "data_issue"
    assert body["reporter"] == "alice/agent-7"

    # An issue of every market on another day, and one of another market.
    every, _ = issues.report(
        store, ENV, FEED, _report(None, "2026-12-04T23:00:00Z", "2026-12-05T01:00:00Z"), "bob"
    )
    other, _ = issues.report(
        store, ENV, FEED, _report("KX-2", "2026-12-03T01:00:00Z", "2026-12-03T02:00:00Z"), "bob"
    )
    d3, d5 = day_bounds(date(2026, 12, 3)), day_bounds(date(2026, 12, 5))
    assert [i.id for i in issues.list_issues(store, start=d3[0], end=d3[1])] == [other.id, issue.id]
    assert [i.id for i in issues.list_issues(store, start=d5[0], end=d5[1])] == [every.id]
    assert [i.id for i in issues.list_issues(store, ticker="KX-1")] == [issue.id, every.id]
    assert issues.list_issues(store, feed="polymarket") == []

    done, note = issues.resolve(store, ENV, issue.id, "carol", "a real jump: news at 12:00")
    assert done.status == "resolved" and done.resolved_by == "carol"
    assert note is not None and orjson.loads(note.payload)["action"] == "resolved"
    assert issue.id not in [i.id for i in issues.list_issues(store, start=d3[0], end=d3[1])]
    assert [i.id for i in issues.list_issues(store, status="resolved")] == [issue.id]
    assert len(issues.list_issues(store, status=None)) == 3
    # Resolving again changes nothing and journals nothing.
    again, none = issues.resolve(store, ENV, issue.id, "dave", "again")
    assert again == done and none is None
    assert len(store.outbox()) == 4
    with pytest.raises(IssueError, match="no data issue 9999"):
        issues.resolve(store, ENV, 9999, "dave", "x")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ([], "expected a JSON object"),
        ({"start": "2026-12-03T12:00:00Z", "end": "2026-12-03T12:05:00Z"}, "description is required"),
        ({"end": "2026-12-03", "description": "x"}, "start is required"),
        ({"start": "yesterday", "end": "2026-12-03", "description": "x"}, "start: 'yesterday' is not a time"),
        ({"start": "2026-12-03T12:00:00Z", "end": "2026-12-03T11:00:00Z", "description": "x"}, "is before start"),
        ({"start": "2026-12-03", "end": "2026-12-03", "description": " "}, "description: say what"),
        ({"start": "2026-12-03", "end": "2026-12-03", "description": "x" * 4001}, "at most 4000"),
        ({"start": "2026-12-03", "end": "2026-12-03", "description": "x", "ticker": 5}, "ticker:"),
        ({"start": "2026-12-03", "end": "2026-12-03", "description": "x", "when": 1}, "unknown field when"),
        ({"start": "2026-12-03", "end": "2026-12-03", "description": "x", "reporter": "a\nb"}, "reporter:"),
    ],
)  # fmt: skip
def test_bad_reports_name_the_field(body: object, fragment: str) -> None:
    with pytest.raises(IssueError, match=fragment):
        issues.parse_report(body)


def test_times_take_iso_dates_and_unix_ms() -> None:
    assert issues.parse_time("2026-12-03", "start") == "2026-12-03T00:00:00.000Z"
    assert issues.parse_time("2026-12-03T13:00:00+01:00", "start") == "2026-12-03T12:00:00.000Z"
    assert issues.parse_time(1_796_299_200_123, "start") == "2026-12-03T12:00:00.123Z"
    with pytest.raises(IssueError, match="end"):
        issues.parse_time(True, "end")
