"""Frames rendered first and sent later, at a pace (`Simulator.hold_output`): how the
connector's benchmark keeps the simulator's own cost out of what it measures."""

from __future__ import annotations

import time

from _support.simhelp import client, manual_sim
from ssmd.testing import until


async def test_held_frames_are_sent_in_order_and_at_the_pace_asked() -> None:
    sim, clock = manual_sim(seed=4, max_queue=50)
    async with sim, client(sim) as c:
        await c.subscribe_all(sim)
        await c.drain(sim)
        rec = c.record(sim)
        sent, received = rec.frames_sent, len(c.raw)
        sim.hold_output()
        clock.advance(20.0)  # about 2,000 order-flow actions at 100 a second
        # Held: more than the connection's queue bound is queued and nothing is sent.
        await until(lambda: sim.queued() >= 1000, 10, "frames queued")
        assert rec.frames_sent == sent
        queued = sim.queued()
        began = time.monotonic()
        sim.release_output(frames_per_s=4000)
        await c.until(lambda fs: len(c.raw) >= received + queued)
        elapsed = time.monotonic() - began
        # Never faster than the pace, but for one burst of 20 ms of frames (a lower bound:
        # a busy machine only adds time).
        assert elapsed >= (queued - 4000 / 50) / 4000
        assert rec.frames_sent == sent + queued
        # In order: each sid's sequence numbers run on without a gap.
        last: dict[int, int] = {}
        for f in c.frames:
            if "seq" in f:
                assert f["seq"] == last.get(f["sid"], f["seq"] - 1) + 1, f
                last[f["sid"]] = f["seq"]
        assert not c.of("error")  # no subscription killed for overflow while held
