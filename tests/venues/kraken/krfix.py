"""Helpers for Kraken tests: the connector on kraken-sim against the simulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from _support import venuefix
from _support.venuefix import running
from ssmd.connector.runner import Settings
from ssmd.sim.kraken import KrakenSimulator
from ssmd.testing import until
from ssmd.testing.nats import NatsServer, client, nats_server, read_stream

__all__ = [
    "PREFIX",
    "STREAM",
    "client",
    "events",
    "nats_server",
    "read_stream",
    "running",
    "settings_for",
    "until",
]

STREAM = "SSMD_KRAKEN_SIM"
PREFIX = "kraken-sim.kraken"


def settings_for(sim: KrakenSimulator, nats: NatsServer, tmp: Path, **changes: Any) -> Settings:
    return venuefix.settings_for("kraken-sim", sim, nats, tmp, **changes)


def events(msgs: list[Any], kind: str) -> list[dict[str, Any]]:
    return venuefix.events(msgs, PREFIX, kind)
