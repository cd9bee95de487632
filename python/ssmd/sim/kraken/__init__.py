"""A local Kraken spot WebSocket v2 and public REST, with faults and a ground truth."""

from ssmd.sim.kraken.server import KrakenSimulator, KrFault

__all__ = ["KrFault", "KrakenSimulator"]
