"""`ssmd sim`: run a local simulator: Kalshi's, or Kraken's or Polymarket's (`--venue`)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from pathlib import Path
from typing import Any

import typer

app = typer.Typer(
    help="A local exchange (WebSocket + REST) for tests and demos.", no_args_is_help=True
)

KALSHI_ONLY = ("--era", "--scenario", "--rest-cache")


async def _serve_other(sim: Any, venue: str) -> None:
    from ssmd.config import override_variables

    variables = override_variables(venue)
    async with sim:
        typer.echo(f"WebSocket: {sim.ws_url}")
        typer.echo(f"REST:      {sim.rest_url}")
        typer.echo(f"Seed:      {sim.seed}")
        typer.echo(f"export {variables['ws_url']}={sim.ws_url}")
        typer.echo(f"export {variables['rest_url']}={sim.rest_url}")
        typer.echo("Ctrl-C to stop.")
        await asyncio.Event().wait()


@app.command()
def run(
    venue: str = typer.Option(
        "kalshi",
        help="The exchange to simulate: kalshi, kraken or polymarket (era, scenario and "
        "rest-cache are Kalshi's).",
    ),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8765, help="Port for WebSocket and REST (0 = any free port)."),
    seed: int | None = typer.Option(
        None,
        help="Seed of the universe and the order flow (default: a fresh one, printed). "
        "A restart with the same seed sends the same order flow, trade ids included, "
        "which the archive would hold twice.",
    ),
    era: str = typer.Option(
        "C", help="Wire format era: A (cents), B (cents + dollars), C (dollars/fp only)."
    ),
    rate: float = typer.Option(
        200.0, help="Order-flow actions per second; 0 = as fast as clients read."
    ),
    markets: int = typer.Option(200, help="Approximate number of markets in the universe."),
    scenario: Path | None = typer.Option(None, help="YAML fault scenario (see docs/simulator.md)."),
    rest_cache: float = typer.Option(
        0.0,
        help="Serve REST responses from an edge cache this many seconds old (0 = off; Kalshi ~15).",
    ),
) -> None:
    """Serve a simulated exchange until Ctrl-C."""
    from ssmd.sim import Scenario, Simulator

    if venue != "kalshi":
        if (era, scenario, rest_cache) != ("C", None, 0.0):
            raise typer.BadParameter(f"{', '.join(KALSHI_ONLY)} are Kalshi's only")
        from ssmd.cli.exits import component_errors
        from ssmd.up.simulator import SimOptions

        options = SimOptions(seed=seed, rate=rate, markets=markets, port=port, host=host)
        with component_errors():
            sim = options.make(venue)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve_other(sim, venue))
        typer.echo("simulator stopped")
        return
    if era not in ("A", "B", "C"):
        raise typer.BadParameter("era must be A, B or C")
    scen = Scenario.load(scenario) if scenario else None
    seed = secrets.randbits(31) if seed is None else seed

    async def main() -> None:
        async with Simulator(
            host=host,
            port=port,
            seed=seed,
            era=era,
            rate=rate or None,
            markets=markets,
            scenario=scen,
            rest_cache_ttl=rest_cache or None,
        ) as sim:
            typer.echo(f"WebSocket: {sim.ws_url}")
            typer.echo(f"REST:      {sim.rest_url}")
            typer.echo(f"Seed:      {seed}")
            typer.echo(f"export KALSHI_API_KEY={sim.key_id}")
            typer.echo(f"export KALSHI_PRIVATE_KEY_PATH={sim.private_key_path}")
            typer.echo(f"export SSMD_KALSHI_WS_URL={sim.ws_url}")
            typer.echo(f"export SSMD_KALSHI_REST_URL={sim.rest_url}")
            typer.echo("Ctrl-C to stop.")
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    typer.echo("simulator stopped")
