"""The declared consumer: deliver All, ack explicit, filter checked; misconfiguration fails loudly."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamConfig

from _support.archfix import STREAM, environment, make_stream, settings
from ssmd.archiver import Archiver, ConsumerSettings
from ssmd.exceptions import ConfigError
from ssmd.testing.nats import client, nats_server


def test_heartbeat_must_be_shorter_than_expires() -> None:
    with pytest.raises(ConfigError, match="heartbeat"):
        ConsumerSettings(expires=1.0, heartbeat=1.0)
    with pytest.raises(ConfigError):
        ConsumerSettings(expires=1.0, heartbeat=5.0)
    ConsumerSettings(expires=1.0, heartbeat=0.25)


async def test_consumer_is_created_as_declared(tmp_path: Path) -> None:
    async with nats_server(tmp_path / "nats") as ns:
        env = environment(tmp_path, ns.url)
        await make_stream(ns.url, env)
        arc = Archiver(settings(env))
        stop = asyncio.Event()
        stop.set()  # start, check, stop at once
        await arc.run(stop)
        async with client(ns.url) as nc:
            info = await nc.jetstream().consumer_info(STREAM, "archiver")
        assert info.config.deliver_policy == DeliverPolicy.ALL
        assert info.config.ack_policy == AckPolicy.EXPLICIT
        assert info.config.filter_subject == "kalshi-sim.kalshi.>"


async def test_a_mismatched_durable_or_stream_fails_loudly(tmp_path: Path) -> None:
    async with nats_server(tmp_path / "nats") as ns:
        env = environment(tmp_path, ns.url)
        stop = asyncio.Event()
        stop.set()
        with pytest.raises(ConfigError, match="does not exist"):
            await Archiver(settings(env)).run(stop)
        async with client(ns.url) as nc:
            js = nc.jetstream()
            await js.add_stream(StreamConfig(name=STREAM, subjects=["kalshi-sim.kalshi.raw.>"]))
        with pytest.raises(ConfigError, match="do not cover"):
            await Archiver(settings(env)).run(stop)
        async with client(ns.url) as nc:
            js = nc.jetstream()
            await js.delete_stream(STREAM)
        await make_stream(ns.url, env)
        async with client(ns.url) as nc:
            await nc.jetstream().add_consumer(
                STREAM,
                ConsumerConfig(
                    durable_name="archiver",
                    deliver_policy=DeliverPolicy.NEW,
                    ack_policy=AckPolicy.EXPLICIT,
                    filter_subject="kalshi-sim.kalshi.>",
                ),
            )
        with pytest.raises(ConfigError, match="deliver_policy"):
            await Archiver(settings(env)).run(stop)
