"""ssmd.bus: the subject escape, the stream check and the publisher (real nats-server)."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nats.js.api import StreamConfig

from _support.tcpproxy import TcpProxy
from ssmd import core
from ssmd.bus import subjects
from ssmd.bus.publisher import OutMsg, Publisher
from ssmd.bus.stream import check_stream, ensure_stream, required_subjects
from ssmd.config import NatsSettings
from ssmd.exceptions import ConfigError
from ssmd.testing.nats import client, nats_server, read_stream


@pytest.mark.parametrize(
    "ticker",
    [
        "KXBTCD-26MAR1213-T69499.99",
        "KXBTCD-26MAR1213-T6949999",
        "a*b>c",
        "with space\tand\nnewline",
        "100%",
        "%2E",
        "",
        "KXÜ-é",
        "slash/ok",
    ],
)
def test_escape_round_trip_and_valid_token(ticker: str) -> None:
    token = subjects.escape_token(ticker)
    assert subjects.unescape_token(token) == ticker
    assert token and not any(c in token for c in ".*> \t\r\n")
    assert all(0x21 <= ord(c) <= 0x7E for c in token)


def test_dotted_tickers_do_not_collide_and_stay_one_token() -> None:
    a = subjects.record("prod", "kalshi", "trade", "KXBTCD-26MAR1213-T69499.99")
    b = subjects.record("prod", "kalshi", "trade", "KXBTCD-26MAR1213-T6949999")
    assert a != b
    assert subjects.matches("prod.kalshi.trade.*", a)
    assert a == "prod.kalshi.trade.KXBTCD-26MAR1213-T69499%2E99"


@given(st.text())
def test_escape_round_trip_any_text(value: str) -> None:
    token = subjects.escape_token(value)
    assert len(token) <= subjects.MAX_TOKEN
    if subjects.HASH_MARK in token:
        with pytest.raises(ValueError, match="cut"):
            subjects.unescape_token(token)
    else:
        assert subjects.unescape_token(token) == value


@given(st.text(min_size=1), st.text(min_size=1))
def test_distinct_values_get_distinct_tokens(a: str, b: str) -> None:
    if a != b:
        assert subjects.escape_token(a) != subjects.escape_token(b)


@pytest.mark.parametrize(
    ("ticker", "readable"),
    [("é" * 2000, "%C3%A9"), ("K" * 5000, "KKKK"), ("a~" * 100, "a%7Ea"), ("x." * 300, "x%2Ex")],
)
def test_long_tokens_are_cut_to_a_readable_prefix_and_a_hash(ticker: str, readable: str) -> None:
    token = subjects.escape_token(ticker)
    assert token.startswith(readable) and len(token) <= subjects.MAX_TOKEN
    _, digest = token.split(subjects.HASH_MARK)
    assert len(digest) == 16 and int(digest, 16) >= 0


async def test_hostile_tickers_publish_to_a_real_server(tmp_path: Path) -> None:
    """A subject over nats-server's 4096-byte control line closes the connection, and
    the re-publish after reconnect would close it again: tokens are bounded instead."""
    hostile = ["é" * 2000, "K" * 5000, "", "../x", "a.*.>", "a b\tc", "~" * 100]
    async with nats_server(tmp_path) as srv, client(srv.url) as nc:
        await ensure_stream(nc.jetstream(), _settings())
        acks: list[int] = []
        pub = Publisher(srv.url, "test", max_inflight=8, on_ack=lambda a: acks.append(a.acked))
        await pub.start()
        for i, ticker in enumerate(hostile):
            subject = subjects.record("t", "kalshi", "trade", ticker)
            await pub.publish(OutMsg(subject, ticker.encode(), f"h:{i}"))
        assert await pub.flush(5)
        await pub.close()
        msgs = await read_stream(nc, "SSMD_T")
        assert [m.data.decode() for m in msgs] == hostile
        assert sum(acks) == len(hostile) and nc.is_connected


def test_matches_and_covers() -> None:
    assert subjects.matches("a.b.>", "a.b.c.d")
    assert not subjects.matches("a.b.>", "a.b")
    assert subjects.matches("a.*.c", "a.x.c")
    assert not subjects.matches("a.*", "a.x.c")
    assert subjects.covers(["a.b.>"], "a.b.raw.*")
    assert not subjects.covers(["a.b.raw.>"], "a.b.trade.*")
    assert not subjects.covers(["a.b.*"], "a.b.raw.*")


def test_filters_take_what_the_builders_make() -> None:
    p = subjects.prefix("prod", "kalshi")
    trade = subjects.record("prod", "kalshi", "trade", "KX.B*C")
    raw = subjects.raw("prod", "kalshi", "trade")
    assert subjects.matches(subjects.every_ticker(p, "trade"), trade)
    assert not subjects.matches(subjects.every_ticker(p, "orderbook"), trade)
    assert all(subjects.matches(subjects.under(p), s) for s in (trade, raw))
    assert subjects.matches(subjects.under(p, "raw"), raw)
    assert not subjects.matches(subjects.under(p, "raw"), trade)
    assert subjects.matches(subjects.under(p, "events"), subjects.event("prod", "kalshi", "gap"))


def _settings(stream: str = "SSMD_T") -> NatsSettings:
    return NatsSettings(
        url="nats://x",
        stream=stream,
        subject_prefix="t.kalshi",
        retention=timedelta(hours=48),
        duplicate_window=timedelta(minutes=2),
        replicas=1,
    )


async def test_ensure_stream_creates_and_checks(tmp_path: Path) -> None:
    async with nats_server(tmp_path) as srv, client(srv.url) as nc:
        js = nc.jetstream()
        info = await ensure_stream(js, _settings())
        assert info.config.subjects == ["t.kalshi.>"]
        assert info.config.duplicate_window == 120
        await check_stream(js, "SSMD_T", required_subjects("t.kalshi"))
        # A stream that does not cover what the connector publishes fails loudly.
        await js.add_stream(StreamConfig(name="NARROW", subjects=["u.kalshi.raw.>"]))
        with pytest.raises(ConfigError, match=r"do not cover"):
            await ensure_stream(
                js,
                dataclasses.replace(_settings("NARROW"), subject_prefix="u.kalshi"),
            )
        with pytest.raises(ConfigError, match="does not exist"):
            await check_stream(js, "MISSING", ["x.>"])


async def test_publisher_acks_and_dedupes_by_msg_id(tmp_path: Path) -> None:
    async with nats_server(tmp_path) as srv, client(srv.url) as nc:
        await ensure_stream(nc.jetstream(), _settings())
        acks: list[core.Acked] = []
        pub = Publisher(srv.url, "test", max_inflight=8, on_ack=acks.append)
        await pub.start()
        for i in range(100):
            await pub.publish(
                OutMsg("t.kalshi.raw.trade", b"%d" % i, f"c:{i}", {"Ssmd-Conn-Id": "1"})
            )
            assert pub.inflight <= 8
        # Re-publishing the same ids (as after a reconnect) stores nothing new.
        for i in range(50):
            await pub.publish(OutMsg("t.kalshi.raw.trade", b"%d" % i, f"c:{i}"))
        assert await pub.flush(5)
        await pub.close()
        msgs = await read_stream(nc, "SSMD_T")
        assert [m.data for m in msgs] == [b"%d" % i for i in range(100)]
        assert msgs[0].headers is not None and msgs[0].headers["Ssmd-Conn-Id"] == "1"
        assert sum(a.duplicates for a in acks) == pub.duplicates == 50
        assert sum(a.acked for a in acks) == pub.acked == 150
        assert not any(a.frames for a in acks)  # no raw frame of a connector among them


async def test_publisher_replays_in_order_across_a_nats_restart(tmp_path: Path) -> None:
    from ssmd.bus.connection import connect

    async with nats_server(tmp_path) as srv:
        nc = await connect(srv.url, "test")
        await ensure_stream(nc.jetstream(), _settings())
        pub = Publisher(srv.url, "test", max_inflight=64, ack_timeout=2.0)
        await pub.start()
        for i in range(300):
            await pub.publish(OutMsg("t.kalshi.raw.trade", b"%d" % i, f"c:{i}"))
            if i == 150:
                srv.stop()
                await srv.start()
        assert await pub.flush(20)
        await pub.close()
        msgs = await read_stream(nc, "SSMD_T")
        await nc.close()
        assert [m.data for m in msgs] == [b"%d" % i for i in range(300)]


def _record_writes(pub: Publisher, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """At each write to the socket, how many messages were written without their PubAck
    yet (the batch being written included)."""
    unacked: list[int] = []
    wire = pub._wire
    write = wire.write

    async def recording(data: bytes) -> None:
        unacked.append(pub.published - pub.acked)
        await write(data)

    monkeypatch.setattr(wire, "write", recording)
    return unacked


async def test_publisher_keeps_at_most_its_window_unacked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At most `max_inflight` messages (and `max_inflight_bytes`, or one message) are
    written without their PubAck; a full window waits until it is half empty."""
    async with nats_server(tmp_path) as srv, client(srv.url) as nc:
        await ensure_stream(nc.jetstream(), _settings())
        pub = Publisher(srv.url, "test", max_inflight=128)
        await pub.start()
        unacked = _record_writes(pub, monkeypatch)
        for b in range(20):
            batch = [OutMsg("t.kalshi.raw.trade", b"%d" % i, f"c:{i}") for i in range(b, 1000, 20)]
            await pub.publish_many(batch)  # returns once written: its acks come later
        assert await pub.flush(10)
        await pub.close()
        assert len(unacked) == 20 and max(unacked) <= 128  # never split, never over
        assert unacked[:2] == [50, 100]  # the second batch went before the first's acks
        # The byte window: 250 bytes, waiting until 125 or fewer are unacked.
        pub = Publisher(srv.url, "test", max_inflight_bytes=250)
        await pub.start()
        unacked = _record_writes(pub, monkeypatch)
        await pub.publish_many([OutMsg("t.kalshi.raw.x", b"p" * 100, f"x:{i}") for i in range(9)])
        await pub.publish(OutMsg("t.kalshi.raw.x", b"q" * 400, "x:big"))  # alone over it
        assert await pub.flush(10)
        await pub.close()
        # Never three of the 100-byte messages (300 bytes) unacked, so the nine took at
        # least five writes; the 400-byte one went anyway (how many PubAcks a read
        # brings decides the exact sequence, not the policy).
        assert max(unacked) <= 2 and len(unacked) >= 6
        got = [
            (m.data[:1], m.headers and m.headers["Nats-Msg-Id"])
            for m in await read_stream(nc, "SSMD_T")
        ]
        assert got[-10:] == [(b"p", f"x:{i}") for i in range(9)] + [(b"q", "x:big")]


