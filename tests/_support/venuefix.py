"""Helpers for the venue tests: the connector on a venue's simulator environment, and
the checks every venue's capture must pass (every frame once, the events it published)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from _support.connfix import raw_by_conn, running
from ssmd import core
from ssmd.config import Overrides, load_environment
from ssmd.connector.runner import Settings
from ssmd.sim.venue_server import VenueServer
from ssmd.testing import until
from ssmd.testing.nats import NatsServer, client, nats_server, read_stream
from ssmd.venues.base import Liveness

__all__ = [
    "NatsServer",
    "check_exactly_once",
    "client",
    "events",
    "nats_server",
    "read_stream",
    "running",
    "settings_for",
    "until",
]

ROOT = Path(__file__).resolve().parents[2]


def settings_for(
    env_name: str, sim: VenueServer, nats: NatsServer, tmp: Path, **changes: Any
) -> Settings:
    """The connector's settings for `env_name` pointed at `sim`, with short timings."""
    env = load_environment(
        env_name,
        ROOT / "exchanges",
        Overrides(ws_url=sim.ws_url, rest_url=sim.rest_url, nats_url=nats.url, data_dir=str(tmp)),
        environ={},
    )
    changes.setdefault("liveness", Liveness(ping_interval=0.5, ping_timeout=1.0, stale_after=3.0))
    changes.setdefault("backoff_base", 0.05)
    changes.setdefault("backoff_cap", 0.5)
    changes.setdefault("sweep_interval", 0.1)
    changes.setdefault("resync_timeout", 2.0)
    return Settings.from_environment(env, **changes)


def check_exactly_once(sim: VenueServer, msgs: list[Any]) -> None:
    """Every frame the simulator sent is in the stream once, per connection, in order."""
    by_conn = raw_by_conn(msgs)

    def digest(frames: list[bytes]) -> str:
        return hashlib.sha256(b"\n".join(frames)).hexdigest()

    got = sorted(digest(f) for f in by_conn.values())
    truth = sorted(digest(f) for f in sim.frames.values() if f)
    assert got == truth, (sorted(map(len, by_conn.values())), sorted(map(len, sim.frames.values())))


def events(msgs: list[Any], prefix: str, kind: str) -> list[dict[str, Any]]:
    """The connector events of `kind` under the subject prefix `prefix`."""
    out = []
    for m in msgs:
        if m.subject.startswith(f"{prefix}.events."):
            (rec,) = core.decode_records(m.data)
            if rec["event"] == kind:
                out.append(rec)
    return out
