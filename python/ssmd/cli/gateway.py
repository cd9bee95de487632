"""`ssmd gateway run` and `ssmd gateway new-key` (docs/gateway.md)."""

from __future__ import annotations

import asyncio

import typer

from ssmd.cli.options import (
    ConfigDirOption,
    DataDirOption,
    EnvOption,
    FeedOption,
    LogLevelOption,
    NatsUrlOption,
)

app = typer.Typer(
    help="The gateway: live books, trades and statuses over WebSocket and REST.",
    no_args_is_help=True,
)


@app.command()
def run(
    env: EnvOption,
    config_dir: ConfigDirOption = None,
    feed: FeedOption = None,
    nats_url: NatsUrlOption = None,
    data_dir: DataDirOption = None,
    database_url: str | None = typer.Option(
        None, help="Override the security master's database URL."
    ),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8080, help="Port to listen on (0 = any)."),
    insecure_no_auth: bool = typer.Option(
        False,
        "--insecure-no-auth",
        help="Serve a non-loopback address without API keys (everyone can connect).",
    ),
    log_level: LogLevelOption = "INFO",
) -> None:
    """Serve until SIGTERM/SIGINT, then close the client connections and exit 0."""
    from ssmd.cli.component import run_component
    from ssmd.config import Overrides, load_environment
    from ssmd.gateway import Gateway, GatewaySettings, serve

    def settings() -> GatewaySettings:
        overrides = Overrides(nats_url=nats_url, data_dir=data_dir, database_url=database_url)
        resolved = load_environment(env, config_dir, overrides, feed=feed)
        # Without --feed, the environment's every venue: the further ones as `venue:ticker`.
        venues = (
            [load_environment(env, config_dir, overrides, feed=f) for f in resolved.feeds[1:]]
            if feed is None
            else []
        )
        return GatewaySettings.from_environment(
            resolved, host=host, port=port, insecure_no_auth=insecure_no_auth, venues=venues
        )

    async def work(s: GatewaySettings, stop: asyncio.Event) -> None:
        gw = Gateway(s)
        await gw.start()  # fail before listening when the stream does not fit
        try:
            await serve(gw, stop)
        finally:
            await gw.stop()

    run_component("gateway", log_level, settings, work)


@app.command("new-key")
def new_key(
    name: str = typer.Argument(..., help="Who the key is for (letters, digits, _.@-)."),
) -> None:
    """Print a fresh API key (once: only its hash is kept) and the line that admits it."""
    from ssmd.cli.exits import component_errors
    from ssmd.gateway.auth import new_key as make

    with component_errors():
        key, line = make(name)
    typer.echo(f"API key for {name} (shown only now; give it to the client):")
    typer.echo(f"  {key}")
    typer.echo("Add this line to the environment's gateway_api_keys secret:")
    typer.echo(f"  {line}")
