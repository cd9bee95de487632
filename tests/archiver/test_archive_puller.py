"""The archiver's puller on a real server: deliveries whole and in stream order with
their stream sequence, stored time and headers; acks that leave nothing pending; an
expired request that ends the wait; the ack subject's two forms."""

from __future__ import annotations

import asyncio
from pathlib import Path

from archfix import client, nats_server
from nats.js.api import StreamConfig

from ssmd.archiver.consumer import ConsumerSettings, Puller, ack_meta, ensure_consumer


def test_ack_subject_with_and_without_a_domain() -> None:
    plain = "$JS.ACK.S.archiver.1.42.40.1700000000000000123.7"
    domain = "$JS.ACK.hub.ACCOUNTHASH.S.archiver.1.42.40.1700000000000000123.7.rnd"
    assert ack_meta(plain) == (42, 1_700_000_000_000_000_123)
    assert ack_meta(domain) == (42, 1_700_000_000_000_000_123)


async def test_deliveries_in_order_acked_and_an_expired_request_ends_the_wait(
    tmp_path: Path,
) -> None:
    async with nats_server(tmp_path) as ns, client(ns.url) as nc:
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name="S", subjects=["k.>"]))
        for i in range(250):
            await js.publish(f"k.kalshi.raw.{i % 3}", b"%d" % i, headers={"Ssmd-Conn-Id": "3"})
        s = ConsumerSettings(batch=100, expires=0.5, heartbeat=0.1)
        await ensure_consumer(js, "S", s, "k.>")
        puller = Puller(nc, "S", s)
        await puller.start()
        try:
            got = []
            async with asyncio.timeout(30):
                while len(got) < 250:
                    batch = await puller.fetch()
                    assert len(batch) <= s.batch
                    got.extend(batch)
                    await puller.ack(batch)
            assert [d[2] for d in got] == list(range(1, 251))
            assert [d[5] for d in got] == [b"%d" % i for i in range(250)]
            assert all(d[0] == f"k.kalshi.raw.{(d[2] - 1) % 3}" for d in got)
            assert all(d[4] == {"Ssmd-Conn-Id": "3"} and d[6] == 0 for d in got)
            assert all(d[3] > 1_600_000_000 * 10**9 for d in got)
            info = await js.consumer_info("S", s.durable)
            assert info.num_ack_pending == 0 and info.ack_floor.stream_seq == 250
            # Nothing left: the request expires (408) and fetch returns empty, within
            # expires + heartbeat.
            loop = asyncio.get_running_loop()
            start = loop.time()
            assert await puller.fetch() == []
            assert loop.time() - start < s.expires + s.heartbeat + 1.0
            # A message published later arrives on a fresh request.
            await js.publish("k.kalshi.raw.0", b"late")
            async with asyncio.timeout(10):
                late = []
                while not late:
                    late = await puller.fetch()
            assert [(d[2], d[5]) for d in late] == [(251, b"late")]
        finally:
            await puller.stop()
