"""The simulators' WebSocket shell (ssmd.sim.wsshell), both sides, over real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from websockets.datastructures import Headers
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response

from ssmd.exceptions import HandshakeRefused
from ssmd.sim.wsshell import SimServer, SimSocket, connect, serve

Handler = Callable[[SimSocket], Awaitable[None]]


def _refuse_other_paths(request: Request) -> Response | None:
    if request.path == "/ws":
        return None
    body = b"plain http"
    headers = Headers([("Content-Length", str(len(body))), ("Connection", "close")])
    return Response(403, "Forbidden", headers, body)


@asynccontextmanager
async def _server(handler: Handler, max_queue: int = 16) -> AsyncIterator[SimServer]:
    server = await serve(handler, _refuse_other_paths, "127.0.0.1", 0, max_queue=max_queue)
    try:
        yield server
    finally:
        server.close()
        await server.wait_closed()


async def _echo(sock: SimSocket) -> None:
    async for message in sock.messages():
        assert isinstance(message, str)
        await sock.send(message)


async def _next(sock: SimSocket) -> str | bytes | None:
    async with asyncio.timeout(5):
        return await sock.recv()


async def test_messages_both_ways_and_a_close_when_the_handler_returns() -> None:
    async def two_then_done(sock: SimSocket) -> None:
        got = [await sock.recv(), await sock.recv()]
        assert all(isinstance(m, str) for m in got)
        assert sock.send_texts([f"{m!s}!".encode() for m in got])

    async with _server(two_then_done) as server:
        client = await connect(f"ws://127.0.0.1:{server.port}/ws")
        assert await client.send("a") and await client.send("b")
        assert [await _next(client), await _next(client)] == ["a!", "b!"]
        assert await _next(client) is None and client.close_code == 1000


async def test_pings_go_unanswered_only_while_the_switch_is_off() -> None:
    seen: list[bytes] = []
    server_side: list[SimSocket] = []

    async def hold(sock: SimSocket) -> None:
        server_side.append(sock)
        await _echo(sock)

    async with _server(hold) as server:
        client = await connect(f"ws://127.0.0.1:{server.port}/ws")
        client.on_control = lambda f: seen.append(bytes(f.data))
        assert await client.send("first") and await _next(client) == "first"
        server_side[0].answer_pings = False
        lost = client.ping(b"lost")
        assert lost is not None and await client.send("after the ping")
        # The echo arrives after the ping was read: a pong would have come first.
        assert await _next(client) == "after the ping"
        assert not lost.done() and seen == []
        server_side[0].answer_pings = True
        answered = client.ping(b"answered")
        assert answered is not None
        async with asyncio.timeout(5):
            await answered
        assert seen == [b"answered"] and lost.done()  # a later pong answers earlier pings


async def test_server_pings_are_answered_by_the_client_and_waited_for() -> None:
    pongs: list[asyncio.Future[None] | None] = []

    async def ping_then_echo(sock: SimSocket) -> None:
        await sock.recv()  # the client is watching its control frames from here
        pongs.append(sock.ping(b"p1"))
        await _echo(sock)

    async with _server(ping_then_echo) as server:
        client = await connect(f"ws://127.0.0.1:{server.port}/ws")
        pings: list[Frame] = []
        client.on_control = pings.append
        assert await client.send("go") and await client.send("x") and await _next(client) == "x"
        waiter = pongs[0]
        assert waiter is not None
        async with asyncio.timeout(5):
            await waiter
        assert [(f.opcode, bytes(f.data)) for f in pings] == [(Opcode.PING, b"p1")]


async def test_abort_drops_the_socket_without_a_close_frame() -> None:
    async def abort(sock: SimSocket) -> None:
        sock.abort()
        assert not sock.open and not sock.send_texts([b"never"])

    async with _server(abort) as server:
        client = await connect(f"ws://127.0.0.1:{server.port}/ws")
        assert await _next(client) is None and client.close_code is None


async def test_server_close_says_going_away_and_waits_for_the_handlers() -> None:
    finished: list[bool] = []

    async def wait_out(sock: SimSocket) -> None:
        await _echo(sock)
        finished.append(True)

    server = await serve(wait_out, _refuse_other_paths, "127.0.0.1", 0)
    client = await connect(f"ws://127.0.0.1:{server.port}/ws")
    assert await client.send("x") and await _next(client) == "x"
    server.close()
    assert await _next(client) is None and client.close_code == 1001
    await server.wait_closed()
    assert finished == [True] and not server.sockets and not server.tasks


async def test_a_failing_handler_closes_1011_and_bad_utf8_closes_1007() -> None:
    async def fail(sock: SimSocket) -> None:
        raise RuntimeError("boom")

    async with _server(fail) as server:
        client = await connect(f"ws://127.0.0.1:{server.port}/ws")
        assert await _next(client) is None and client.close_code == 1011

    async with _server(_echo) as server:
        client = await connect(f"ws://127.0.0.1:{server.port}/ws")
        assert client.send_texts([b"\xff\xfe"])  # the frame is not checked on the way out
        assert await _next(client) is None and client.close_code == 1007


async def test_plain_http_and_refused_upgrades() -> None:
    async with _server(_echo) as server:
        with pytest.raises(HandshakeRefused) as refused:
            await connect(f"ws://127.0.0.1:{server.port}/elsewhere")
        assert refused.value.status == 403
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /elsewhere HTTP/1.1\r\nHost: x\r\n\r\n")
        async with asyncio.timeout(5):
            answer = await reader.read()  # the server closes after its answer
        writer.close()
        assert answer.startswith(b"HTTP/1.1 403 ") and answer.endswith(b"plain http")


async def test_a_flood_is_held_back_by_the_bounded_queue_and_loses_nothing() -> None:
    release = asyncio.Event()
    received: list[str | bytes] = []
    server_side: list[SimSocket] = []

    async def slow(sock: SimSocket) -> None:
        server_side.append(sock)
        await release.wait()
        async for message in sock.messages():
            received.append(message)
            if len(received) == 2000:
                return

    async with _server(slow, max_queue=8) as server:
        client = await connect(f"ws://127.0.0.1:{server.port}/ws")
        payload = "y" * 16384
        for i in range(2000):  # 32 MiB: far more than the sockets' buffers hold
            client.send_texts([f"{i:05d}{payload}".encode()])
            if not client.open:
                break
        async with asyncio.timeout(5):
            while not server_side:
                await asyncio.sleep(0)
        writing = asyncio.create_task(client.drain())
        await asyncio.sleep(0)  # one step of the task: done at once if the socket were writable
        assert not writing.done()  # TCP holds the writer back: the server stopped reading
        release.set()
        async with asyncio.timeout(10):
            await writing
            assert await _next(client) is None
        assert [int(m[:5]) for m in received] == list(range(2000))
