"""The venues' WebSocket session against a server written byte by byte: what a real
server may do that the simulators do not all do (frames in the same segment as the
101, a message in fragments with a ping between them, a masked frame, a refusal with a
body) and what the session must answer (a pong per ping, a close frame per close)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from ssmd.exceptions import SessionError
from ssmd.venues.base import Liveness
from ssmd.venues.websocket import WebSocketSession

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bytes = b"") -> bytes:
    head = bytes([(0x80 if fin else 0) | opcode])
    mbit = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        head += bytes([mbit | n])
    elif n < 65536:
        head += bytes([mbit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack("!Q", n)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + payload


async def read_client_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """A frame the client wrote (always masked)."""
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", await reader.readexactly(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", await reader.readexactly(8))
    mask = await reader.readexactly(4)
    data = await reader.readexactly(n)
    return b0 & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def accept(request: bytes) -> bytes:
    key = next(
        line.split(b":", 1)[1].strip()
        for line in request.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    digest = base64.b64encode(hashlib.sha1(key + GUID).digest())
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + digest + b"\r\n\r\n"
    )


Script = Callable[[bytes, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def server(script: Script) -> AsyncIterator[str]:
    """A server that reads one upgrade request and hands it to `script`."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        try:
            await script(request, reader, writer)
        finally:
            writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    async with srv:
        yield f"ws://127.0.0.1:{port}/ws"


class Quiet(WebSocketSession):
    async def _keep_alive(self) -> None:
        await asyncio.Event().wait()


def session(url: str, got: list[tuple[bytes, int]], max_size: int = 1 << 20) -> Quiet:
    return Quiet(
        url,
        lambda messages, ns: got.extend((data, ns) for data in messages),
        liveness=Liveness(open_timeout=5, stale_after=30),
        max_frame_bytes=max_size,
    )


async def test_frames_after_the_101_fragments_pings_and_the_close() -> None:
    seen: list[tuple[int, bytes]] = []

    async def script(request: bytes, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        assert b"sec-websocket-extensions" not in request.lower()  # frames come uncompressed
        w.write(
            accept(request)
            + frame(1, b'{"a":1}')  # in the same segment as the 101
            + frame(1, b'{"b":', fin=False)
            + frame(9, b"p1")
            + frame(0, b"2}")
            + frame(2, b"\xff\xfe")  # binary, and not UTF-8: handed on as received
        )
        seen.append(await read_client_frame(reader))  # the pong
        big = b"x" * 70_000
        w.write(frame(1, big[:3]))  # a frame split over writes
        await w.drain()
        w.write(frame(1, big)[:1000])
        await w.drain()
        w.write(frame(1, big)[1000:] + frame(8, struct.pack("!H", 1001) + b"bye"))
        seen.append(await read_client_frame(reader))  # the close answered

    got: list[tuple[bytes, int]] = []
    async with server(script) as url:
        s = session(url, got)
        await s.open()
        reason = await asyncio.wait_for(s.run(), 10)
    assert [d for d, _ in got] == [b'{"a":1}', b'{"b":2}', b"\xff\xfe", b"xxx", b"x" * 70_000]
    assert s.frames == 5 and all(ns > 0 for _, ns in got)
    assert reason == "closed by server: 1001 bye"
    assert seen == [(0xA, b"p1"), (0x8, struct.pack("!H", 1001))]


@pytest.mark.parametrize(
    ("wire", "code", "reason"),
    [
        (frame(1, b"hi", mask=b"abcd"), 1002, "protocol error: a masked frame from the server"),
        (frame(0, b"hi"), 1002, "protocol error: a continuation frame outside a message"),
        (frame(1, b"y" * 200), 1009, "a frame over 100 bytes"),
    ],
)
async def test_a_broken_protocol_closes_with_its_code(wire: bytes, code: int, reason: str) -> None:
    seen: list[tuple[int, bytes]] = []

    async def script(request: bytes, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(accept(request) + frame(1, b"before") + wire + frame(1, b"after"))
        seen.append(await read_client_frame(reader))

    got: list[tuple[bytes, int]] = []
    async with server(script) as url:
        s = session(url, got, max_size=100)
        await s.open()
        why = await asyncio.wait_for(s.run(), 10)
    assert [d for d, _ in got] == [b"before"]  # nothing read after the error
    assert why.startswith(reason)
    assert seen[0][0] == 0x8 and struct.unpack("!H", seen[0][1][:2]) == (code,)


async def test_a_refused_upgrade_names_its_status() -> None:
    async def script(request: bytes, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        body = b"unauthorized: " + b"z" * 5000
        w.write(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        await w.drain()

    async with server(script) as url:
        s = session(url, [])
        with pytest.raises(SessionError, match="HTTP 401 on the WebSocket upgrade"):
            await s.open()


async def test_our_close_still_reads_what_the_server_sent_before_its_answer() -> None:
    async def script(request: bytes, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(accept(request))
        opcode, _ = await read_client_frame(reader)
        assert opcode == 0x8
        w.write(frame(1, b"in flight") + frame(8, struct.pack("!H", 1000)))
        await w.drain()

    got: list[tuple[bytes, int]] = []
    async with server(script) as url:
        s = session(url, got)
        await s.open()
        run = asyncio.create_task(s.run())
        await s.close()
        reason = await asyncio.wait_for(run, 10)
    assert [d for d, _ in got] == [b"in flight"]
    assert reason == "closed by server: 1000"
