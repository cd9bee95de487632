"""`ssmd market`: the security master (docs/secmaster.md)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ssmd.cli.options import ConfigDirOption, DataDirOption, EnvOption, FeedOption, JsonOption
from ssmd.cli.output import print_json, print_table

app = typer.Typer(
    help="The security master: sync, list, show and history of markets.", no_args_is_help=True
)

_DB = typer.Option(None, help="Override the database URL (PostgreSQL).")
_LIST_COLUMNS = (
    "ticker",
    "status",
    "category",
    "series_ticker",
    "open_time",
    "close_time",
    "title",
)


def _env(env: str, config_dir: Path | None, feed: str | None, **overrides: str | None) -> Any:
    from ssmd.cli.exits import component_errors
    from ssmd.config import Overrides, load_environment

    with component_errors():
        return load_environment(env, config_dir, Overrides(**overrides), feed=feed)


def _store(resolved: Any) -> Any:
    from ssmd.exceptions import ConfigError, StoreError
    from ssmd.secmaster import open_store

    try:
        return open_store(resolved)
    except (ConfigError, StoreError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command()
def sync(
    env: EnvOption,
    config_dir: ConfigDirOption = None,
    feed: FeedOption = None,
    everything: bool = typer.Option(
        False, "--all", help="Every market of the venue, not only the environment's selection."
    ),
    journal: bool = typer.Option(
        True,
        help="Publish changes to {env}.journal.secmaster now; without, they wait in the "
        "store's outbox for the next secmaster run that reaches NATS.",
    ),
    rest_url: str | None = typer.Option(None, help="Override the REST URL."),
    nats_url: str | None = typer.Option(None, help="Override the NATS URL."),
    redis_url: str | None = typer.Option(None, help="Override the Redis URL."),
    database_url: str | None = _DB,
    data_dir: DataDirOption = None,
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    log_level: str = typer.Option("INFO", help="Log level."),
) -> None:
    """Read the venue's market listing (Kalshi: series, events and markets) into the store;
    idempotent."""
    from ssmd.exceptions import ConfigError, SsmdError
    from ssmd.obs import logs
    from ssmd.secmaster import sync_environment

    logs.setup(log_level, component="secmaster-sync")
    resolved = _env(
        env,
        config_dir,
        feed,
        rest_url=rest_url,
        nats_url=nats_url,
        redis_url=redis_url,
        database_url=database_url,
        data_dir=data_dir,
    )
    try:
        report = asyncio.run(sync_environment(resolved, everything=everything, journal=journal))
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except SsmdError as exc:
        typer.echo(f"sync failed: {exc}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        print_json(report.as_dict())
        return
    d = report.as_dict()
    typer.echo(
        f"synced {d['series']} series, {d['events']} events, {d['markets']} markets "
        f"({d['pages']} pages, {d['seconds']} s): created {d['created']}, updated {d['updated']}, "
        f"{d['history_rows']} history rows, {d['missing_events']} missing events"
    )


@app.command("list")
def list_(
    env: EnvOption,
    config_dir: ConfigDirOption = None,
    feed: FeedOption = None,
    status: list[str] = typer.Option(
        [], "--status", help="ssmd status (open, closed, halted, ...) or Kalshi word; repeatable."
    ),
    category: list[str] = typer.Option([], "--category", help="Series category; repeatable."),
    series: list[str] = typer.Option([], "--series", help="Series ticker; repeatable."),
    search: str | None = typer.Option(None, help="Substring of ticker, title or subtitle."),
    limit: int | None = typer.Option(None, help="At most this many rows."),
    as_json: bool = typer.Option(False, "--json", help="One JSON array of market objects."),
    database_url: str | None = _DB,
    data_dir: DataDirOption = None,
) -> None:
    """Markets in the store."""
    from ssmd.secmaster import map_status

    resolved = _env(env, config_dir, feed, database_url=database_url, data_dir=data_dir)
    statuses = {s if s == "unknown" else map_status(s) for s in status}
    with _store(resolved) as store:
        rows = store.markets(
            statuses=statuses or None,
            categories=category or None,
            series=series or None,
            search=search,
            limit=limit,
            venue=resolved.feed.name,
        )
        if as_json:
            typer.echo("[", nl=False)
            for i, r in enumerate(rows):
                typer.echo(("," if i else "") + json.dumps(r), nl=False)
            typer.echo("]")
            return
        table = [[r[c] if r[c] is not None else "" for c in _LIST_COLUMNS] for r in rows]
    print_table(f"markets ({len(table)})", _LIST_COLUMNS, table)


@app.command()
def show(
    ticker: Annotated[str, typer.Argument(help="Market ticker.")],
    env: EnvOption,
    config_dir: ConfigDirOption = None,
    feed: FeedOption = None,
    as_json: JsonOption = False,
    database_url: str | None = _DB,
    data_dir: DataDirOption = None,
) -> None:
    """One market, every field."""
    resolved = _env(env, config_dir, feed, database_url=database_url, data_dir=data_dir)
    with _store(resolved) as store:
        row = store.market(ticker, resolved.feed.name)
    if row is None:
        typer.echo(
            f"error: no {resolved.feed.name} market {ticker!r} in the store of {env}", err=True
        )
        raise typer.Exit(1)
    if as_json:
        print_json(row)
        return
    print_table(ticker, ("field", "value"), [[k, "" if v is None else v] for k, v in row.items()])


@app.command()
def history(
    ticker: Annotated[str, typer.Argument(help="Market ticker.")],
    env: EnvOption,
    config_dir: ConfigDirOption = None,
    feed: FeedOption = None,
    as_json: JsonOption = False,
    database_url: str | None = _DB,
    data_dir: DataDirOption = None,
) -> None:
    """Every recorded change of one market, oldest first."""
    resolved = _env(env, config_dir, feed, database_url=database_url, data_dir=data_dir)
    with _store(resolved) as store:
        rows = store.history(ticker, resolved.feed.name)
        known = store.market(ticker, resolved.feed.name) is not None
    if not known and not rows:
        typer.echo(
            f"error: no {resolved.feed.name} market {ticker!r} in the store of {env}", err=True
        )
        raise typer.Exit(1)
    if as_json:
        print_json(rows)
        return
    cols = ("changed_at", "source", "field", "old_value", "new_value")
    print_table(
        f"{ticker} history", cols, [[r[c] if r[c] is not None else "" for c in cols] for r in rows]
    )


@app.command()
def migrate(
    env: EnvOption,
    config_dir: ConfigDirOption = None,
    to: int | None = typer.Option(None, "--to", help="Target version (0 = remove everything)."),
    database_url: str | None = _DB,
    data_dir: DataDirOption = None,
) -> None:
    """Apply (or revert, with --to) the store's schema migrations."""
    from ssmd.exceptions import StoreError
    from ssmd.secmaster import Store
    from ssmd.secmaster.db import SQLITE_FILE

    resolved = _env(env, config_dir, None, database_url=database_url, data_dir=data_dir)
    target = resolved.database_url or resolved.data_dir / SQLITE_FILE
    try:
        with Store.open(target) as store:
            done = store.migrate(to)
            typer.echo(
                f"{store.description}: version {store.version()} (applied {done or 'nothing'})"
            )
    except StoreError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command()
