"""The archiver's puller reads its deliveries off the wire ahead of the NATS client's
parser: whatever the read boundaries, its messages arrive whole and in order, and
everything else reaches the client's parser as complete commands."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nats.errors import ProtocolError
from nats.protocol.parser import Parser

from ssmd.archiver.consumer import ConsumerSettings, Puller

OURS = 7


class FakeClient:
    """What nats-py's parser calls back, recorded."""

    def __init__(self) -> None:
        self._ps = Parser(self)
        self.other: list[tuple[int, bytes, bytes]] = []
        self.pings = 0

    def new_inbox(self) -> str:
        return "_INBOX.test"

    async def _process_msg(
        self, sid: int, subject: bytes, reply: bytes, data: bytes, hdr: bytes | None
    ) -> None:
        self.other.append((sid, subject, data))

    async def _process_ping(self) -> None:
        self.pings += 1

    async def _process_pong(self) -> None:
        pass

    async def _process_err(self, err: str) -> None:
        raise AssertionError(err)

    async def _process_info(self, info: dict[str, Any]) -> None:
        pass


def _ours(seq: int, payload: bytes) -> bytes:
    hdr = b"NATS/1.0\r\nSsmd-Conn-Id: 3\r\nSsmd-Receive-Ns: %d\r\n\r\n" % (seq * 10)
    reply = b"$JS.ACK.S.archiver.1.%d.%d.%d.0" % (seq, seq, 1_700_000_000_000_000_000 + seq)
    return b"HMSG k.kalshi.raw.trade %d %s %d %d\r\n%s%s\r\n" % (
        OURS,
        reply,
        len(hdr),
        len(hdr) + len(payload),
        hdr,
        payload,
    )


def _other(n: int, payload: bytes) -> bytes:
    return b"MSG _INBOX.api.%d 99 %d\r\n%s\r\n" % (n, len(payload), payload)


_HEARTBEAT = b"NATS/1.0 100 Idle Heartbeat\r\n\r\n"
_STATUS = b"HMSG _INBOX.test %d %d %d\r\n%s\r\n" % (
    OURS,
    len(_HEARTBEAT),
    len(_HEARTBEAT),
    _HEARTBEAT,
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["ours", "other", "ping", "ok", "status"]), st.binary(max_size=40)
        ),
        max_size=30,
    ),
    st.lists(st.integers(min_value=1, max_value=60), min_size=1, max_size=40),
)
def test_any_read_boundaries_keep_messages_whole_and_in_order(
    items: list[tuple[str, bytes]], cuts: list[int]
) -> None:
    wire = b""
    want_ours: list[tuple[int, bytes]] = []
    want_other: list[tuple[int, bytes, bytes]] = []
    pings = 0
    for k, (kind, payload) in enumerate(items):
        if kind == "ours":
            seq = len(want_ours) + 1
            wire += _ours(seq, payload)
            want_ours.append((seq, payload))
        elif kind == "other":
            wire += _other(k, payload)
            want_other.append((99, b"_INBOX.api.%d" % k, payload))
        elif kind == "ping":
            wire += b"PING\r\n"
            pings += 1
        elif kind == "ok":
            wire += b"+OK\r\n"
        else:
            wire += _STATUS
    nc = FakeClient()
    puller = Puller(nc, "S", ConsumerSettings(batch=1000))
    puller._sid = OURS
    puller._install()

    async def feed() -> None:
        pos, i = 0, 0
        while pos < len(wire):
            step = cuts[i % len(cuts)]
            await nc._ps.parse(wire[pos : pos + step])
            pos += step
            i += 1

    asyncio.run(feed())
    got = [(d[2], d[5]) for d in puller._buffer]
    assert got == want_ours
    assert all(
        d[0] == "k.kalshi.raw.trade"
        and d[4] == {"Ssmd-Conn-Id": "3", "Ssmd-Receive-Ns": str(d[2] * 10)}
        for d in puller._buffer
    )
    assert all(d[3] == 1_700_000_000_000_000_000 + d[2] for d in puller._buffer)
    assert nc.other == want_other
    assert nc.pings == pings
    assert puller._rest == b"" and not nc._ps.buf


def test_a_reconnect_drops_a_partial_read() -> None:
    nc = FakeClient()
    puller = Puller(nc, "S", ConsumerSettings())
    puller._sid = OURS
    puller._install()
    asyncio.run(nc._ps.parse(_ours(1, b"abc")[:20]))
    assert puller._rest
    nc._ps.reset()  # what the client does on a reconnect
    asyncio.run(nc._ps.parse(_ours(2, b"def")))
    assert [(d[2], d[5]) for d in puller._buffer] == [(2, b"def")]


def test_bytes_that_are_not_the_protocol_go_to_the_client_parser() -> None:
    """Nothing is held back forever: the client's parser sees the bad bytes and raises
    its protocol error (nats-py then reconnects and JetStream redelivers)."""
    nc = FakeClient()
    puller = Puller(nc, "S", ConsumerSettings())
    puller._sid = OURS
    puller._install()
    bad = _ours(1, b"ok") + b"MSG x 7 abc\r\nzz\r\n"
    with pytest.raises(ProtocolError):
        asyncio.run(nc._ps.parse(bad))
    assert [(d[2], d[5]) for d in puller._buffer] == [(1, b"ok")]
    assert puller._rest == b""
