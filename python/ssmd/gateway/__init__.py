"""The gateway: live books, trades and statuses from NATS JetStream to WebSocket and REST
clients (`ssmd gateway run`, docs/gateway.md).

    settings  GatewaySettings from an environment; the auth-or-loopback rule
    auth      API keys (hashed), presented keys, `new-key`
    feed      the stream -> BookSet, trade rings, statuses, freshness
    hub       clients, bounded queues, conflation, fan-out
    render    records -> the JSON messages
    markets   /v1/markets from the security master or the stream
    app       FastAPI routes and the WebSocket endpoint
    service   Gateway (all of the above), health, uvicorn
"""

from ssmd.gateway.service import Gateway, serve
from ssmd.gateway.settings import GatewaySettings

__all__ = ["Gateway", "GatewaySettings", "serve"]
