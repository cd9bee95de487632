"""`ssmd data issues list | show | report | resolve`: data issues in the security master
database (docs/data.md, "Data issues"). Mounted under `ssmd data`.

An issue is one feed's (venue's): `list`, `report` and `resolve` take the environment's
own feed, or another it captures with `--feed NAME` (as the gateway's `venue=`).

Reports and resolutions are journaled to `{env}.journal.data_issue`: at once when NATS
answers within a few seconds, else by the next secmaster run that reaches it.
"""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ssmd.cli.options import ConfigDirOption, DataDirOption, EnvOption, FeedOption, JsonOption
from ssmd.cli.output import print_json, print_table

if TYPE_CHECKING:
    from ssmd.config import ResolvedEnvironment
    from ssmd.issues import DataIssue
    from ssmd.secmaster.db import Store

app = typer.Typer(
    help="Data issues: reports of data that looks wrong, until resolved.", no_args_is_help=True
)

IdArgument = Annotated[int, typer.Argument(help="The issue's id (from `list`).")]
ByOption = Annotated[
    str | None,
    typer.Option("--by", help="Who you are (default: your user name).", show_default=False),
]
ISSUE_COLUMNS = ("id", "status", "ticker", "start", "end", "reporter", "description")


@contextmanager
def issue_errors() -> Iterator[None]:
    from ssmd.cli.exits import component_errors
    from ssmd.exceptions import IssueError, StoreError

    try:
        with component_errors():
            yield
    except (IssueError, StoreError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def _env(
    env: str, config_dir: Path | None, data_dir: str | None, feed: str | None = None
) -> ResolvedEnvironment:
    """The environment for one of its feeds; a feed it does not capture is a ConfigError
    naming those it does."""
    from ssmd.config import Overrides, load_environment

    return load_environment(env, config_dir, Overrides(data_dir=data_dir), feed=feed)


def _read(resolved: ResolvedEnvironment) -> Store:
    from ssmd.secmaster.db import open_store

    return open_store(resolved)


def _show(issue: DataIssue, as_json: bool) -> None:
    if as_json:
        print_json(issue.to_dict())
        return
    print_table(
        f"Data issue {issue.id}",
        ["field", "value"],
        [
            [k, "every market" if k == "ticker" and v is None else v]
            for k, v in issue.to_dict().items()
        ],
    )


def _journaled(resolved: ResolvedEnvironment, write: Any) -> DataIssue:
    """Run `write(store)` (which stores a change and its outbox entry), then publish the
    outbox when NATS answers."""
    from ssmd.secmaster.service import services

    async def main() -> DataIssue:
        async with services(resolved, redis=False) as svc:
            issue: DataIssue = write(svc.store)
            if svc.journal is not None:
                await svc.journal.flush(svc.store)
            return issue

    return asyncio.run(main())


def issue_rows(found: list[DataIssue]) -> list[list[Any]]:
    """Table rows (`ISSUE_COLUMNS`) of issues, for `list` and `ssmd data quality`."""
    return [
        [i.id, i.status, i.ticker or "(every market)", i.start, i.end, i.reporter, i.description]
        for i in found
    ]


def open_issues_of(
    env: str, config_dir: Path | None, data_dir: str | None, feed: str, day: date
) -> list[DataIssue]:
    """The open issues whose range meets the day (none when there is no database yet)."""
    from ssmd.issues import list_issues
    from ssmd.issues.model import day_bounds
    from ssmd.secmaster.db import SQLITE_FILE

    resolved = _env(env, config_dir, data_dir)
    if not resolved.database_url and not (resolved.data_dir / SQLITE_FILE).exists():
        return []
    start, end = day_bounds(day)
    with _read(resolved) as store:
        return list_issues(store, status="open", feed=feed, start=start, end=end, limit=1000)


@app.command("list")
def list_(
    env: EnvOption,
    status: Annotated[str, typer.Option(help="open, resolved or all.")] = "open",
    ticker: Annotated[
        str | None, typer.Option(help="This market's issues (and every-market ones).")
    ] = None,
    day: Annotated[
        str | None, typer.Option("--date", metavar="YYYY-MM-DD", help="Issues meeting this day.")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many (1..1000).")] = 100,
    feed: FeedOption = None,
    config_dir: ConfigDirOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Data issues of the feed by the time they begin (default: the open ones).

    Example: ssmd data issues list --env multi-sim --feed kraken --status all"""
    from ssmd.issues import list_issues, parse_time
    from ssmd.issues.model import day_bounds

    with issue_errors():
        resolved = _env(env, config_dir, data_dir, feed)
        start = end = None
        if day is not None:
            start, end = day_bounds(date.fromisoformat(parse_time(day, "--date")[:10]))
        with _read(resolved) as store:
            found = list_issues(
                store,
                status=None if status == "all" else status,
                feed=resolved.feed.name,
                ticker=ticker,
                start=start,
                end=end,
                limit=limit,
            )
    if as_json:
        print_json([i.to_dict() for i in found])
        return
    title = f"Data issues of {env}, feed {resolved.feed.name} ({status})"
    print_table(title, ISSUE_COLUMNS, issue_rows(found))


@app.command()
def show(
    issue_id: IdArgument,
    env: EnvOption,
    config_dir: ConfigDirOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """One data issue, with who reported it and how it was resolved."""
    from ssmd.exceptions import IssueError
    from ssmd.issues import get

    with issue_errors():
        with _read(_env(env, config_dir, data_dir)) as store:
            found = get(store, issue_id)
        if found is None:
            raise IssueError(f"no data issue {issue_id}. Fix: `ssmd data issues list --status all`")
    _show(found, as_json)


@app.command()
def report(
    env: EnvOption,
    start: Annotated[str, typer.Option("--from", help="When it starts (ISO 8601 UTC).")],
    end: Annotated[str, typer.Option("--to", help="When it ends (ISO 8601 UTC).")],
    description: Annotated[str, typer.Option("--description", help="What looks wrong.")],
    ticker: Annotated[
        str | None, typer.Option(help="The market, as its feed names it (default: every market).")
    ] = None,
    feed: FeedOption = None,
    by: ByOption = None,
    config_dir: ConfigDirOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Report data that looks wrong (agents use the MCP server's report_data_issue, or
    POST /v1/data-issues on the gateway).

    Example: ssmd data issues report --env multi-sim --feed kraken --ticker BTC/USD
    --from 2026-12-03T12:00:00Z --to 2026-12-03T12:05:00Z --description "trades missing" """
    from ssmd import issues

    with issue_errors():
        resolved = _env(env, config_dir, data_dir, feed)
        what = issues.parse_report(
            {"ticker": ticker, "start": start, "end": end, "description": description}
        )
        who = by or getpass.getuser()
        issue = _journaled(
            resolved,
            lambda store: issues.report(store, resolved.name, resolved.feed.name, what, who)[0],
        )
    _show(issue, as_json)


@app.command()
def resolve(
    issue_id: IdArgument,
    env: EnvOption,
    note: Annotated[str, typer.Option("--note", help="How it was resolved (or why not a fault).")],
    feed: FeedOption = None,
    by: ByOption = None,
    config_dir: ConfigDirOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Mark an issue of the feed resolved: it no longer shows in `ssmd data quality`.

    Example: ssmd data issues resolve 3 --env kalshi-sim --note "backfilled from REST" """
    with issue_errors():
        resolved = _env(env, config_dir, data_dir, feed)
        who = by or getpass.getuser()
        issue = _journaled(resolved, lambda store: _resolve(store, resolved, issue_id, who, note))
    _show(issue, as_json)


def _resolve(
    store: Store, resolved: ResolvedEnvironment, issue_id: int, who: str, note: str
) -> DataIssue:
    """Resolve the issue if it is of the feed asked for: an id mistyped for another
    venue's issue is refused, not resolved."""
    from ssmd import issues
    from ssmd.exceptions import IssueError

    found = issues.get(store, issue_id)
    if found is not None and found.feed != resolved.feed.name:
        raise IssueError(
            f"data issue {issue_id} is of feed {found.feed}, not {resolved.feed.name}. "
            f"Fix: --feed {found.feed}"
        )
    return issues.resolve(store, resolved.name, issue_id, who, note)[0]
