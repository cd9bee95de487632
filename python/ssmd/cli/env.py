"""`ssmd env create|list|show|update`: the environments under exchanges/environments/."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ssmd.cli.options import DataDirOption, FeedOption
from ssmd.cli.output import (
    ConfigDirOption,
    JsonOption,
    print_json,
    print_table,
    print_text,
    reporting,
    tree_at,
    warn_broken,
)
from ssmd.config.environments import (
    create_environment,
    get_environment,
    list_environments,
    update_environment,
)
from ssmd.config.models.environment import LocalStorage
from ssmd.config.resolve import Overrides, load_environment
from ssmd.exceptions import ConfigError

app = typer.Typer(
    help="Environments: one deployment of a feed (schedule, symbols, transport, storage).",
    no_args_is_help=True,
)

Many = Annotated[list[str] | None, typer.Option()]


def _secrets(items: list[str]) -> dict[str, str]:
    secrets = {}
    for item in items:
        name, sep, ref = item.partition("=")
        if not sep:
            raise ConfigError(
                f"--secret {item!r}: expected NAME=env:VAR or NAME=file:/path. "
                "Fix: e.g. --secret kalshi_api_key=env:KALSHI_API_KEY"
            )
        secrets[name] = ref
    return secrets


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Environment name, e.g. kalshi-prod.")],
    feed: Annotated[str, typer.Option(help="Feed name.")],
    endpoint: Annotated[str, typer.Option(help="Feed endpoint set (prod, demo, ...) or custom.")],
    ws_url: Annotated[str | None, typer.Option(help="With --endpoint custom.")] = None,
    rest_url: Annotated[str | None, typer.Option(help="With --endpoint custom.")] = None,
    channel: Annotated[
        list[str] | None, typer.Option(help="Channel subset, repeatable (default: all).")
    ] = None,
    nats_url: Annotated[str, typer.Option(help="NATS URL or embedded.")] = "embedded",
    ticker: Annotated[list[str] | None, typer.Option(help="Market ticker, repeatable.")] = None,
    series: Annotated[list[str] | None, typer.Option(help="Series ticker, repeatable.")] = None,
    category: Annotated[list[str] | None, typer.Option(help="Category, repeatable.")] = None,
    sync: Annotated[
        bool | None,
        typer.Option("--sync/--no-sync", help="Expand series/categories (default: on if given)."),
    ] = None,
    timezone: Annotated[str | None, typer.Option(help="IANA time zone of the schedule.")] = None,
    raw: Annotated[
        str, typer.Option(help="Raw archive: a directory (under the data dir) or s3://bucket.")
    ] = "raw",
    normalized: Annotated[
        str, typer.Option(help="Normalized archive: directory or s3://bucket.")
    ] = "normalized",
    s3_endpoint: Annotated[
        str | None, typer.Option(help="S3-compatible endpoint for s3:// storage.")
    ] = None,
    s3_region: Annotated[str | None, typer.Option(help="Region for s3:// storage.")] = None,
    secret: Annotated[
        list[str] | None, typer.Option(help="NAME=env:VAR or NAME=file:/path, repeatable.")
    ] = None,
    description: Annotated[str | None, typer.Option(help="Free text.")] = None,
    config_dir: ConfigDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create environments/NAME.yaml (refuses to overwrite).

    Example: ssmd env create kalshi-prod --feed kalshi --endpoint prod --nats-url nats://127.0.0.1:4222 --series KXBTCD --secret kalshi_api_key=env:KALSHI_API_KEY
    """
    with reporting(as_json):
        environment = create_environment(
            tree_at(config_dir),
            name,
            feed=feed,
            endpoint=endpoint,
            ws_url=ws_url,
            rest_url=rest_url,
            channels=channel or [],
            nats_url=nats_url,
            tickers=ticker or [],
            series=series or [],
            categories=category or [],
            sync=sync,
            timezone=timezone,
            raw=raw,
            normalized=normalized,
            s3_endpoint=s3_endpoint,
            s3_region=s3_region,
            secrets=_secrets(secret or []),
            description=description,
        )
        if as_json:
            print_json(
                {"ok": True, "environment": environment.model_dump(mode="json", by_alias=True)}
            )
        else:
            print_text(f"created environment {name}")


