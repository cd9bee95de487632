"""`ssmd signal run`: a signal module over the live stream or a replay (docs/signals.md)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Annotated

import typer

from ssmd.cli.options import (
    ConfigDirOption,
    DataDirOption,
    EnvOption,
    LogLevelOption,
    NatsUrlOption,
)

app = typer.Typer(
    help="Signals: a module of callbacks over live or replayed data.", no_args_is_help=True
)


@app.command()
def run(
    file: Annotated[Path, typer.Argument(metavar="FILE.py", help="The signal module.")],
    env: EnvOption,
    live: Annotated[bool, typer.Option("--live", help="The environment's live stream.")] = False,
    replay: Annotated[
        str | None, typer.Option("--replay", metavar="YYYY-MM-DD", help="A replay of that day.")
    ] = None,
    speed: Annotated[str, typer.Option("--speed", help="Replay speed: 1, 10, ... or max.")] = "max",
    out: Annotated[
        Path | None, typer.Option("--out", help="signals.parquet or signals.csv (default: print).")
    ] = None,
    from_start: Annotated[
        bool, typer.Option("--from-start", help="Live: from the stream's first message.")
    ] = False,
    nats_url: NatsUrlOption = None,
    config_dir: ConfigDirOption = None,
    data_dir: DataDirOption = None,
    log_level: LogLevelOption = "WARNING",
) -> None:
    """Run FILE.py's callbacks (on_book, on_trade, on_status, on_trades) over the live
    stream until Ctrl-C, or over a replay; write the signals it emits (time, ticker,
    name, value)."""
    from ssmd.cli.dataset import _data_errors
    from ssmd.cli.exits import component_errors
    from ssmd.obs import logs
    from ssmd.signals.api import load_module
    from ssmd.signals.runner import SignalRunner, run_live, run_replay, write

    logs.setup(log_level)
    if live == (replay is not None):
        typer.echo("error: give one of --live or --replay DATE", err=True)
        raise typer.Exit(1)
    with _data_errors(), component_errors():
        runner = SignalRunner(load_module(file))
        if replay is not None:
            from ssmd.replay.runner import parse_speed, plan

            p = plan(
                env,
                replay,
                speed=parse_speed(speed),
                nats_url=nats_url,
                config_dir=config_dir,
                data_dir=data_dir,
            )
            asyncio.run(run_replay(runner, p))
        else:
            from ssmd.config import Overrides, load_environment

            resolved = load_environment(
                env, config_dir, Overrides(nats_url=nats_url, data_dir=data_dir)
            )

            async def main() -> None:
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.add_signal_handler(sig, stop.set)
                await run_live(runner, resolved, stop, from_start=from_start)

            asyncio.run(main())
    frame = runner.signals_frame()
    if out is None:
        typer.echo(frame)
    else:
        write(frame, out)
    typer.echo(
        f"{frame.height:,} signals from {runner.records:,} records" + (f" to {out}" if out else ""),
        err=True,
    )
