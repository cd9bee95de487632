"""A local Polymarket: the CLOB market channel over WebSocket and the read-only REST
the connector lists markets from, with faults on demand and ground truth."""

from ssmd.sim.polymarket.server import WS_PATH, PmFault, PolymarketSimulator

__all__ = ["WS_PATH", "PmFault", "PolymarketSimulator"]