def _storage_text(location: Any) -> str:
    if isinstance(location, LocalStorage):
        return location.path
    return f"s3://{location.bucket}"


@app.command("list")
def list_command(config_dir: ConfigDirOption = None, as_json: JsonOption = False) -> None:
    """List the environments.

    Example: ssmd env list
    """
    with reporting(as_json):
        environments, broken = list_environments(tree_at(config_dir))
        if as_json:
            print_json(
                [
                    {
                        "name": e.document.name,
                        "file": str(e.path),
                        "feed": e.document.spec.feed.name,
                        "endpoint": e.document.spec.feed.endpoint,
                        "venues": [v.feed.name for v in e.document.spec.venues],
                        "nats_url": e.document.spec.transport.nats_url,
                    }
                    for e in environments
                ]
            )
        else:
            print_table(
                "Environments",
                ["name", "feed", "endpoint", "NATS", "raw", "normalized"],
                [
                    (
                        e.document.name,
                        ", ".join(
                            [
                                e.document.spec.feed.name,
                                *(v.feed.name for v in e.document.spec.venues),
                            ]
                        ),
                        e.document.spec.feed.endpoint,
                        e.document.spec.transport.nats_url,
                        _storage_text(e.document.spec.storage.raw),
                        _storage_text(e.document.spec.storage.normalized),
                    )
                    for e in environments
                ],
            )
        warn_broken(broken)


def _flatten(data: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(data, dict):
        rows = []
        for key, value in data.items():
            rows.extend(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return rows
    if isinstance(data, list):
        return [(prefix, ", ".join(map(str, data)))]
    return [(prefix, "" if data is None else str(data))]


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="Environment name.")],
    resolved: Annotated[
        bool,
        typer.Option("--resolved", help="Effective values: overrides applied, secrets masked."),
    ] = False,
    feed: FeedOption = None,
    data_dir: DataDirOption = None,
    nats_url: Annotated[str | None, typer.Option(help="Override the NATS URL.")] = None,
    ws_url: Annotated[str | None, typer.Option(help="Override the feed's WebSocket URL.")] = None,
    rest_url: Annotated[str | None, typer.Option(help="Override the feed's REST URL.")] = None,
    s3_endpoint: Annotated[str | None, typer.Option(help="Override the S3 endpoint.")] = None,
    redis_url: Annotated[str | None, typer.Option(help="Override the Redis URL.")] = None,
    database_url: Annotated[str | None, typer.Option(help="Override the database URL.")] = None,
    temporal_address: Annotated[
        str | None, typer.Option(help="Override the Temporal address.")
    ] = None,
    config_dir: ConfigDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show an environment as written, or with --resolved as components will see it.

    Example: ssmd env show kalshi-dev --resolved --nats-url nats://10.0.0.5:4222
    """
    with reporting(as_json):
        if resolved:
            overrides = Overrides(
                data_dir=data_dir,
                nats_url=nats_url,
                ws_url=ws_url,
                rest_url=rest_url,
                s3_endpoint=s3_endpoint,
                redis_url=redis_url,
                database_url=database_url,
                temporal_address=temporal_address,
            )
            view = load_environment(name, config_dir, overrides, feed=feed).describe()
            if as_json:
                print_json(view)
                return
            sources = view.pop("sources")
            secrets = view.pop("secrets")
            print_table(f"Environment {name} (resolved)", ["setting", "value"], _flatten(view))
            print_table("Overridable settings", ["setting", "from"], sorted(sources.items()))
            print_table(
                "Secrets",
                ["name", "reference", "value", "available"],
                [
                    (k, s["ref"], s["value"], "yes" if s["available"] else "no")
                    for k, s in secrets.items()
                ],
            )
            return
        environment = get_environment(tree_at(config_dir), name)
        data = environment.document.model_dump(mode="json", by_alias=True, exclude_unset=True)
        if as_json:
            print_json(data)
        else:
            print_table(
                f"Environment {name} ({environment.file})", ["field", "value"], _flatten(data)
            )


@app.command("update")
def update(
    name: Annotated[str, typer.Argument(help="Environment name.")],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="FIELD=VALUE (VALUE read as YAML), repeatable."),
    ] = None,
    unset: Annotated[list[str] | None, typer.Option(help="FIELD to remove, repeatable.")] = None,
    config_dir: ConfigDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Change fields of an environment; the result must validate or nothing is written.

    FIELD is a dotted path below spec (the `spec.` prefix is optional).

    Example: ssmd env update kalshi-dev --set transport.retention=72h --set symbols.series=[KXBTCD,KXETHD]
    """
    with reporting(as_json):
        if not set_ and not unset:
            raise ConfigError(
                "nothing to update; expected --set FIELD=VALUE or --unset FIELD. "
                "Fix: e.g. --set transport.retention=72h"
            )
        environment = update_environment(
            tree_at(config_dir), name, assignments=set_ or [], unset=unset or []
        )
        if as_json:
            print_json(
                {"ok": True, "environment": environment.model_dump(mode="json", by_alias=True)}
            )
        else:
            print_text(f"updated environment {name}")


