"""The MCP server object and its transports.

    server, tools = build(env, gateway_url="http://127.0.0.1:8080")
    serve(server, tools, transport="stdio")     # until the client closes stdin

Built on the official MCP Python SDK (`mcp.server.mcpserver.MCPServer`): it answers a
malformed request with a JSON-RPC error and goes on; a tool's anticipated failure
(ToolError) is a result with `isError` and the message, for the model to read.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Final, Literal

import anyio
from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations

from ssmd import __version__
from ssmd.mcp.gateway import KEY_ENV, GatewayClient
from ssmd.mcp.tools import MAX_RANGE_DAYS, Tools

if TYPE_CHECKING:
    from ssmd.config import ResolvedEnvironment

__all__ = ["INSTRUCTIONS", "build", "serve"]

Transport = Literal["stdio", "http"]

INSTRUCTIONS: Final = (
    "ssmd serves prediction-market data (Kalshi). Live: list_markets (search), market_details, "
    "live_book, recent_trades, system_status. Archived: history (one table, bounded rows and at "
    f"most {MAX_RANGE_DAYS} days a call), book_at (a book at a past time), inventory, gaps, "
    "quality. Prices are dollars, sizes contracts, times Unix ms or ISO 8601 UTC. When data "
    "looks wrong (a jump, a crossed book, missing trades), call report_data_issue with the "
    "market, the time range and what you saw."
)
# Only report_data_issue writes; the others read.
_WRITES: Final = frozenset({"report_data_issue"})


def build(
    env: ResolvedEnvironment, gateway_url: str, api_key: str | None = None
) -> tuple[MCPServer, Tools]:
    """The server with every tool registered, and the Tools behind them (close their
    gateway client when done). `api_key` defaults to $SSMD_GATEWAY_API_KEY."""
    key = api_key if api_key is not None else os.environ.get(KEY_ENV) or None
    tools = Tools(GatewayClient(gateway_url, key, venue=env.extra_feed), env, env.feed.name)
    server: MCPServer = MCPServer(
        "ssmd", title="ssmd market data", version=__version__, instructions=INSTRUCTIONS
    )
    for fn in tools.all():
        name = fn.__name__
        server.add_tool(
            fn,
            name=name,
            annotations=ToolAnnotations(
                read_only_hint=name not in _WRITES,
                destructive_hint=False,
                open_world_hint=False,
            ),
            structured_output=False,
        )
    return server, tools


def serve(
    server: MCPServer, tools: Tools, transport: Transport = "stdio", host: str = "127.0.0.1",
    port: int = 8765,
) -> None:  # fmt: skip
    """Serve until the client goes away (stdio) or SIGINT (http, at /mcp)."""

    async def main() -> None:
        try:
            if transport == "stdio":
                await server.run_stdio_async()
            else:
                await server.run_streamable_http_async(host=host, port=port)
        finally:
            await tools.gateway.aclose()

    anyio.run(main)
