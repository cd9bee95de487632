"""`ssmd up`: run the whole system on one machine (docs/up.md)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import typer

from ssmd.cli.options import ConfigDirOption, DataDirOption, EnvOption

app = typer.Typer()


@app.command()
def up(
    env: EnvOption,
    port: int = typer.Option(8080, help="Port of the gateway: the web page and the client API."),
    host: str = typer.Option("127.0.0.1", help="Interface of the gateway."),
    config_dir: ConfigDirOption = None,
    data_dir: DataDirOption = None,
    nats_url: str | None = typer.Option(
        None, help="Use this NATS instead of the environment's; `embedded` starts one."
    ),
    sim: bool | None = typer.Option(
        None,
        "--sim/--no-sim",
        help="Run the simulator as the exchange (default: on for an environment whose "
        "custom endpoint is on 127.0.0.1/localhost, such as kalshi-sim).",
    ),
    sim_seed: int | None = typer.Option(
        None,
        help="Simulator: seed of the universe and order flow (default: a fresh one each "
        "run, printed; give it to reproduce a run).",
    ),
    sim_rate: float = typer.Option(200.0, help="Simulator: order-flow actions per second."),
    sim_markets: int = typer.Option(200, help="Simulator: approximate number of markets."),
    sim_port: int = typer.Option(0, help="Simulator: port (0 = any free port)."),
    json_logs: bool = typer.Option(
        False, "--json-logs", help="JSON log lines on stderr instead of the live display."
    ),
    stop_timeout: float | None = typer.Option(
        None, help="Seconds each component gets to stop before it is killed (default: its own)."
    ),
    log_level: str = typer.Option("INFO", help="Log level of every component."),
    truth_file: Path | None = typer.Option(None, hidden=True),
) -> None:
    """Run the whole system on this machine until Ctrl-C or SIGTERM (docs/up.md).

    NATS, the exchange (the simulator, or Kalshi), the security master, the connector,
    the archiver and the gateway; then stop them in order and report what was archived."""
    import logging

    from ssmd.cli.exits import component_errors
    from ssmd.config import Overrides, load_environment
    from ssmd.exceptions import AlreadyRunning
    from ssmd.obs import logs
    from ssmd.up.display import ConsoleDisplay, Display, JsonDisplay
    from ssmd.up.run import Up, UpOptions
    from ssmd.up.simulator import SimOptions

    display: Display
    if json_logs:
        logs.setup(log_level, component="up")
        display = JsonDisplay(env)
    else:
        from rich.logging import RichHandler

        display = ConsoleDisplay(env)
        root = logging.getLogger()
        root.handlers[:] = [RichHandler(console=display.console, show_path=False)]
        root.setLevel(logging.WARNING)
    with component_errors():
        overrides = Overrides(data_dir=data_dir, nats_url=nats_url)
        resolved = load_environment(env, config_dir, overrides)
        venues = [
            load_environment(env, config_dir, overrides, feed=feed) for feed in resolved.feeds[1:]
        ]
    options = UpOptions(
        host=host,
        port=port,
        sim=sim,
        sim_options=SimOptions(
            seed=sim_seed, rate=sim_rate, markets=sim_markets, port=sim_port, truth_file=truth_file
        ),
        log_level=log_level,
        stop_timeout=stop_timeout,
    )

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal(sig: signal.Signals) -> None:
            if stop.is_set():
                display.event("warning", f"{sig.name} again: already stopping (bounded)", {})
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, on_signal, sig)
        display.start()
        return await Up(resolved, options, display, venues).run(stop)

    try:
        code = asyncio.run(main())
    except AlreadyRunning as exc:
        display.close()
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(code)
