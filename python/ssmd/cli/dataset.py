"""`ssmd data export | book | backfill`: the archive as a dataset (mounted under `ssmd data`).

Errors are one line, `error: ... Fix: ...`, exit 1: an unknown type or ticker (with
the closest known names), a range without data (with the days that have some), a
damaged file (named, with its offset; `--allow-partial` skips it and the summary
says so), an output folder that holds something else.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ssmd.cli.options import ConfigDirOption, DataDirOption, EnvOption, FeedOption, JsonOption
from ssmd.cli.output import print_json, print_text

if TYPE_CHECKING:
    from rich.progress import Progress, Task
    from rich.text import Text

    from ssmd.data.export import ExportSummary
    from ssmd.data.source import Dataset

app = typer.Typer()


@contextmanager
def _data_errors(damage_fix: str = "restore the file") -> Iterator[None]:
    """DataError, ArchiveError and bad values as `error: ... Fix: ...`, exit 1."""
    from ssmd.exceptions import ArchiveError, DataError

    try:
        yield
    except DataError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except ArchiveError as exc:
        typer.echo(f"error: {exc}. Fix: {damage_fix}", err=True)
        raise typer.Exit(1) from None
    except ValueError as exc:
        typer.echo(f"error: {exc}. Fix: correct the value", err=True)
        raise typer.Exit(1) from None


def _dataset(env: str, config_dir: Path | None, data_dir: str | None, feed: str | None) -> Dataset:
    from ssmd.cli.exits import component_errors
    from ssmd.data.source import Dataset

    with component_errors():
        return Dataset.open(env, data_dir=data_dir, config_dir=config_dir, feed=feed)


def _default_out(ds: Dataset) -> Path:
    out = ds.export_dir
    assert out is not None, "Dataset.open knows the data dir"
    return out


def _day(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a date (YYYY-MM-DD)", param_hint=option
        ) from None


def _names(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


class _Bar:
    """A progress bar on stderr with records/s and the time left, shown once the
    export knows how many records it has to write."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            Progress,
            ProgressColumn,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
        )
        from rich.text import Text

        class Rate(ProgressColumn):
            def render(self, task: Task) -> Text:
                speed = task.finished_speed or task.speed
                return Text(f"{speed:,.0f} records/s" if speed else "- records/s")

        self.progress: Progress = Progress(
            TextColumn("exporting"),
            BarColumn(),
            TaskProgressColumn(),
            Rate(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self.task: Any = None

    def start(self, total: int) -> None:
        self.task = self.progress.add_task("export", total=total)
        self.progress.start()

    def advance(self, records: int) -> None:
        self.progress.advance(self.task, records)

    def stop(self) -> None:
        self.progress.stop()


def _print_summary(summary: ExportSummary) -> None:
    written = len(summary.written)
    print_text(
        f"exported {written} partition{'' if written == 1 else 's'} ({summary.rows:,} rows, "
        f"{summary.bytes:,} bytes) to {summary.out} in {summary.seconds:.1f} s "
        f"({summary.rows_per_s:,.0f} rows/s); {len(summary.unchanged)} up to date"
    )
    if summary.open:
        print_text(f"open (spooled) data included in: {', '.join(summary.open)}")
    for skipped in summary.skipped_files:
        print_text(f"left out (damaged): {skipped['file']}: {skipped['error']}")


@app.command()
def export(
    env: EnvOption,
    start: Annotated[str, typer.Option("--from", metavar="YYYY-MM-DD", help="First day (UTC).")],
    end: Annotated[
        str | None,
        typer.Option("--to", metavar="YYYY-MM-DD", help="Last day (UTC; default: --from)."),
    ] = None,
    types: Annotated[
        str | None,
        typer.Option(
            "--type",
            metavar="T,...",
            help="trade, ticker, book (book_delta, book_level and spot_level), lifecycle, "
            "event_lifecycle, status, connector_event, spot_level, spot_ticker (default: all).",
        ),
    ] = None,
    tickers: Annotated[
        str | None, typer.Option("--tickers", metavar="T,...", help="Only these markets.")
    ] = None,
    series: Annotated[
        str | None,
        typer.Option("--series", metavar="S,...", help="Only the markets of these series."),
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", metavar="FORMAT", help="parquet, csv or jsonl.")
    ] = "parquet",
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="DIR",
            help="Where to write (default: DATA_DIR/export/ENV/FEED, where scan looks).",
        ),
    ] = None,
    include_open: Annotated[
        bool,
        typer.Option("--include-open", help="Also export data still in the archiver's spool."),
    ] = False,
    allow_partial: Annotated[
        bool,
        typer.Option("--allow-partial", help="Leave damaged files out instead of stopping."),
    ] = False,
    feed: FeedOption = None,
    config_dir: ConfigDirOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Export the normalized archive, Hive-partitioned (type=T/date=D/part-0.parquet).

    Incremental: a day is written again only when its manifest changed.

    Example: ssmd data export --env kalshi-sim --from 2026-12-01 --to 2026-12-03 --type trade
    """
    from ssmd.data.export import FORMATS, ExportRequest
    from ssmd.data.export import export as run_export
    from ssmd.data.kinds import parse_kinds

    if tickers and series:
        raise typer.BadParameter("give --tickers or --series, not both", param_hint="--series")
    if fmt not in FORMATS:
        raise typer.BadParameter(
            f"{fmt!r} is not one of {', '.join(FORMATS)}", param_hint="--format"
        )
    first = _day(start, "--from")
    last = _day(end, "--to") if end else first
    if last < first:
        raise typer.BadParameter(f"{end} is before --from {start}", param_hint="--to")
    ds = _dataset(env, config_dir, data_dir, feed)
    with _data_errors("restore the file, or pass --allow-partial to leave it out"):
        request = ExportRequest(
            kinds=parse_kinds(types),
            days=[first + timedelta(days=i) for i in range((last - first).days + 1)],
            out=out or _default_out(ds),
            format=fmt,
            tickers=_names(tickers),
            series=_names(series),
            include_open=include_open,
            allow_partial=allow_partial,
        )
        bar = _Bar() if not as_json and sys.stderr.isatty() else None
        try:
            summary = run_export(
                ds,
                request,
                on_plan=bar.start if bar else None,
                on_progress=bar.advance if bar else None,
            )
        finally:
            if bar is not None:
                bar.stop()
    if as_json:
        print_json(summary.as_dict())
    else:
        _print_summary(summary)


@app.command()
def book(
    ticker: Annotated[str, typer.Argument(metavar="TICKER", help="The market.")],
    env: EnvOption,
    at: Annotated[
        str,
        typer.Option("--at", metavar="TIME", help="When (UTC), e.g. 2026-12-03T12:00:00Z."),
    ],
    depth: Annotated[
        int | None, typer.Option("--depth", metavar="N", help="Levels a side (default: all).")
    ] = None,
    feed: FeedOption = None,
    config_dir: ConfigDirOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """The market's order book at a moment, rebuilt from the archive.

    Invalid across a gap (a disconnect, a sequence gap) until the next snapshot, with
    the gap's reason.

    Example: ssmd data book KXBTCD-26DEC0317-T118000 --env kalshi-sim --at 2026-12-03T12:00:00Z
    """
    from ssmd.cli.output import print_table
    from ssmd.data.books import book_at
    from ssmd.records import SCALE_E6

    if depth is not None and depth < 1:
        raise typer.BadParameter("must be 1 or more", param_hint="--depth")
    ds = _dataset(env, config_dir, data_dir, feed)
    with _data_errors():
        result = book_at(ticker, at, depth, dataset=ds)
    if as_json:
        print_json(result.to_dict())
        return

    def decimal(value: int) -> str:
        return f"{value / SCALE_E6:.6f}".rstrip("0").rstrip(".")

    state = "valid" if result.valid else f"INVALID: {result.reason}"
    rows = []
    for level in range(max(len(result.bids), len(result.asks))):
        bid = result.bids[level] if level < len(result.bids) else None
        ask = result.asks[level] if level < len(result.asks) else None
        rows.append(
            [
                decimal(bid[1]) if bid else "",
                decimal(bid[0]) if bid else "",
                decimal(ask[0]) if ask else "",
                decimal(ask[1]) if ask else "",
            ]
        )
    print_table(f"{ticker} at {at} ({state})", ["bid size", "bid", "ask", "ask size"], rows)


@app.command()
def backfill(
    env: EnvOption,
    day: Annotated[str, typer.Option("--date", metavar="YYYY-MM-DD", help="The day (UTC).")],
    tickers: Annotated[
        str | None,
        typer.Option("--tickers", metavar="T,...", help="Only these markets (default: all)."),
    ] = None,
    margin: Annotated[
        float,
        typer.Option(
            "--margin",
            metavar="SECONDS",
            help="Also ask for this long before and after each gap (a lost connection is "
            "noticed late).",
        ),
    ] = 60.0,
    feed: FeedOption = None,
    config_dir: ConfigDirOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Fill the day's trade gaps from the venue's REST API (GET /markets/trades).

    The trades the archive lacks are written as their own source (rest_backfill), read
    with the live ones; running it again adds nothing. Order-book gaps cannot be
    backfilled (the REST API has no book history).

    Example: ssmd data backfill --env kalshi-sim --date 2026-12-03
    """
    import asyncio

    from ssmd.cli.exits import component_errors
    from ssmd.config import Overrides, load_environment
    from ssmd.data.backfill import backfill as run_backfill
    from ssmd.data.source import Dataset
    from ssmd.exceptions import RestError
    from ssmd.venues.kalshi.rest import RestClient

    when = _day(day, "--date")
    if margin < 0:
        raise typer.BadParameter("must be 0 or more", param_hint="--margin")
    with component_errors():
        resolved = load_environment(env, config_dir, Overrides(data_dir=data_dir))
        ds = Dataset.from_environment(resolved, feed)
    url = resolved.endpoint.rest_url

    async def run() -> Any:
        async with RestClient(url) as rest:
            return await run_backfill(ds, when, rest, tickers=_names(tickers), margin_s=margin)

    with _data_errors():
        try:
            summary = asyncio.run(run())
        except RestError as exc:
            typer.echo(
                f"error: {exc}. Fix: check that the venue's REST API at {url} answers "
                "(the environment's endpoint rest_url)",
                err=True,
            )
            raise typer.Exit(1) from None
    if as_json:
        print_json(summary.as_dict())
        return
    for gap in summary.gaps:
        markets = ",".join(gap.markets) or "every market"
        print_text(
            f"{gap.reason} {gap.start} to {gap.end} ({markets}): {gap.fetched:,} trades "
            f"from REST, {gap.added:,} added"
        )
    if not summary.gaps:
        print_text(f"no gaps to backfill on {summary.date}")
    print_text(
        f"backfilled {summary.added:,} trades into {len(summary.files)} files in "
        f"{summary.seconds:.1f} s"
        + (f"; {summary.malformed} unreadable, left out" if summary.malformed else "")
    )
    print_text(summary.books)
