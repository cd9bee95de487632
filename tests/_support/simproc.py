"""The simulator in a process of its own for the chaos tests, driven over stdin/stdout.

    python simproc.py SEED RATE MARKETS [hostile]

When listening it prints one JSON line: ws_url, rest_url, key_id, private_key_path.
Then it answers each command (one JSON object per line on stdin) with one JSON line:

    {"cmd": "connections"}   per connection: number, opened_at, closed_at, frames_sent
    {"cmd": "disconnect"}    closes every open connection abruptly (no close frame);
                             answers the time and the connections it closed
    {"cmd": "pause"}         stops the order flow (the clock stands still), waits until
                             every queued frame is written, answers like "connections"
    {"cmd": "truth", "path": P}  writes the ground truth to P (JSON): per connection the
                             above plus the SHA-256 of every frame sent, in order; faults

The end of stdin stops it. Times are Unix seconds of the wall clock (the simulator's
clock until a pause).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import time
from typing import Any

from ssmd.sim import Fault, FaultKind, Scenario, Simulator


class PausableClock:
    """Wall-clock time that can be stopped for good (the order flow then stops too)."""

    def __init__(self) -> None:
        self.frozen: float | None = None

    def now(self) -> float:
        return time.time() if self.frozen is None else self.frozen

    def pause(self) -> None:
        self.frozen = time.time()

    async def wait_until(self, t: float) -> None:
        if self.frozen is not None:
            if t > self.frozen:
                await asyncio.Event().wait()  # a stopped clock never gets there
            return
        delay = t - time.time()
        if delay > 0:
            await asyncio.sleep(delay)


def connections(sim: Simulator) -> list[dict[str, Any]]:
    return [
        {
            "number": n,
            "opened_at": rec.opened_at,
            "closed_at": rec.closed_at,
            "frames_sent": rec.frames_sent,
        }
        for n, rec in sorted(sim.truth.connections.items())
    ]


def truth(sim: Simulator) -> dict[str, Any]:
    conns = connections(sim)
    for row in conns:
        rec = sim.truth.connections[row["number"]]
        assert rec.frames_unrecorded == 0, "record_limit too small for the run"
        row["frame_sha256"] = [hashlib.sha256(f).hexdigest() for f in rec.frames]
    faults = [
        {"kind": f.kind, "connection": f.connection, "ts": f.ts, "detail": f.detail}
        for f in sim.truth.faults
    ]
    return {"connections": conns, "faults": faults}


async def serve(sim: Simulator, clock: PausableClock) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def answer(obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    answer(
        {
            "ws_url": sim.ws_url,
            "rest_url": sim.rest_url,
            "key_id": sim.key_id,
            "private_key_path": str(sim.private_key_path),
        }
    )
    while line := await reader.readline():
        cmd = json.loads(line)
        what = cmd["cmd"]
        if what == "connections":
            answer({"connections": connections(sim)})
        elif what == "disconnect":
            now = clock.now()
            open_ = [n for n, c in sim.connections.items() if not c.closed]
            sim.inject(Fault(FaultKind.DISCONNECT, at=0.0))
            answer({"ts": now, "closed": open_})
        elif what == "pause":
            clock.pause()
            try:
                await sim.wait_idle(30)
            except TimeoutError:
                stuck = [
                    {"number": n, "queued": len(c.out), "writing": c.writing}
                    for n, c in sim.connections.items()
                    if not c.closed and (c.out or c.writing)
                ]
                answer({"error": f"not idle 30 s after the pause; frames queued: {stuck}"})
                continue
            answer({"connections": connections(sim)})
        elif what == "truth":
            with open(cmd["path"], "w") as fh:
                json.dump(truth(sim), fh)
            answer({"ok": True})
        else:
            answer({"error": f"unknown command {what!r}"})


async def main(seed: int, rate: float, markets: int, hostile: bool) -> None:
    clock = PausableClock()
    async with Simulator(
        seed=seed,
        rate=rate,
        markets=markets,
        clock=clock,
        scenario=Scenario(hostile_tickers=hostile),
        record_limit=10_000_000,
    ) as sim:
        await serve(sim, clock)


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(main(int(args[0]), float(args[1]), int(args[2]), "hostile" in args[3:]))
