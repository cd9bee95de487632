"""`ssmd feed create|list|show|add-version`: the feeds under exchanges/feeds/."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

import typer

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
from ssmd.config.feeds import add_feed_version, create_feed, get_feed, list_feeds
from ssmd.exceptions import ConfigError

app = typer.Typer(
    help="Feeds: exchange endpoints, channels, limits and protocol versions.", no_args_is_help=True
)


def _today() -> date:
    return datetime.now(UTC).date()


def _channel(text: str) -> tuple[str, str | None]:
    name, _, record_type = text.partition(":")
    return name, record_type or None


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Feed name, e.g. kalshi.")],
    ws_url: Annotated[str, typer.Option(help="WebSocket URL.")],
    rest_url: Annotated[str, typer.Option(help="REST base URL.")],
    channel: Annotated[list[str], typer.Option(help="CHANNEL[:RECORD_TYPE], repeatable.")],
    endpoint: Annotated[str, typer.Option(help="Name of the endpoint set.")] = "prod",
    effective_from: Annotated[
        str | None, typer.Option(help="Start of v1, YYYY-MM-DD (default: today).")
    ] = None,
    read_tokens: Annotated[int, typer.Option(help="REST read tokens per second.")] = 200,
    display_name: Annotated[str | None, typer.Option(help="Human name.")] = None,
    config_dir: ConfigDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create feeds/NAME.yaml (refuses to overwrite).

    Example: ssmd feed create acme --ws-url wss://ws.acme.test/v1 --rest-url https://api.acme.test/v1 --channel trades:trade
    """
    with reporting(as_json):
        start = _parse_date(effective_from) if effective_from else _today()
        feed = create_feed(
            tree_at(config_dir),
            name,
            ws_url=ws_url,
            rest_url=rest_url,
            endpoint=endpoint,
            channels=[_channel(c) for c in channel],
            read_tokens_per_second=read_tokens,
            effective_from=start,
            display_name=display_name,
        )
        if as_json:
            print_json({"ok": True, "feed": feed.model_dump(mode="json", by_alias=True)})
        else:
            print_text(f"created feed {name}")


@app.command("list")
def list_command(config_dir: ConfigDirOption = None, as_json: JsonOption = False) -> None:
    """List the feeds.

    Example: ssmd feed list --json
    """
    with reporting(as_json):
        feeds, broken = list_feeds(tree_at(config_dir))
        if as_json:
            print_json(
                [
                    {
                        "name": f.document.name,
                        "file": str(f.path),
                        "endpoints": sorted(f.document.spec.endpoints),
                        "channels": [c.name for c in f.document.spec.channels],
                        "latest_version": f.document.spec.versions[-1].version,
                    }
                    for f in feeds
                ]
            )
        else:
            print_table(
                "Feeds",
                ["name", "endpoints", "channels", "latest version", "effective from"],
                [
                    (
                        f.document.name,
                        ", ".join(f.document.spec.endpoints),
                        ", ".join(c.name for c in f.document.spec.channels),
                        f.document.spec.versions[-1].version,
                        f.document.spec.versions[-1].effective_from,
                    )
                    for f in feeds
                ],
            )
        warn_broken(broken)


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="Feed name.")],
    config_dir: ConfigDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one feed.

    Example: ssmd feed show kalshi
    """
    with reporting(as_json):
        feed = get_feed(tree_at(config_dir), name)
        if as_json:
            print_json(feed.document.model_dump(mode="json", by_alias=True))
            return
        spec = feed.document.spec
        print_table(
            f"Feed {name} ({feed.file})",
            ["endpoint", "WebSocket", "REST"],
            [(n, e.ws_url, e.rest_url) for n, e in spec.endpoints.items()],
        )
        print_table(
            "Channels",
            ["channel", "record type", "auth"],
            [
                (c.name, c.record_type or "(raw only)", "yes" if c.auth_required else "no")
                for c in spec.channels
            ],
        )
        print_table(
            "Versions",
            ["version", "effective from", "description"],
            [(v.version, v.effective_from, v.description) for v in spec.versions],
        )
        ws, rest = spec.limits.ws, spec.limits.rest
        print_text(
            f"limits: {ws.markets_per_connection} markets per connection, ping every {ws.ping_interval}, "
            f"REST read {rest.read.tokens_per_second} tokens/s at {rest.read.cost_per_request} per request"
        )


@app.command("add-version")
def add_version(
    name: Annotated[str, typer.Argument(help="Feed name.")],
    effective_from: Annotated[str, typer.Option(help="First day of the version, YYYY-MM-DD.")],
    version: Annotated[
        str | None, typer.Option(help="Version name (default: next number).")
    ] = None,
    description: Annotated[str | None, typer.Option(help="What changed.")] = None,
    config_dir: ConfigDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Append a protocol version; it must start after the latest one.

    Example: ssmd feed add-version kalshi --effective-from 2026-09-01 --description "ts_ms everywhere"
    """
    with reporting(as_json):
        added = add_feed_version(
            tree_at(config_dir),
            name,
            effective_from=_parse_date(effective_from),
            version=version,
            description=description,
        )
        if as_json:
            print_json({"ok": True, "version": added.model_dump(mode="json")})
        else:
            print_text(f"added {added.version} (from {added.effective_from}) to feed {name}")


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"{text!r} is not a date; expected YYYY-MM-DD. Fix: pass e.g. 2026-09-01"
        ) from None