def live(
    env: EnvOption,
    config_dir: ConfigDirOption = None,
    feed: FeedOption = None,
    nats_url: str | None = typer.Option(None, help="Override the NATS URL."),
    redis_url: str | None = typer.Option(None, help="Override the Redis URL."),
    database_url: str | None = _DB,
    data_dir: DataDirOption = None,
    sweep_every: float = typer.Option(10.0, help="Seconds between open/close sweeps."),
    log_level: str = typer.Option("INFO", help="Log level."),
) -> None:
    """Apply lifecycle records from the stream and sweep open/close times until SIGTERM."""
    import signal

    from ssmd.obs import logs
    from ssmd.secmaster import Live, run_live, services
    from ssmd.secmaster.journal import journal_subject
    from ssmd.venues import venue

    logs.setup(log_level, component="secmaster")
    resolved = _env(
        env,
        config_dir,
        feed,
        nats_url=nats_url,
        redis_url=redis_url,
        database_url=database_url,
        data_dir=data_dir,
    )
    if resolved.nats.embedded:
        typer.echo("error: NATS is 'embedded' in this environment; pass --nats-url", err=True)
        raise typer.Exit(2)
    if not venue(resolved.feed.name).lifecycle:
        typer.echo(
            f"error: {resolved.feed.name}'s stream carries no market lifecycle records to "
            "apply; its markets change with each `ssmd market sync`",
            err=True,
        )
        raise typer.Exit(2)

    async def main() -> None:
        from ssmd.bus.connection import connect

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with services(resolved, connect_wait=None) as svc:
            nc = await connect(resolved.nats.url, "ssmd-secmaster-live")
            js = nc.jetstream()

            async def publish(msgs: list[tuple[str, bytes, str]]) -> None:
                for subject, data, msg_id in msgs:
                    await js.publish(subject, data, headers={"Nats-Msg-Id": msg_id})

            runner = Live(
                svc.store,
                resolved.name,
                resolved.feed.name,
                journal_subject=journal_subject(resolved.name),
                on_changes=svc.changed,
                publish_status=publish,
            )
            try:
                await run_live(runner, js, resolved.nats.stream, stop=stop, sweep_every=sweep_every)
            finally:
                await nc.drain()

    asyncio.run(main())
