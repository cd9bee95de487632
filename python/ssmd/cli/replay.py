"""`ssmd data replay`: an archived day sent again as it was received (docs/replay.md)."""

from __future__ import annotations

import asyncio
import signal
from typing import TYPE_CHECKING, Annotated

import typer

from ssmd.cli.options import (
    ConfigDirOption,
    DataDirOption,
    EnvOption,
    FeedOption,
    LogLevelOption,
    NatsUrlOption,
)

if TYPE_CHECKING:
    from ssmd.replay.runner import ReplayPlan, Target

app = typer.Typer()

TARGETS = ("nats", "gateway", "kalshi")


@app.command()
def replay(
    env: EnvOption,
    day: Annotated[str, typer.Option("--date", metavar="YYYY-MM-DD", help="The UTC day.")],
    target: Annotated[
        str, typer.Option("--target", metavar="nats|gateway|kalshi", help="Where to send it.")
    ],
    start: Annotated[
        str | None, typer.Option("--from", metavar="TIME", help="HH:MM[:SS] on the day.")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", metavar="TIME", help="HH:MM[:SS] (exclusive).")
    ] = None,
    symbols: Annotated[
        str | None, typer.Option("--symbols", metavar="T,...", help="Only these markets.")
    ] = None,
    speed: Annotated[str, typer.Option("--speed", help="1, 10, ... or max.")] = "1",
    port: Annotated[
        int | None,
        typer.Option("--port", help="Gateway or Kalshi WebSocket port (default 8080 / 8765)."),
    ] = None,
    replay_id: Annotated[
        str, typer.Option("--id", help="Names the replay environment {env}-replay-{id}.")
    ] = "1",
    control_port: Annotated[
        int, typer.Option("--control-port", help="Port of /replay/state ... (0 = any).")
    ] = 0,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    insecure_no_auth: Annotated[
        bool,
        typer.Option(
            "--insecure-no-auth",
            help="Gateway: serve a non-loopback address without API keys; kalshi: let "
            "clients in without auth headers.",
        ),
    ] = False,
    nats_url: NatsUrlOption = None,
    config_dir: ConfigDirOption = None,
    data_dir: DataDirOption = None,
    feed: FeedOption = None,
    log_level: LogLevelOption = "INFO",
) -> None:
    """Send an archived day (or part of it) again, at a speed, to NATS, a gateway, or a
    Kalshi-protocol WebSocket; pause, resume and seek on the control endpoint."""
    from ssmd.cli.dataset import _data_errors
    from ssmd.cli.exits import component_errors
    from ssmd.obs import logs
    from ssmd.replay.runner import Replay, parse_speed, plan

    logs.setup(log_level)
    if target not in TARGETS:
        typer.echo(f"error: unknown target {target!r}. Fix: --target {'|'.join(TARGETS)}", err=True)
        raise typer.Exit(1)
    with _data_errors(), component_errors():
        p = plan(
            env,
            day,
            start=start,
            end=end,
            symbols=[s.strip() for s in symbols.split(",") if s.strip()] if symbols else None,
            speed=parse_speed(speed),
            replay_id=replay_id,
            nats_url=nats_url,
            config_dir=config_dir,
            data_dir=data_dir,
            feed=feed,
        )
        made = _target(p, target, host, port, insecure_no_auth)
        run = Replay(p, made, control_host=host, control_port=control_port)

    def ready() -> None:
        typer.echo(
            f"replaying {p.live.name} {p.ds.feed} into {_where(p, target)}; "
            f"control: {run.control.url}/replay/state",
            err=True,
        )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run.run(stop, linger=target != "nats", ready=ready)
        state = run.state()
        damaged = len(state["damaged_files"])
        typer.echo(
            f"replayed {state['frames']:,} entries up to {state['time']}"
            + (f"; {damaged} damaged file(s) left out" if damaged else ""),
            err=True,
        )

    try:
        with _data_errors(), component_errors():
            asyncio.run(main())
    except OSError as exc:  # NATS unreachable, port taken
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def _where(p: ReplayPlan, target: str) -> str:
    if target == "kalshi":
        return "a Kalshi WebSocket"
    return f"stream {p.replay.nats.stream} ({p.replay.nats.subjects})"


def _target(p: ReplayPlan, target: str, host: str, port: int | None, insecure: bool) -> Target:
    if target == "nats":
        from ssmd.replay.nats import NatsTarget

        return NatsTarget(p.replay)
    if target == "gateway":
        from ssmd.replay.gateway import GatewayTarget

        return GatewayTarget(
            p.replay, host=host, port=8080 if port is None else port, insecure_no_auth=insecure
        )
    from ssmd.replay.kalshi import KalshiTarget

    return KalshiTarget(
        p, host=host, port=8765 if port is None else port, allow_unauthenticated=insecure
    )
