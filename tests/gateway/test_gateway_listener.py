"""The listener: /v1/stream on the gateway's own WebSocket connections, everything else
relayed to uvicorn on the same port; the protocol's edges (fragments, sizes, pings, the
close at shutdown) on the gateway's own connections."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from pathlib import Path

import httpx
import pytest
import websockets

from _support.gwfix import (
    CENT,
    E6,
    Client,
    gateway_settings,
    publisher,
    running_gateway,
    snapshot,
    until,
)
from ssmd.testing.nats import nats_server

T = "KXLISTEN-26JUL20-T1"


async def handshake(
    port: int, path: str = "/v1/stream"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """A raw WebSocket client: the upgrade, and the response head."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    return reader, writer, head


def close_code_in(data: bytes) -> int | None:
    """The code of the first close frame in unmasked server frames."""
    pos = 0
    while pos + 2 <= len(data):
        opcode, n = data[pos] & 0x0F, data[pos + 1] & 0x7F
        start = pos + 2 + (2 if n == 126 else 8 if n == 127 else 0)
        if n >= 126:
            n = int.from_bytes(data[pos + 2 : start], "big")
        if opcode == 8:
            return int.from_bytes(data[start : start + 2], "big")
        pos = start + n
    return None


async def test_rest_and_the_stream_share_the_port_and_keep_alive_works(tmp_path: Path) -> None:
    async with nats_server(tmp_path / "nats") as srv, publisher(srv.url) as pub:
        await pub.publish(snapshot(T, [(40 * CENT, E6)], []))
        async with running_gateway(gateway_settings(srv.url)) as gw:
            async with httpx.AsyncClient(base_url=gw.http, timeout=10) as http:
                answers = [await http.get(f"/v1/markets/{T}") for _ in range(3)]
                assert [a.status_code for a in answers] == [200] * 3
                assert answers[0].json()["ticker"] == T
                assert (await http.get("/openapi.json")).json()["info"]["title"] == "ssmd gateway"
                # A plain GET of the stream's path is not an upgrade: uvicorn's app answers.
                assert (await http.get("/v1/stream")).status_code == 404
            async with Client.connect(gw.ws) as client:
                # A message in three fragments is one message.
                await client.conn.send(iter(['{"action":"subscribe",', '"symbols":', f'["{T}"]}}']))
                assert await client.recv() == {"type": "subscribed", "symbols": [T]}
                book = await client.recv()
                assert book["type"] == "orderbook" and book["bids"] == [[0.4, 1]]


async def test_an_idle_connection_outlives_an_http_clients_own_idle_time(tmp_path: Path) -> None:
    # httpx keeps an idle connection 5 s; had the gateway closed it at 5 s too (uvicorn's
    # default), a client polling every ~5 s would send a request into a closing connection.
    async with (
        nats_server(tmp_path / "nats") as srv,
        running_gateway(gateway_settings(srv.url), ready=False) as gw,
    ):
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        request = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
        idle = httpx.Limits().keepalive_expiry
        assert idle is not None
        for _ in range(2):
            writer.write(request)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            assert head.startswith(b"HTTP/1.1 "), head
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            await asyncio.sleep(idle + 1)  # the idle time under test, not a wait for an event
        writer.close()


async def test_a_request_head_too_large_is_refused(tmp_path: Path) -> None:
    async with (
        nats_server(tmp_path / "nats") as srv,
        running_gateway(gateway_settings(srv.url), ready=False) as gw,
    ):
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        writer.write(b"GET / HTTP/1.1\r\nX-Big: " + b"x" * 70_000)
        answer = await asyncio.wait_for(reader.read(), 10)
        assert answer.startswith(b"HTTP/1.1 431 ")
        writer.close()


async def test_a_message_over_the_size_limit_closes_1009(tmp_path: Path) -> None:
    async with nats_server(tmp_path / "nats") as srv:
        settings = gateway_settings(srv.url, max_message_bytes=1_000)
        async with running_gateway(settings, ready=False) as gw:
            async with websockets.connect(gw.ws) as conn:
                await conn.send(json.dumps({"action": "subscribe", "symbols": ["X" * 2_000]}))
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await asyncio.wait_for(conn.recv(), 10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_a_client_that_answers_no_ping_is_closed_1011(tmp_path: Path) -> None:
    async with nats_server(tmp_path / "nats") as srv:
        settings = gateway_settings(srv.url, ws_ping_interval=0.2)
        async with running_gateway(settings, ready=False) as gw:
            reader, writer, head = await handshake(gw.port)
            assert head.startswith(b"HTTP/1.1 101 ")
            # The client reads (the pings arrive) but never answers them.
            data = await asyncio.wait_for(reader.read(), 10)
            writer.close()
            assert data[0] & 0x0F == 9, "a ping first"
            assert close_code_in(data) == 1011
            await until(lambda: not gw.gw.hub.clients, 10, "the client to be released")


async def test_a_bad_upgrade_is_refused_and_stopping_closes_clients_1001(tmp_path: Path) -> None:
    async with nats_server(tmp_path / "nats") as srv:
        gw_settings = gateway_settings(srv.url)
        async with running_gateway(gw_settings, ready=False) as gw:
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
            writer.write(
                b"GET /v1/stream HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\n\r\n"  # no key, no version
            )
            answer = await asyncio.wait_for(reader.read(), 10)
            writer.close()
            assert answer.startswith(b"HTTP/1.1 400 ") and b"Sec-WebSocket-Key" in answer
            conn = await websockets.connect(gw.ws)
            await until(lambda: len(gw.gw.hub.clients) == 1, 10, "the client")
            assert gw.server is not None
            gw.server.should_exit = True
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(conn.recv(), 20)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
