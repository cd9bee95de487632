"""`ssmd tui`: the administration TUI (docs/tui.md)."""

from __future__ import annotations

import typer

from ssmd.cli.options import ConfigDirOption, DataDirOption, EnvOption, FeedOption

app = typer.Typer(help="The administration TUI.")


@app.command()
def tui(
    env: EnvOption,
    feed: FeedOption = None,
    gateway: str | None = typer.Option(
        None,
        help="The gateway's URL (default: the one `ssmd up` runs on this data dir, else "
        "http://127.0.0.1:8080). Its API key, if it needs one: $SSMD_GATEWAY_API_KEY.",
    ),
    interval: float = typer.Option(
        1.0,
        min=0.2,
        help="Seconds between readings of the components (markets, days, issues: every ten).",
    ),
    config_dir: ConfigDirOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Components with their health and rates, markets, a market's live book and trades,
    days with their gaps and quality, open data issues; resync a market, seal now, stop or
    start a component (docs/tui.md). With several venues in the environment, `--feed NAME`
    opens one venue's markets, days and actions. Example: ssmd tui --env kalshi-sim"""
    import asyncio
    import os

    from ssmd.cli.exits import component_errors
    from ssmd.config import Overrides, load_environment
    from ssmd.mcp.gateway import KEY_ENV
    from ssmd.tui.app import SsmdTui
    from ssmd.tui.backend import Backend

    with component_errors():
        resolved = load_environment(env, config_dir, Overrides(data_dir=data_dir), feed=feed)

    async def run() -> None:
        backend = Backend(resolved, gateway, os.environ.get(KEY_ENV) or None)
        try:
            await SsmdTui(backend, interval).run_async()
        finally:
            await backend.aclose()

    asyncio.run(run())
