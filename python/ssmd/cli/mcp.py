"""`ssmd mcp serve`: the MCP server for AI agents (docs/mcp.md)."""

from __future__ import annotations

import typer

from ssmd.cli.options import (
    ConfigDirOption,
    DataDirOption,
    EnvOption,
    FeedOption,
    LogLevelOption,
)

app = typer.Typer(help="The MCP server: market data for AI agents.", no_args_is_help=True)

DEFAULT_GATEWAY = "http://127.0.0.1:8080"


@app.command()
def serve(
    env: EnvOption,
    feed: FeedOption = None,
    transport: str = typer.Option(
        "stdio", help="stdio (the client starts this command), or http (streamable HTTP at /mcp)."
    ),
    gateway: str | None = typer.Option(
        None,
        help="The gateway's URL (default: the one `ssmd up` runs on this data dir, else "
        f"{DEFAULT_GATEWAY}). Its API key, if it needs one: $SSMD_GATEWAY_API_KEY.",
    ),
    host: str = typer.Option("127.0.0.1", help="http: interface to listen on."),
    port: int = typer.Option(8765, help="http: port to listen on."),
    config_dir: ConfigDirOption = None,
    data_dir: DataDirOption = None,
    log_level: LogLevelOption = "WARNING",
) -> None:
    """Serve the tools until the client closes the connection (stdio) or Ctrl-C (http).

    Example (an MCP client's configuration runs this): ssmd mcp serve --env kalshi-sim"""
    from ssmd.cli.exits import component_errors
    from ssmd.config import Overrides, load_environment
    from ssmd.mcp.server import build
    from ssmd.mcp.server import serve as run
    from ssmd.obs import logs
    from ssmd.upstate import read_state, running_nats_url

    if transport not in ("stdio", "http"):
        raise typer.BadParameter("expected stdio or http", param_hint="--transport")
    logs.setup(log_level)  # JSON lines on stderr: stdout carries the protocol
    with component_errors():
        resolved = load_environment(env, config_dir, Overrides(data_dir=data_dir), feed=feed)
    if gateway is None:
        state = (
            read_state(resolved.data_dir) if running_nats_url(resolved.data_dir) else None
        ) or {}
        ends = state.get("endpoints") or {}
        gateway = str(ends.get("gateway") or DEFAULT_GATEWAY)  # it serves every venue
    server, tools = build(resolved, gateway)
    try:
        run(server, tools, "stdio" if transport == "stdio" else "http", host, port)
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it stopped on: a clean stop
        raise typer.Exit(0) from None
