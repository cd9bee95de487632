"""`ssmd worker`: the Temporal worker of an environment (docs/operations.md)."""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated, Any

import typer

from ssmd.cli.options import ConfigDirOption, DataDirOption, EnvOption, LogLevelOption

app = typer.Typer(help="The Temporal worker that runs the daily workflows.", no_args_is_help=True)

TemporalAddressOption = Annotated[
    str | None,
    typer.Option(
        "--temporal-address",
        metavar="HOST:PORT",
        help="Temporal's frontend (default: $SSMD_TEMPORAL_ADDRESS, else the environment's).",
        show_default=False,
    ),
]


@app.command()
def run(
    env: EnvOption,
    config_dir: ConfigDirOption = None,
    data_dir: DataDirOption = None,
    temporal_address: TemporalAddressOption = None,
    runtime: str = typer.Option(
        "local", help="Where the components run: local (processes here) or kubernetes."
    ),
    namespace: str = typer.Option("default", help="Kubernetes namespace (--runtime kubernetes)."),
    gateway_port: int = typer.Option(8080, help="Local runtime: the gateway's port."),
    gateway_host: str = typer.Option("127.0.0.1", help="Local runtime: the gateway's interface."),
    sim_rate: float = typer.Option(
        200.0, help="Local runtime: the simulator's actions per second."
    ),
    sim_markets: int = typer.Option(200, help="Local runtime: the simulator's market count."),
    log_level: LogLevelOption = "INFO",
) -> None:
    """Serve the environment's task queue (ssmd-ENV) until Ctrl-C or SIGTERM.

    Components the workflows started keep running when the worker stops; a worker
    started again resumes the workflows in progress."""
    from ssmd.cli.exits import component_errors
    from ssmd.cli.ops import resolve_all
    from ssmd.obs import logs
    from ssmd.ops.temporal import address_of
    from ssmd.ops.worker import make_runtime, run_worker

    logs.setup(log_level)
    if runtime not in ("local", "kubernetes"):
        raise typer.BadParameter("expected local or kubernetes", param_hint="--runtime")
    resolved, venues = resolve_all(env, config_dir, data_dir, temporal_address)
    with component_errors():
        address = address_of(resolved, temporal_address)
        local: dict[str, Any] = {
            "gateway_port": gateway_port,
            "gateway_host": gateway_host,
            "log_level": log_level,
            "sim_rate": sim_rate,
            "sim_markets": sim_markets,
        }
        rt = make_runtime(
            runtime,
            resolved,
            venues=venues,
            namespace=namespace,
            **(local if runtime == "local" else {}),
        )

        async def main() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await run_worker(resolved, address, rt, stop, venues)

        asyncio.run(main())
