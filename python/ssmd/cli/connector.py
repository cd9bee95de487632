"""`ssmd connector run`: capture Kalshi into NATS JetStream (docs/connector.md)."""

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
    help="The Kalshi connector: capture frames into NATS JetStream.", no_args_is_help=True
)


@app.command()
def run(
    env: EnvOption,
    config_dir: ConfigDirOption = None,
    feed: FeedOption = None,
    ws_url: str | None = typer.Option(None, help="Override the WebSocket URL."),
    rest_url: str | None = typer.Option(None, help="Override the REST URL."),
    nats_url: NatsUrlOption = None,
    data_dir: DataDirOption = None,
    health_port: int = typer.Option(9464, help="Port of /health and /metrics (0 = any)."),
    health_host: str = typer.Option("127.0.0.1", help="Interface of /health and /metrics."),
    heartbeat_interval: float = typer.Option(
        5.0, help="Seconds between heartbeat events (how the archive tells an outage)."
    ),
    shard_group: str | None = typer.Option(
        None,
        "--shard-group",
        metavar="I/N",
        envvar="SSMD_SHARD_GROUP",
        help="Capture group I (0 to N-1) of N processes sharing the selection.",
    ),
    log_level: LogLevelOption = "INFO",
) -> None:
    """Capture until SIGTERM/SIGINT, then flush what is buffered and exit 0."""
    from ssmd.cli.component import run_component
    from ssmd.config import Overrides, load_environment
    from ssmd.connector.groups import ShardGroup
    from ssmd.connector.runner import Connector, Settings

    def settings() -> Settings:
        resolved = load_environment(
            env,
            config_dir,
            Overrides(ws_url=ws_url, rest_url=rest_url, nats_url=nats_url, data_dir=data_dir),
            feed=feed,
        )
        return Settings.from_environment(
            resolved,
            health_port=health_port,
            health_host=health_host,
            heartbeat_interval=heartbeat_interval,
            shard_group=ShardGroup.parse(shard_group) if shard_group else None,
        )

    async def work(s: Settings, stop: asyncio.Event) -> None:
        await Connector(s).run(stop)

    run_component("connector", log_level, settings, work)
