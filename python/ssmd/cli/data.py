"""`ssmd data inventory | gaps | quality`: what the archive holds, from manifests only.

An answer with no data is an error that says why: for an environment with no data
at all, which environments have data in the same stores; otherwise which feeds and
days this one has.
"""

from __future__ import annotations

import importlib
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from ssmd.cli.options import ConfigDirOption, DataDirOption, EnvOption, FeedOption, JsonOption
from ssmd.cli.output import print_json, print_table

if TYPE_CHECKING:
    from ssmd.data.inventory import Archive


class _DataGroup(TyperGroup):
    """Runs every command inside `component_errors`: missing credentials or a missing
    bucket are one line (`error: ... Fix: ...`, exit 3), never a traceback."""

    def invoke(self, ctx: Any) -> Any:  # typer's Context
        from ssmd.cli.exits import component_errors

        with component_errors():
            return super().invoke(ctx)


app = typer.Typer(
    help="Archived data: inventory, gaps and quality (from manifests); export, books.",
    no_args_is_help=True,
    cls=_DataGroup,
)

DayOption = Annotated[str, typer.Option("--date", metavar="YYYY-MM-DD", help="The day (UTC).")]


def _archive(
    env: str, config_dir: Path | None, data_dir: str | None
) -> tuple[Archive, tuple[str, ...]]:
    """The environment's archive and the feeds it captures (its own first)."""
    from ssmd.cli.exits import component_errors
    from ssmd.config import Overrides, load_environment
    from ssmd.data.inventory import Archive

    with component_errors():
        resolved = load_environment(env, config_dir, Overrides(data_dir=data_dir))
        return Archive.from_environment(resolved), resolved.feeds


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None


def _environments_with_data(arc: Archive) -> list[str]:
    """Environments with a manifest in the archive's stores. Lists the whole buckets, so
    it is only for explaining an empty answer."""
    from ssmd.store import keys

    found = set()
    for store in (arc.raw_store, arc.normalized_store):
        for obj in store.list(""):
            info = keys.parse_key(obj.key) if obj.key.endswith("/manifest.json") else None
            if info is not None and info.kind == "manifest":
                found.add(info.env)
    return sorted(found)


def _no_data(arc: Archive, asked: str) -> NoReturn:
    """Exit 1 saying what the environment has instead, or which environments have data."""
    spans: dict[str, tuple[str, str]] = {}
    for row in arc.inventory():
        first, last = spans.get(row["feed"], (row["date"], row["date"]))
        spans[row["feed"]] = (min(first, row["date"]), max(last, row["date"]))
    if spans:
        held = ", ".join(f"{feed} from {first} to {last}" for feed, (first, last) in spans.items())
        message = f"environment {arc.env} has no data for {asked}; it has data for {held}"
        fix = "choose a feed and dates from those"
    else:
        others = ", ".join(_environments_with_data(arc)) or "none"
        message = (
            f"no data for environment {arc.env} in {arc.raw_store.url} and "
            f"{arc.normalized_store.url}; environments with data there: {others}"
        )
        fix = "pass --env (or set SSMD_ENV) to one of them, or --data-dir where your data is"
    typer.echo(f"error: {message}. Fix: {fix}", err=True)
    raise typer.Exit(1)


@app.command()
def inventory(
    env: EnvOption,
    feed: FeedOption = None,
    start: Annotated[
        str | None, typer.Option("--from", metavar="YYYY-MM-DD", help="First day (UTC).")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", metavar="YYYY-MM-DD", help="Last day (UTC).")
    ] = None,
    config_dir: ConfigDirOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Per day, feed and data type: records, bytes, markets, status, gaps, quality; every
    feed the environment captures unless --feed names one.

    Example: ssmd data inventory --env kalshi-sim --from 2026-07-20
    """
    arc, env_feeds = _archive(env, config_dir, data_dir)
    feeds = (feed,) if feed else env_feeds
    first, last = (_day(start) if start else None), (_day(end) if end else None)
    rows = sorted(
        (r for f in feeds for r in arc.inventory(f, first, last)),
        key=lambda r: (r["date"], feeds.index(r["feed"])),
    )
    if not rows:
        dates = f" from {start or 'the first day'} to {end or 'today'}" if start or end else ""
        _no_data(arc, f"feed {', '.join(feeds)}{dates}")
    if as_json:
        print_json(rows)
        return
    cols = [
        "date",
        "feed",
        "data_type",
        "records",
        "bytes",
        "files",
        "markets",
        "status",
        "gaps",
        "quality_score",
    ]
    print_table(f"Inventory of {env}", cols, [[r[c] for c in cols] for r in rows])


@app.command()
def gaps(
    env: EnvOption,
    day: DayOption,
    feed: FeedOption = None,
    config_dir: ConfigDirOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """The day's gaps with their reasons and the markets affected.

    Example: ssmd data gaps --env kalshi-sim --date 2026-07-20
    """
    arc, env_feeds = _archive(env, config_dir, data_dir)
    feed = feed or env_feeds[0]
    when = _day(day)
    if not arc.inventory(feed, when, when):
        _no_data(arc, f"feed {feed} on {day}")
    found = arc.gaps(feed, when)
    if as_json:
        print_json(found)
        return
    cols = ["start", "end", "duration_s", "reason", "markets", "detail"]
    rows = [
        [
            g["start"],
            g["end"],
            g["duration_s"],
            g["reason"],
            ",".join(g["markets"]) or "all",
            g["detail"],
        ]
        for g in found
    ]
    print_table(f"Gaps of {feed} on {day}", cols, rows)


@app.command()
def quality(
    env: EnvOption,
    day: DayOption,
    feed: FeedOption = None,
    config_dir: ConfigDirOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """The day's quality report (quality_score is defined in docs/archiver.md).

    Example: ssmd data quality --env kalshi-sim --date 2026-07-20
    """
    from ssmd.cli.issues import ISSUE_COLUMNS, issue_errors, issue_rows, open_issues_of

    arc, env_feeds = _archive(env, config_dir, data_dir)
    feed = feed or env_feeds[0]
    report = arc.quality(feed, _day(day))
    if not report["found"]:
        _no_data(arc, f"feed {feed} on {day}")
    # Reported problems not resolved yet, next to the gaps the archive knows of.
    with issue_errors():
        found = open_issues_of(env, config_dir, data_dir, feed, _day(day))
    if as_json:
        print_json({**report, "data_issues": [i.to_dict() for i in found]})
        return
    print_table(
        f"Quality of {feed} on {day}", ["field", "value"], [[k, v] for k, v in report.items()]
    )
    if found:
        fix = "ssmd data issues resolve ID" + ("" if feed == env_feeds[0] else f" --feed {feed}")
        print_table(
            f"Open data issues of {feed} on {day} (`{fix}` when fixed)",
            ISSUE_COLUMNS,
            issue_rows(found),
        )


# `ssmd data export | book` (the archive as a dataset) live in ssmd.cli.dataset.
app.registered_commands.extend(importlib.import_module("ssmd.cli.dataset").app.registered_commands)
# `ssmd data issues ...` (reports of data that looks wrong) live in ssmd.cli.issues.
app.add_typer(importlib.import_module("ssmd.cli.issues").app, name="issues")
# `ssmd data replay` (an archived day sent again) lives in ssmd.cli.replay.
app.registered_commands.extend(importlib.import_module("ssmd.cli.replay").app.registered_commands)
