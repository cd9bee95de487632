"""Slow clients: their books are conflated, then they are disconnected with 4408, while a
fast client on the same gateway gets every trade and the exact final book."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import pytest
import websockets

from _support.gwfix import (
    E6,
    Client,
    delta,
    gateway_settings,
    publisher,
    running_gateway,
    snapshot,
    trade,
    until,
)
from ssmd.testing.nats import nats_server

T = "KXBIG-26JUL20-T1"
LEVELS = 400  # a deep book: about 12 kB of JSON per orderbook message


def deep_book() -> dict[str, object]:
    yes = [(1_000 * (i + 1), (i + 1) * E6) for i in range(LEVELS)]  # 0.001 .. 0.400
    no = [(1_000 * (i + 1), (i + 2) * E6) for i in range(LEVELS)]
    return snapshot(T, yes, no)


def small_socket(port: int) -> socket.socket:
    """A client socket with a tiny receive buffer, so that a client that stops reading
    backs up into the gateway quickly."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


async def close_code(
    conn: websockets.asyncio.client.ClientConnection, into: list[dict[str, object]] | None = None
) -> tuple[int, str]:
    """Read everything left (into `into`), then the close frame."""
    with pytest.raises(websockets.ConnectionClosed) as closed:
        async with asyncio.timeout(30):
            while True:
                msg = json.loads(await conn.recv())
                if into is not None:
                    into.append(msg)
    assert closed.value.rcvd is not None, "closed without a close frame"
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def test_a_slow_client_is_conflated_then_dropped_and_a_fast_one_keeps_everything(
    tmp_path: Path,
) -> None:
    async with nats_server(tmp_path / "nats") as srv, publisher(srv.url) as pub:
        await pub.publish(deep_book())
        settings = gateway_settings(srv.url, client_queue=100)
        async with running_gateway(settings) as gw:
            metrics = gw.gw.metrics
            async with (
                Client.connect(gw.ws) as fast,
                websockets.connect(
                    gw.ws, sock=small_socket(gw.port), max_queue=1, max_size=None
                ) as slow,
            ):
                await slow.send(json.dumps({"action": "subscribe", "symbols": [T]}))
                await fast.send({"action": "subscribe", "symbols": [T]})
                await fast.recv_until(lambda m: m["type"] == "orderbook")
                await until(lambda: len(gw.gw.hub.subs.get(T, ())) == 2, 10, "both subscribed")
                # The fast client connected first.
                slow_client = max(gw.gw.hub.clients, key=lambda c: c.number)

                # Book updates, one at a time (each one a new book to send): the slow client
                # does not read, its socket fills up, and its updates are conflated.
                fast_reader = asyncio.create_task(read_all(fast))
                seq = 1
                while metrics.value("ssmd_gateway_conflated_total") == 0:
                    seq += 1
                    await pub.publish(delta(T, "yes", 1_000 * (seq % LEVELS + 1), E6, seq=seq))
                    assert seq < 20_000, "no conflation"
                # Never more than one pending book per market for the slow client.
                assert sum(1 for k, *_ in slow_client.queue if k == "orderbook") <= 1
                assert (
                    metrics.value("ssmd_gateway_slow_disconnects_total", reason="queue_full") == 0
                )

                # Trades are never conflated: past the queue bound the slow client goes. (One
                # publish at a time: a burst larger than the bound within one batch of the
                # feed would be more than any client can take between two batches.)
                for n in range(1, 301):
                    await pub.publish(trade(T, 40 * 10_000, n * E6, seq=n))
                await until(
                    lambda: (
                        metrics.value("ssmd_gateway_slow_disconnects_total", reason="queue_full")
                        == 1
                    ),
                    30,
                    "the 4408",
                )
                got: list[dict[str, object]] = []
                code, reason = await close_code(slow, got)
                assert code == 4408 and "waiting" in reason
                # What reached the slow client before the close: books conflated (fewer
                # than the book changes), trades in order from the first, none skipped.
                assert len([m for m in got if m["type"] == "orderbook"]) < seq
                sizes = [m["size"] for m in got if m["type"] == "trade"]
                assert sizes == list(range(1, len(sizes) + 1))

                # The fast client got all 300 trades in order and the exact final book.
                await until(lambda: len(fast.of("trade")) == 300, 30, "every trade")
                assert [m["size"] for m in fast.of("trade")] == list(range(1, 301))
                await until(
                    lambda: fast.book(T) == pub.truth.book(T), 30, "the fast client's final book"
                )
                fast_reader.cancel()
            text = metrics.expose()
            assert 'ssmd_gateway_slow_disconnects_total{reason="queue_full"} 1.0' in text
            assert "ssmd_gateway_conflated_total" in text


async def read_all(client: Client) -> None:
    while True:
        await client.recv(60)


async def test_a_client_that_stops_reading_is_dropped_after_the_send_timeout(
    tmp_path: Path,
) -> None:
    async with nats_server(tmp_path / "nats") as srv, publisher(srv.url) as pub:
        await pub.publish(deep_book())
        settings = gateway_settings(srv.url, send_timeout=1.0)
        async with running_gateway(settings) as gw:
            async with websockets.connect(
                gw.ws, sock=small_socket(gw.port), max_queue=1, max_size=None
            ) as slow:
                await slow.send(json.dumps({"action": "subscribe", "symbols": [T]}))
                await until(lambda: T in gw.gw.hub.subs, 10, "the subscription")
                # Only books (conflatable) flow, so the queue stays small: the blocked send
                # is what gives the client away.
                seq = 1
                while not gw.gw.metrics.value(
                    "ssmd_gateway_slow_disconnects_total", reason="send_timeout"
                ):
                    seq += 1
                    await pub.publish(delta(T, "no", 1_000 * (seq % LEVELS + 1), E6, seq=seq))
                    assert seq < 20_000, "never blocked"
                await until(
                    lambda: (
                        gw.gw.metrics.value(
                            "ssmd_gateway_slow_disconnects_total", reason="send_timeout"
                        )
                        == 1
                    ),
                    30,
                    "the 4408",
                )
                code, reason = await close_code(slow)
                assert code == 4408 and "blocked" in reason
            assert not gw.gw.hub.clients
