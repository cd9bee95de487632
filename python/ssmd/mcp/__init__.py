"""The MCP server (`ssmd mcp serve`): market data for AI agents over the Model Context
Protocol, on top of the gateway, the archive (ssmd.data) and the security master
(docs/mcp.md). It talks to no NATS and opens no archive file of its own."""
