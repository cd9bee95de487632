"""Replaying an archived day as it was received: to NATS (a replay environment's own
stream), to a gateway on that stream, or as a Kalshi WebSocket (docs/replay.md)."""
