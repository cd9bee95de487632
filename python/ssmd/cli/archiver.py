"""`ssmd archiver run`: archive an environment's stream to raw and normalized files."""

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
    help="The archiver: JetStream -> raw JSONL.zst + normalized Cap'n Proto .zst + manifests.",
    no_args_is_help=True,
)


@app.command()
def run(
    env: EnvOption,
    config_dir: ConfigDirOption = None,
    feed: FeedOption = None,
    nats_url: NatsUrlOption = None,
    data_dir: DataDirOption = None,
    s3_endpoint: str | None = typer.Option(None, help="Override the S3 endpoint."),
    durable: str = typer.Option("archiver", help="Durable consumer name."),
    batch: int = typer.Option(5000, help="Messages per fetch."),
    seal_grace: float = typer.Option(
        60.0, help="Seconds after the end of an hour (raw) or day (normalized) before sealing."
    ),
    ack_wait: float = typer.Option(30.0, help="Consumer ack wait, seconds."),
    shutdown_timeout: float = typer.Option(20.0, help="Hard exit this long after SIGTERM."),
    health_port: int | None = typer.Option(
        None, help="Serve /health and /metrics on this port (0 = any; default: not served)."
    ),
    health_host: str = typer.Option("127.0.0.1", help="Interface of /health and /metrics."),
    log_level: LogLevelOption = "INFO",
) -> None:
    """Archive until SIGTERM/SIGINT, then seal what is due, write manifests and exit 0."""
    from ssmd.archiver import Archiver, ArchiverSettings, ConsumerSettings
    from ssmd.cli.component import run_component
    from ssmd.config import Overrides, load_environment
    from ssmd.exceptions import ConfigError

    def settings() -> ArchiverSettings:
        resolved = load_environment(
            env,
            config_dir,
            Overrides(nats_url=nats_url, data_dir=data_dir, s3_endpoint=s3_endpoint),
            feed=feed,
        )
        if resolved.nats.url == "embedded":
            raise ConfigError(
                f"environment {env} uses the embedded NATS server; pass --nats-url "
                "(or SSMD_NATS_URL) to run the archiver on its own"
            )
        return ArchiverSettings.from_environment(
            resolved,
            consumer=ConsumerSettings(durable=durable, batch=batch, ack_wait=ack_wait),
            seal_grace=seal_grace,
            shutdown_timeout=shutdown_timeout,
            health_port=health_port,
            health_host=health_host,
        )

    async def work(s: ArchiverSettings, stop: asyncio.Event) -> None:
        await Archiver(s).run(stop)

    run_component("archiver", log_level, settings, work, hard_exit_after=shutdown_timeout)
