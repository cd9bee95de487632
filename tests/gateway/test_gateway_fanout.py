"""The fan-out: every message framed once for all its clients, a client's waiting messages
written together (bounded), the frames valid WebSocket frames, and the same messages on
uvicorn's stock WebSocket protocol."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from _support.gwfix import (
    E6,
    Client,
    gateway_settings,
    publisher,
    running_gateway,
    snapshot,
    trade,
    until,
)
from ssmd.gateway import wire
from ssmd.gateway.feed import Feed
from ssmd.gateway.hub import Client as HubClient
from ssmd.gateway.hub import Hub
from ssmd.gateway.metrics import GatewayMetrics
from ssmd.testing.nats import nats_server

T = "KXFAN-26JUL20-T1"


def parse(data: bytes) -> Frame:
    """One unmasked frame that is all of `data`, as a client parses it (websockets' own
    parser)."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False, max_size=None, extensions=None)
    with pytest.raises(StopIteration) as done:
        next(parser)
    assert reader.at_eof(), "bytes left after the frame"
    frame: Frame = done.value.value
    return frame


@pytest.mark.parametrize("n", [0, 1, 125, 126, 127, 65_535, 65_536, 70_000])
def test_a_text_frame_is_what_a_client_parses_at_every_length_encoding(n: int) -> None:
    text = "é" + "x" * (n - 2) if n >= 2 else "x" * n  # n bytes of UTF-8
    assert len(text.encode()) == n
    frame = wire.text_frame(text.encode())
    parsed = parse(frame)
    assert parsed.opcode is Opcode.TEXT and parsed.fin
    assert parsed.data.decode() == text
    assert wire.payload(frame) == text


@contextlib.asynccontextmanager
async def hub_with_clients(
    count: int, queue: int = 2_000
) -> AsyncIterator[tuple[Hub, list[HubClient]]]:
    """A hub on its own (no stream: its feed is still replaying, so no books go out) with
    `count` clients subscribed to T."""
    hub = Hub(gateway_settings("nats://127.0.0.1:1", client_queue=queue), GatewayMetrics())
    hub.feeds[hub.symbols.own] = cast(Feed, SimpleNamespace(ready=False))
    clients = [hub.connect(None) for _ in range(count)]
    for c in clients:
        assert c is not None
        await hub.subscribe(c, [T])
    yield hub, cast(list[HubClient], clients)


class Recorder:
    """A connection that takes every write (hub.Writer) and keeps them."""

    def __init__(self) -> None:
        self.writes: list[list[bytes]] = []

    def writable(self) -> bool:
        return True

    def write(self, frames: list[bytes]) -> None:
        self.writes.append(list(frames))


@contextlib.asynccontextmanager
async def writing(hub: Hub) -> AsyncIterator[None]:
    """The hub's writer task running."""
    hub.start()
    try:
        yield
    finally:
        await hub.stop()


async def test_waiting_messages_go_out_in_one_write_framed_once_for_every_client() -> None:
    async with hub_with_clients(2) as (hub, clients):
        for n in range(100):
            hub.trade(T, json.dumps({"type": "trade", "n": n}))
        conns = [Recorder(), Recorder()]
        for c, conn in zip(clients, conns, strict=True):
            hub.attach(c, conn)
        async with writing(hub):
            await until(
                lambda: all(sum(map(len, c.writes)) == 101 for c in conns), 10, "the writes"
            )
        for conn in conns:
            assert len(conn.writes) == 1, "one write for everything that was waiting"
            [batch] = conn.writes
            assert json.loads(wire.payload(batch[0])) == {"type": "subscribed", "symbols": [T]}
            assert [json.loads(wire.payload(f))["n"] for f in batch[1:]] == list(range(100))
        # Framed once: both clients were handed the very same bytes of each trade.
        a, b = (conn.writes[0][1:] for conn in conns)
        assert all(x is y for x, y in zip(a, b, strict=True))
        assert hub.metrics.sent == {"subscribed": 2, "trade": 200}


async def test_a_write_takes_a_bounded_share_of_a_long_backlog_in_order() -> None:
    async with hub_with_clients(1) as (hub, [client]):
        body = "x" * 1_000
        for n in range(1_500):
            hub.trade(T, json.dumps({"type": "trade", "n": n, "pad": body}))
        conn = Recorder()
        hub.attach(client, conn)
        async with writing(hub):
            await until(lambda: sum(map(len, conn.writes)) == 1_501, 10, "the writes")
        writes = conn.writes
        assert len(writes) > 1
        largest = max(len(f) for w in writes for f in w)
        assert all(sum(map(len, w)) < 256 * 1024 + largest for w in writes)
        got = [json.loads(wire.payload(f)) for w in writes for f in w]
        assert [m["n"] for m in got[1:]] == list(range(1_500))


async def test_uvicorns_stock_websocket_protocol_gets_the_same_messages(
    tmp_path: Path,
) -> None:
    async with nats_server(tmp_path / "nats") as srv, publisher(srv.url) as pub:
        await pub.publish(snapshot(T, [(40 * 10_000, 5 * E6)], [(55 * 10_000, 7 * E6)]))
        settings = gateway_settings(srv.url)
        for own in (True, False):  # the gateway's own connections, uvicorn's
            async with (
                running_gateway(settings, stream=own) as gw,
                Client.connect(gw.ws) as client,
            ):
                await client.send({"action": "subscribe", "symbols": [T]})
                await client.recv_until(lambda m: m["type"] == "orderbook")
                await pub.publish(*(trade(T, 40 * 10_000, n * E6, seq=n) for n in range(1, 51)))
                await client.recv_until(lambda m: m["type"] == "trade" and m["size"] == 50)
                assert [m["size"] for m in client.of("trade")] == list(range(1, 51))
                assert client.book(T) == pub.truth.book(T)
                assert client.messages[0] == {"type": "subscribed", "symbols": [T]}
