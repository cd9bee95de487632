"""Helpers for Polymarket tests: the connector on polymarket-sim against the simulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from _support import venuefix
from _support.venuefix import running
from ssmd.connector.runner import Settings
from ssmd.sim.polymarket import PolymarketSimulator
from ssmd.testing import until
from ssmd.testing.nats import NatsServer, client, nats_server, read_stream

__all__ = [
    "PREFIX",
    "STREAM",
    "NatsServer",
    "client",
    "events",
    "nats_server",
    "read_stream",
    "running",
    "settings_for",
    "until",
]

STREAM = "SSMD_POLYMARKET_SIM"
PREFIX = "polymarket-sim.polymarket"


def settings_for(sim: PolymarketSimulator, nats: NatsServer, tmp: Path, **changes: Any) -> Settings:
    return venuefix.settings_for("polymarket-sim", sim, nats, tmp, **changes)


def events(msgs: list[Any], kind: str) -> list[dict[str, Any]]:
    return venuefix.events(msgs, PREFIX, kind)
