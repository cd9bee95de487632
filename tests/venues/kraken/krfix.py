"""Helpers for Kraken tests: the connector on kraken-sim against the simulator."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import venuefix
from venuefix import NatsServer, client, nats_server, read_stream, running, until

from ssmd.connector.runner import Settings
from ssmd.sim.kraken import KrakenSimulator

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
