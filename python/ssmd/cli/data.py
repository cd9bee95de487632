"""`ssmd data inventory | gaps | quality`: what the archive holds, from manifests only."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import typer

from ssmd.cli.options import ConfigDirOption, EnvOption
from ssmd.cli.output import JsonOption, print_json, print_table

app = typer.Typer(
    help="Archived data: inventory, gaps and quality (from manifests).", no_args_is_help=True
)

DataDirOption = typer.Option(None, "--data-dir", help="Override the data dir.")


def _archive(env: str, config_dir: Path | None, data_dir: str | None):  # type: ignore[no-untyped-def]
    from ssmd.cli.exits import component_errors
    from ssmd.config import Overrides, load_environment
    from ssmd.data.inventory import Archive

    with component_errors():
        return Archive.from_environment(
            load_environment(env, config_dir, Overrides(data_dir=data_dir))
        )


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None


@app.command()
def inventory(
    env: EnvOption = "kalshi-sim",
    feed: str | None = typer.Option(None, "--feed", help="Only this feed."),
    start: str | None = typer.Option(None, "--from", help="First date, YYYY-MM-DD."),
    end: str | None = typer.Option(None, "--to", help="Last date, YYYY-MM-DD."),
    config_dir: ConfigDirOption = None,
    data_dir: str | None = DataDirOption,
    as_json: JsonOption = False,
) -> None:
    """Per day and data type: records, bytes, markets, status, gaps, quality."""
    arc = _archive(env, config_dir, data_dir)
    rows = arc.inventory(feed, _day(start) if start else None, _day(end) if end else None)
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
    feed: str = typer.Option(..., "--feed"),
    day: str = typer.Option(..., "--date", help="YYYY-MM-DD (UTC)."),
    env: EnvOption = "kalshi-sim",
    config_dir: ConfigDirOption = None,
    data_dir: str | None = DataDirOption,
    as_json: JsonOption = False,
) -> None:
    """The day's gaps with their reasons and the markets affected."""
    found = _archive(env, config_dir, data_dir).gaps(feed, _day(day))
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
    feed: str = typer.Option(..., "--feed"),
    day: str = typer.Option(..., "--date", help="YYYY-MM-DD (UTC)."),
    env: EnvOption = "kalshi-sim",
    config_dir: ConfigDirOption = None,
    data_dir: str | None = DataDirOption,
    as_json: JsonOption = False,
) -> None:
    """The day's quality report (quality_score is defined in docs/archiver.md)."""
    report = _archive(env, config_dir, data_dir).quality(feed, _day(day))
    if as_json:
        print_json(report)
        return
    if not report["found"]:
        typer.echo(f"no manifests for {feed} on {day}", err=True)
        raise typer.Exit(1)
    print_table(
        f"Quality of {feed} on {day}", ["field", "value"], [[k, v] for k, v in report.items()]
    )