async def test_a_stalled_then_cut_connection_keeps_the_stream_in_order(tmp_path: Path) -> None:
    """The server stops reading (writes back up in the sockets), then the connection is
    reset: whatever was lost in the sockets is replayed, and nothing the client still
    held goes ahead of it."""
    from ssmd.bus.connection import connect

    proxy = TcpProxy("127.0.0.1", 0)
    async with nats_server(tmp_path) as srv, client(srv.url) as admin:
        await ensure_stream(admin.jetstream(), _settings())
        proxy.target = ("127.0.0.1", srv.port)
        await proxy.start()
        nc = await connect(f"nats://127.0.0.1:{proxy.port}", "test")
        try:
            pub = Publisher(f"nats://127.0.0.1:{proxy.port}", "test", ack_timeout=30.0)
            await pub.start()
            pad = b"." * 16_000
            msgs = [OutMsg("t.kalshi.raw.trade", b"%06d" % i + pad, f"c:{i}") for i in range(1600)]
            batches = [msgs[i : i + 32] for i in range(0, len(msgs), 32)]
            await pub.publish_many(batches[0])
            assert await pub.flush(10)
            proxy.hold()
            # Hand over batches until the publisher waits for acks (or all are handed).
            blocked: asyncio.Future[None] | None = None
            k = 1
            while k < len(batches):
                task = asyncio.ensure_future(pub.publish_many(batches[k]))
                k += 1
                done, _ = await asyncio.wait({task}, timeout=1.0)
                if not done:
                    blocked = task
                    break
            assert blocked is not None, "the publisher never waited for acks"
            proxy.cut()
            proxy.restore()
            await blocked
            for b in batches[k:]:
                await pub.publish_many(b)
            assert await pub.flush(60)
            assert pub.republished > 0
            await pub.close()
        finally:
            await nc.close()
            await proxy.close()
        got = [int(m.data[:6]) for m in await read_stream(admin, "SSMD_T")]
        assert got == list(range(1600))


