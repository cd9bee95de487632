"""The archiver's puller on a real server: deliveries whole and in stream order with
their stream sequence and headers; acks that leave nothing pending; an expired request
that ends the wait; a connection lost between requests; missed idle heartbeats."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from nats.js.api import StreamConfig

from ssmd import core
from ssmd.archiver.consumer import ConsumerSettings, ensure_consumer, puller
from ssmd.testing.nats import client, nats_server

Message = tuple[int, str, dict[str, str] | None, bytes]


def _messages(batch: core.Deliveries) -> list[Message]:
    out = []
    for seq in batch.seqs:
        found = batch.message(seq)
        assert found is not None
        out.append((seq, *found))
    return out


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
        pulls = puller(ns.url, "test", "S", s)
        await pulls.start()
        try:
            got: list[Message] = []
            async with asyncio.timeout(30):
                while len(got) < 250:
                    batch = await pulls.fetch()
                    assert len(batch) <= s.batch
                    got.extend(_messages(batch))
                    await pulls.ack(batch)
            assert [d[0] for d in got] == list(range(1, 251))
            assert [d[3] for d in got] == [b"%d" % i for i in range(250)]
            assert all(d[1] == f"k.kalshi.raw.{(d[0] - 1) % 3}" for d in got)
            assert all(d[2] == {"Ssmd-Conn-Id": "3"} for d in got)
            info = await js.consumer_info("S", s.durable)
            assert info.num_ack_pending == 0 and info.ack_floor.stream_seq == 250
            # Nothing left: the request expires (408) and fetch returns empty, within
            # expires + heartbeat.
            loop = asyncio.get_running_loop()
            start = loop.time()
            assert len(await pulls.fetch()) == 0
            assert loop.time() - start < s.expires + s.heartbeat + 1.0
            # A message published later arrives on a fresh request.
            await js.publish("k.kalshi.raw.0", b"late")
            async with asyncio.timeout(10):
                late = core.Deliveries([])
                while not len(late):
                    late = await pulls.fetch()
            assert [(d[0], d[3]) for d in _messages(late)] == [(251, b"late")]
            await pulls.ack(late)
            # The server restarts between two requests: the puller reconnects, and the
            # next request brings what was published meanwhile.
            ns.stop()
            await ns.start()
            await js.publish("k.kalshi.raw.1", b"after")
            async with asyncio.timeout(20):
                after = core.Deliveries([])
                while not len(after):
                    try:
                        after = await pulls.fetch()
                    except ConnectionError:
                        await pulls.wait_connected()
            assert [(d[0], d[3]) for d in _messages(after)] == [(252, b"after")]
            await pulls.ack(after)
        finally:
            await pulls.stop()


async def test_missed_heartbeats_end_the_request_before_it_expires(tmp_path: Path) -> None:
    """While a request is open the server sends idle heartbeats; a server that stops
    answering (frozen) misses two, and fetch returns then rather than at `expires`.
    When it answers again, the next request brings what was published. (Heartbeats of
    1 s, so that a busy machine delaying this loop is not taken for a frozen server.)"""
    async with nats_server(tmp_path) as ns, client(ns.url) as nc:
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name="S", subjects=["k.>"]))
        s = ConsumerSettings(batch=100, expires=5.0, heartbeat=1.0)
        await ensure_consumer(js, "S", s, "k.>")
        pulls = puller(ns.url, "test", "S", s)
        await pulls.start()
        assert ns.proc is not None
        try:
            loop = asyncio.get_running_loop()
            # Alive and idle: the heartbeats keep the request open until it expires.
            start = loop.time()
            assert len(await pulls.fetch()) == 0
            assert loop.time() - start >= s.expires - s.heartbeat
            assert pulls.missed_heartbeats == 0
            ns.proc.send_signal(signal.SIGSTOP)
            try:
                start = loop.time()
                assert len(await pulls.fetch()) == 0
                waited = loop.time() - start
            finally:
                ns.proc.send_signal(signal.SIGCONT)
            assert pulls.missed_heartbeats == 1
            assert waited < s.expires - s.heartbeat
            await js.publish("k.kalshi.raw.0", b"after")
            async with asyncio.timeout(20):
                got = core.Deliveries([])
                while not len(got):
                    got = await pulls.fetch()
            assert [(d[0], d[3]) for d in _messages(got)] == [(1, b"after")]
            await pulls.ack(got)
        finally:
            await pulls.stop()


async def test_a_stopping_consumer_takes_in_what_its_open_request_brings(
    tmp_path: Path,
) -> None:
    """`finish` after the last fetch: the messages the open request brought (the next batch,
    asked for while the caller worked) come out, none stays in flight until the ack wait,
    and no new request is made."""
    async with nats_server(tmp_path) as ns, client(ns.url) as nc:
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name="S", subjects=["k.>"]))
        for i in range(300):
            await js.publish(f"k.kalshi.raw.{i % 3}", b"%d" % i)
        s = ConsumerSettings(batch=100, expires=0.5, heartbeat=0.1, ack_wait=60.0)
        await ensure_consumer(js, "S", s, "k.>")
        pulls = puller(ns.url, "test", "S", s)
        await pulls.start()
        try:
            first = await pulls.fetch()  # and the request for the next batch is out
            assert _messages(first)[0][0] == 1
            await pulls.ack(first)
            rest = await pulls.finish()
            taken = len(first) + len(rest)
            assert [d[0] for d in _messages(rest)] == list(range(len(first) + 1, taken + 1))
            # The first request whole, and the second's (when the first batch was whole).
            assert taken == (200 if len(first) == s.batch else s.batch)
            await pulls.ack(rest)
            info = await js.consumer_info("S", s.durable)
            assert info.num_ack_pending == 0 and info.ack_floor.stream_seq == taken
            assert info.num_pending == 300 - taken  # not asked for: the next instance's
            assert len(await pulls.finish()) == 0
        finally:
            await pulls.stop()
