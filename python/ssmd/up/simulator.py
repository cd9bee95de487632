"""The simulator as the exchange, in the `ssmd up` process.

When it runs: `--sim` / `--no-sim` decide for every feed; without either, a feed whose
endpoint is `custom` with both URLs on a loopback host (127.0.0.1, localhost, ::1)
is simulated (kalshi-sim, polymarket-sim, kraken-sim and multi-sim are written so). The
simulator is the feed's venue's, one per feed; it listens on a free port and the
children are given its URLs (and Kalshi's demo key); the URLs in the file are not used.

Each run gets a fresh seed unless one is given (`--sim-seed`): the same seed sends
the same order flow, trade ids included, which a second run on the same data
directory would archive again. The seed is reported, so a run can be reproduced.

The simulator's ground truth (every frame sent per connection) can be written at
shutdown (`ssmd up --truth-file`, hidden: for the end-to-end test), as JSON: per
connection the frame count, the digest and the SHA-256 of each frame in order.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ssmd.exceptions import ConfigError

__all__ = ["SimOptions", "is_simulated", "truth_summary", "write_truth"]

_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def is_simulated(env: Any) -> bool:
    """The documented marker of a simulator environment (see the module docstring)."""
    endpoint = env.endpoint
    if endpoint.name != "custom":
        return False
    hosts = {urlsplit(endpoint.ws_url).hostname, urlsplit(endpoint.rest_url).hostname}
    return hosts <= _LOOPBACK


@dataclass(frozen=True)
class SimOptions:
    seed: int | None = None  # None: a fresh one, reported as `Simulator.seed`
    rate: float = 200.0  # order-flow actions per second
    markets: int = 200
    port: int = 0
    truth_file: Path | None = None
    host: str = "127.0.0.1"

    def make(self, feed: str = "kalshi") -> Any:
        """The simulator of the venue `feed` (not started); it keeps the frames it sends
        only when a truth file is wanted (Kalshi's: recording every frame costs memory
        that a long demo must not spend)."""
        seed = secrets.randbits(31) if self.seed is None else self.seed
        rate = self.rate or None
        # What every venue's simulator takes alike.
        where: dict[str, Any] = {"host": self.host, "port": self.port, "seed": seed, "rate": rate}
        if feed == "kalshi":
            from ssmd.sim import Simulator

            recorded = 10_000_000 if self.truth_file else 0
            return Simulator(**where, markets=self.markets, record_limit=recorded)
        if self.truth_file is not None:
            raise ConfigError(f"a truth file is written by Kalshi's simulator only, not {feed}'s")
        if feed == "kraken":
            from ssmd.sim.kraken import KrakenSimulator

            # The simulator lists its few real pairs, however many markets were asked for.
            return KrakenSimulator(**where, pairs=self.markets, record_frames=False)
        if feed == "polymarket":
            from ssmd.sim.polymarket import PolymarketSimulator

            return PolymarketSimulator(**where, markets=self.markets, record_frames=False)
        raise ConfigError(f"no simulator for the venue {feed!r} (kalshi, kraken, polymarket)")


def truth_summary(truth: Any) -> dict[str, Any]:
    conns = []
    for number, rec in sorted(truth.connections.items()):
        conns.append(
            {
                "number": number,
                "frames_sent": rec.frames_sent,
                "frames_unrecorded": rec.frames_unrecorded,
                "bytes_sent": rec.bytes_sent,
                "digest": rec.digest,
                "frame_sha256": [hashlib.sha256(f).hexdigest() for f in rec.frames],
            }
        )
    return {"connections": conns, "faults": [f.kind for f in truth.faults]}


def write_truth(truth: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(truth_summary(truth)))
    os.replace(tmp, path)
