"""The simulator as the exchange, in the `ssmd up` process.

When it runs: `--sim` / `--no-sim` decide; without either, an environment whose feed
endpoint is `custom` with both URLs on a loopback host (127.0.0.1, localhost, ::1)
is a simulator environment (kalshi-sim is one). The simulator listens on a free
port and the children are given its URLs and its demo key; the URLs in the file are
not used.

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

    def make(self) -> Any:
        """The Simulator (not started): keeps frames only when a truth file is wanted."""
        from ssmd.sim import Simulator

        return Simulator(
            port=self.port,
            seed=secrets.randbits(31) if self.seed is None else self.seed,
            rate=self.rate or None,
            markets=self.markets,
            # Recording every frame costs memory that a long demo must not spend.
            record_limit=10_000_000 if self.truth_file else 0,
        )


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