def _refused_first() -> list[OutMsg]:
    """Ten messages; the first on a subject the test stream takes only once
    `_take_refused` ran."""
    later = [OutMsg("t.kalshi.raw.trade", b"%d" % i, f"c:{i}") for i in range(1, 10)]
    return [OutMsg("t.late.x", b"0", "late:0"), *later]


async def _take_refused(js: Any) -> None:
    config = (await js.stream_info("SSMD_T")).config
    config.subjects = [*config.subjects, "t.late.>"]
    await js.update_stream(config)


class _Refusals:
    """The publisher's `on_error`: an event set once the server refused a message."""

    def __init__(self) -> None:
        self.seen = asyncio.Event()

    def __call__(self, why: str) -> None:
        if "rejected" in why:
            self.seen.set()


async def test_a_replay_waits_until_its_first_message_is_stored(tmp_path: Path) -> None:
    """The replay after a lost connection meets a stream that refuses its first message
    (as while a cluster elects a stream leader): nothing behind it is stored first."""
    from ssmd.bus.connection import connect

    proxy = TcpProxy("127.0.0.1", 0)
    async with nats_server(tmp_path) as srv, client(srv.url) as admin:
        js = admin.jetstream()
        await ensure_stream(js, _settings())
        proxy.target = ("127.0.0.1", srv.port)
        await proxy.start()
        url = f"nats://127.0.0.1:{proxy.port}"
        nc = await connect(url, "test")
        refusals = _Refusals()
        try:
            pub = Publisher(url, "test", on_error=refusals)
            await pub.start()
            proxy.hold()  # the batch waits in the sockets ...
            await pub.publish_many(_refused_first())
            proxy.cut()  # ... and is lost with the connection: the replay sends it all
            proxy.restore()
            await asyncio.wait_for(refusals.seen.wait(), 20)
            await _take_refused(js)
            assert await pub.flush(20)
            await pub.close()
        finally:
            await nc.close()
            await proxy.close()
        got = [int(m.data) for m in await read_stream(admin, "SSMD_T")]
        assert got == list(range(10))
        assert pub.reordered == 0


async def test_messages_stored_ahead_of_a_refused_one_are_counted(tmp_path: Path) -> None:
    """The server refuses the first message of a batch and stores the rest: the stream's
    order is broken, and the publisher says so."""
    async with nats_server(tmp_path) as srv, client(srv.url) as admin:
        js = admin.jetstream()
        await ensure_stream(js, _settings())
        refusals = _Refusals()
        pub = Publisher(srv.url, "test", on_error=refusals)
        await pub.start()
        await pub.publish_many(_refused_first())
        await asyncio.wait_for(refusals.seen.wait(), 20)
        await _take_refused(js)
        assert await pub.flush(20)
        await pub.close()
        got = [int(m.data) for m in await read_stream(admin, "SSMD_T")]
        assert got == [*range(1, 10), 0]
        assert pub.reordered == 9
        assert pub.acked == 10
