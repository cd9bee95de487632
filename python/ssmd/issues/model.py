"""What a data issue is, and reading a report of one from untrusted input.

A report names a market (or none: every market of the feed), a time range and what
looks wrong. Times are kept as ISO-8601 UTC text with milliseconds,
`2026-12-03T12:00:00.000Z`: one fixed width, so text order is time order in SQL on
SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from ssmd.exceptions import IssueError

__all__ = [
    "MAX_DESCRIPTION",
    "STATUSES",
    "DataIssue",
    "Report",
    "day_bounds",
    "iso_ms",
    "parse_report",
    "parse_time",
]

STATUSES: Final = ("open", "resolved")
MAX_DESCRIPTION: Final = 4000
MAX_TICKER: Final = 200
_FIELDS: Final = ("ticker", "start", "end", "description", "reporter")


def iso_ms(moment: datetime) -> str:
    """UTC text with milliseconds, always the same width."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_time(value: Any, field: str) -> str:
    """ISO 8601 text (a time without a zone is UTC; a bare date is its midnight) or Unix
    milliseconds (an integer) to `iso_ms` text; IssueError naming `field` otherwise."""
    try:
        if isinstance(value, bool):
            raise ValueError(value)
        if isinstance(value, int):
            return iso_ms(datetime.fromtimestamp(value / 1000, UTC))
        if isinstance(value, str) and value.strip():
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            return iso_ms(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    except (ValueError, OverflowError, OSError):
        pass
    raise IssueError(
        f"{field}: {str(value)[:60]!r} is not a time; give ISO 8601 UTC such as "
        "2026-12-03T12:00:00Z, or Unix milliseconds"
    )


def day_bounds(day: date) -> tuple[str, str]:
    """The day's [start, end) as `iso_ms` text."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return iso_ms(start), iso_ms(start + timedelta(days=1))


_LABEL: Final = re.compile(r"^[A-Za-z0-9_.@:+ -]{1,64}$")


@dataclass(frozen=True)
class Report:
    """What a reporter says is wrong (validated)."""

    ticker: str | None  # None: every market of the feed
    start: str
    end: str
    description: str
    label: str | None = None  # how the reporter names itself (an agent, a tool)

    def reporter(self, key_name: str | None) -> str:
        """Who reported: the API key's name (what the gateway authenticated), then the
        label the reporter gave itself; with no keys, the label alone (self-declared)."""
        if key_name is None:
            return self.label or "anonymous"
        return f"{key_name}/{self.label}" if self.label else key_name


def parse_report(body: Any) -> Report:
    """A report from a JSON object: `ticker` (optional), `start`, `end`, `description`,
    `reporter` (optional: how the reporter names itself, kept after the API key's name)."""
    if not isinstance(body, Mapping):
        raise IssueError(
            'expected a JSON object like {"ticker": "...", "start": "2026-12-03T12:00:00Z", '
            '"end": "2026-12-03T12:05:00Z", "description": "what looks wrong"}'
        )
    unknown = sorted(str(k) for k in body if k not in _FIELDS)
    if unknown:
        raise IssueError(f"unknown field {', '.join(unknown)}; expected {', '.join(_FIELDS)}")
    ticker = body.get("ticker")
    if ticker is not None and (
        not isinstance(ticker, str) or not ticker.strip() or len(ticker) > MAX_TICKER
    ):
        raise IssueError(
            f"ticker: expected a market ticker (text, at most {MAX_TICKER} characters), or "
            "leave it out for every market"
        )
    for name in ("start", "end", "description"):
        if body.get(name) is None:
            raise IssueError(f"{name} is required")
    start, end = parse_time(body["start"], "start"), parse_time(body["end"], "end")
    if end < start:
        raise IssueError(f"end {end} is before start {start}; give the range in order")
    description = body["description"]
    if not isinstance(description, str) or not description.strip():
        raise IssueError("description: say what looks wrong, as text")
    if len(description) > MAX_DESCRIPTION:
        raise IssueError(
            f"description is {len(description)} characters; at most {MAX_DESCRIPTION}. Shorten it"
        )
    label = body.get("reporter")
    if label is not None and (not isinstance(label, str) or not _LABEL.match(label)):
        raise IssueError(
            "reporter: at most 64 letters, digits, spaces and _.@:+- naming who reports "
            "(an agent, a tool), or leave it out"
        )
    return Report(ticker.strip() if ticker else None, start, end, description.strip(), label)


@dataclass(frozen=True)
class DataIssue:
    """A stored issue."""

    id: int
    feed: str
    ticker: str | None
    start: str
    end: str
    description: str
    reporter: str
    reported_at: str
    status: str  # open | resolved
    resolved_at: str | None = None
    resolved_by: str | None = None
    resolution: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def overlaps(self, start: str, end: str) -> bool:
        """True when the issue's range meets [start, end)."""
        return self.start < end and self.end >= start