@app.command("teardown")
def teardown_command(
    name: Annotated[str, typer.Argument(help="Environment name.")],
    day: Annotated[
        str | None,
        typer.Option("--date", metavar="YYYY-MM-DD", help="Only the archive of this UTC day."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would go, with counts and bytes.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Also for an environment marked protected: true.")
    ] = False,
    data_dir: DataDirOption = None,
    nats_url: Annotated[str | None, typer.Option(help="Override the NATS URL.")] = None,
    s3_endpoint: Annotated[str | None, typer.Option(help="Override the S3 endpoint.")] = None,
    redis_url: Annotated[str | None, typer.Option(help="Override the Redis URL.")] = None,
    config_dir: ConfigDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete everything an environment owns: its archive (raw and normalized, local or
    S3), NATS streams with their consumers, KV buckets, Redis keys and spools (docs/teardown.md).

    Refused while it runs, and for `protected: true` without --force. The environment's
    file stays.

    Example: ssmd env teardown kalshi-dev --dry-run
    """
    import asyncio
    import sys
    from datetime import date

    from ssmd.envops import Holding, teardown
    from ssmd.exceptions import StorageError
    from ssmd.up.status import human_bytes

    def show(held: list[Holding], title: str) -> None:
        print_table(
            title,
            ["what", "where", "name", "items", "bytes"],
            [(h.kind, h.where, h.name, f"{h.count:,}", human_bytes(h.size)) for h in held],
        )

    def confirm(held: list[Holding]) -> bool:
        if yes:
            return True
        if as_json or not sys.stdin.isatty():
            raise ConfigError(
                f"teardown of {name} needs confirmation; nothing deleted. Fix: pass --yes "
                "(after a --dry-run), or run it in a terminal"
            )
        show(held, f"Environment {name}: to be deleted")
        typed: str = typer.prompt(f"Type {name} to delete all of this")
        return typed == name

    with reporting(as_json):
        try:
            when = date.fromisoformat(day) if day else None
        except ValueError:
            raise ConfigError(f"--date {day!r}: expected YYYY-MM-DD, e.g. 2026-07-20") from None
        resolved = load_environment(
            name,
            config_dir,
            Overrides(
                data_dir=data_dir, nats_url=nats_url, s3_endpoint=s3_endpoint, redis_url=redis_url
            ),
        )
        try:
            held, deleted = asyncio.run(
                teardown(resolved, day=when, dry_run=dry_run, force=force, confirm=confirm)
            )
        except StorageError as exc:
            raise ConfigError(f"{exc}; the teardown stopped part way, run it again") from None
        if as_json:
            print_json(
                {
                    "ok": True,
                    "environment": name,
                    "date": day,
                    "deleted": deleted,
                    "items": [
                        {
                            "kind": h.kind,
                            "where": h.where,
                            "name": h.name,
                            "count": h.count,
                            "bytes": h.size,
                        }
                        for h in held
                    ],
                }
            )
            return
        what = f"environment {name}" + (f" on {day}" if day else "")
        if not held:
            print_text(f"{what}: nothing to delete")
        elif dry_run:
            show(held, f"Would delete ({what}); nothing deleted (--dry-run)")
        elif deleted:
            show(held, f"Deleted ({what})")
        else:
            print_text("not confirmed; nothing deleted")
