"""NATS down while the archiver runs: said once, summed up at a slow interval, and said
again when it is back; the reconnect attempts themselves are not warnings."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from _support.archfix import (
    T0_NS,
    Published,
    ack_floor,
    check_exactly_once,
    environment,
    make_stream,
    publish_frames,
    running,
    settings,
    until,
)
from ssmd.bus.connection import connect
from ssmd.testing.frames import frame_mix
from ssmd.testing.nats import client, nats_server

LOGGER = "ssmd.bus.connection"


def _said(caplog: pytest.LogCaptureFixture, level: int = logging.WARNING) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno >= level]


def _attempts(caplog: pytest.LogCaptureFixture) -> int:
    return sum(
        1
        for r in caplog.records
        if r.name == LOGGER and r.levelno == logging.DEBUG and "reconnect attempt" in r.getMessage()
    )


async def test_nats_down_is_said_once_and_its_return_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    async with nats_server(tmp_path / "nats") as ns:
        env = environment(tmp_path, ns.url)
        await make_stream(ns.url, env)
        pub = Published()
        async with running(settings(env)) as arc:
            await until(lambda: arc.puller is not None, what="connected and pulling")
            ns.stop()
            # a dozen reconnect attempts (one every 250 ms) while it is down
            await until(lambda: _attempts(caplog) >= 12, what="reconnect attempts")
            down = _said(caplog)
            assert len(down) == 1 and "nats disconnected" in down[0], down
            await ns.start()
            await until(lambda: len(_said(caplog)) == 2, what="the return said")
            back = _said(caplog)[1]
            assert "nats reconnected" in back and "attempts" in back, back
            async with client(ns.url) as nc:
                await publish_frames(nc, frame_mix(50, seed=1), [T0_NS + i for i in range(50)], pub)
            await until(lambda: _acked(ns.url, pub.last_seq), what="archived after the outage")
            await until(lambda: not arc.spool.files, what="sealed")
        assert len(_said(caplog, logging.INFO)) <= 3  # down, back, the planned close
        check_exactly_once(env, pub)


async def test_a_long_outage_is_summed_up_at_the_summary_interval(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    async with nats_server(tmp_path / "nats") as ns:
        nc = await connect(ns.url, "outage-test", summary_every=1.0)
        try:
            ns.stop()
            await until(
                lambda: sum("still unreachable" in m for m in _said(caplog)) >= 2,
                what="two summaries",
            )
            attempts = _attempts(caplog)
            summaries = [m for m in _said(caplog) if "still unreachable" in m]
            # one summary a second, against four attempts a second
            assert attempts >= 2 * len(summaries) >= 4, (attempts, summaries)
            assert "attempts" in summaries[-1]
            await ns.start()
            await until(lambda: nc.is_connected, what="reconnected")
            await until(lambda: "nats reconnected" in _said(caplog)[-1], what="the return said")
        finally:
            await nc.close()


async def _acked(url: str, last: int) -> bool:
    return await ack_floor(url) >= last
