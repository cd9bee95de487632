"""Exact books whenever the gateway starts: from the stream's start, from the connector's
book checkpoints (with the older deltas purged from the stream), after a gateway restart
mid-stream, and across a NATS restart."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

from _support.gwfix import (
    CENT,
    E6,
    ENV,
    FEED,
    PREFIX,
    STREAM,
    Client,
    Publisher,
    Running,
    connector_event,
    delta,
    gateway_settings,
    publisher,
    running_gateway,
    snapshot,
    tickers,
    trade,
    until,
)
from ssmd import core
from ssmd.bus import subjects
from ssmd.bus.stream import ensure_stream
from ssmd.gateway.feed import Feed
from ssmd.gateway.metrics import GatewayMetrics
from ssmd.testing.nats import nats_server

NAMES = [*tickers(12, "KXRST-26JUL20-T"), "KXBTCD-26MAR1213-T69499.99"]


class Flow:
    """Order-book records like a connector's: two sids per connection, valid deltas only."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.conn = 1
        self.seqs: dict[int, int] = {}
        self.levels: dict[str, dict[tuple[str, int], int]] = {}

    def sid(self, ticker: str) -> int:
        return NAMES.index(ticker) % 2 + 1

    def next_seq(self, sid: int) -> int:
        self.seqs[sid] = self.seqs.get(sid, 0) + 1
        return self.seqs[sid]

    def snapshots(self, only: list[str] | None = None) -> list[dict[str, Any]]:
        out = []
        for t in only or NAMES:
            yes = {("yes", p * CENT): self.rng.randint(1, 50) * E6 for p in range(20, 45)}
            no = {("no", p * CENT): self.rng.randint(1, 50) * E6 for p in range(30, 55)}
            self.levels[t] = {**yes, **no}
            out.append(
                snapshot(
                    t,
                    [(p, s) for (_, p), s in yes.items()],
                    [(p, s) for (_, p), s in no.items()],
                    conn=self.conn,
                    sid=self.sid(t),
                    seq=self.next_seq(self.sid(t)),
                )
            )
        return out

    def deltas(self, n: int, only: list[str] | None = None) -> list[dict[str, Any]]:
        out = []
        for _ in range(n):
            t = self.rng.choice(only or NAMES)
            side, price = self.rng.choice(sorted(self.levels[t]))
            size = self.levels[t][(side, price)]
            change = self.rng.choice([-size, -1 * E6, 1 * E6, 3 * E6, 250_000]) if size else E6
            change = max(change, -size)
            self.levels[t][(side, price)] = size + change
            sid = self.sid(t)
            out.append(
                delta(t, side, price, change, conn=self.conn, sid=sid, seq=self.next_seq(sid))
            )
        return out

    def reconnect(self) -> list[dict[str, Any]]:
        """The connection drops; a new one brings new sids' snapshots."""
        out = [connector_event("disconnected", self.conn)]
        self.conn += 1
        self.seqs.clear()
        return out + self.snapshots()


async def wait_books(c: Client, pub: Publisher, what: str) -> None:
    """Read until the client's last book of every market equals the truth."""

    async def drain() -> None:
        while not all(c.book(t) == pub.truth.book(t) for t in NAMES):
            await c.recv(30)

    try:
        await asyncio.wait_for(drain(), 30)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def health_ok(gw: Running) -> None:
    async with asyncio.timeout(20):
        while (await gw.aget("/v1/health")).status_code != 200:
            await asyncio.sleep(0.05)


async def test_a_gateway_restarted_mid_stream_serves_exact_books(tmp_path: Path) -> None:
    flow = Flow()
    async with nats_server(tmp_path / "nats") as srv, publisher(srv.url) as pub:
        await pub.publish_fast(flow.snapshots() + flow.deltas(800))
        settings = gateway_settings(srv.url)
        async with running_gateway(settings) as gw, Client.connect(gw.ws) as c:
            await c.send({"action": "subscribe", "symbols": NAMES})
            await wait_books(c, pub, "first gateway")
            await pub.publish_fast(flow.deltas(300))
            await wait_books(c, pub, "first gateway, live")
        # Down: the connector goes on (a reconnect with new snapshots, a gap, more deltas).
        await pub.publish_fast(flow.deltas(200) + flow.reconnect() + flow.deltas(200))
        gap = flow.deltas(1, only=[NAMES[0]])[0]
        flow.next_seq(gap["sid"])  # one seq skipped on NAMES[0]'s sid: its books go invalid
        await pub.publish({**gap, "seq": gap["seq"] + 1})
        async with running_gateway(settings) as gw, Client.connect(gw.ws) as c:
            await c.send({"action": "subscribe", "symbols": NAMES})
            await wait_books(c, pub, "second gateway")
            invalid = [t for t in NAMES if not c.book(t)["valid"]]  # type: ignore[index]
            assert invalid and all(flow.sid(t) == gap["sid"] for t in invalid)
            assert gw.gw.metrics.value("ssmd_gateway_book_events_total", kind="gap") == 1
            # A snapshot makes them exact again.
            await pub.publish_fast(flow.snapshots(only=invalid) + flow.deltas(100))
            await wait_books(c, pub, "resynced")
            assert all(c.book(t)["valid"] for t in NAMES)  # type: ignore[index]


async def checkpoint(pub: Publisher, books: core.BookSet, everything: bool = False) -> int:
    """Publish a checkpoint round as the connector does; returns its first stream seq."""
    first = 0
    js = pub.nc.jetstream()
    for ticker, data in books.checkpoint(time.time_ns(), everything):
        ack = await js.publish(subjects.record(ENV, FEED, "book", ticker), data)
        first = first or ack.seq
    return first


async def test_checkpoints_restore_books_without_the_older_deltas(tmp_path: Path) -> None:
    flow = Flow(seed=3)
    conn_books = core.BookSet()  # the connector's books

    async def send(records: list[dict[str, Any]]) -> None:
        await pub.publish_fast(records)
        for r in records:
            conn_books.apply(core.encode_records([r]))

    async with nats_server(tmp_path / "nats") as srv, publisher(srv.url) as pub:
        await send(flow.snapshots() + flow.deltas(500))
        await checkpoint(pub, conn_books, everything=True)
        # Only some markets change before the next round: the others' latest checkpoint
        # is the older one.
        busy = NAMES[:4]
        await send(flow.deltas(200, only=busy))
        await pub.publish(trade(busy[0], 30 * CENT, 2 * E6, seq=1))
        latest_round = await checkpoint(pub, conn_books)
        await send(flow.deltas(150))  # after the latest round: not checkpointed yet
        js = pub.nc.jetstream()
        # Without the checkpoints, these books could not be rebuilt.
        await js.purge_stream(STREAM, subject=f"{PREFIX}.orderbook.>", seq=latest_round)
        info = await js.stream_info(STREAM, subjects_filter=f"{PREFIX}.orderbook.>")
        assert sum((info.state.subjects or {}).values()) == 150
        async with running_gateway(gateway_settings(srv.url)) as gw, Client.connect(gw.ws) as c:
            assert (
                gw.gw.metrics.value("ssmd_gateway_book_events_total", kind="delta_without_snapshot")
                == 0
            )
            await c.send({"action": "subscribe", "symbols": NAMES})
            await wait_books(c, pub, "books from checkpoints")
            assert gw.gw.metrics.value("ssmd_gateway_book_events_total", kind="gap") == 0
            # The trade before the latest round came from the trade backfill.
            r = await gw.aget(f"/v1/markets/{busy[0]}/trades")
            assert [t["price"] for t in r.json()["trades"]] == [0.3]
            # And live deltas go on applying.
            await send(flow.deltas(100))
            await wait_books(c, pub, "live after checkpoints")


def test_old_checkpoints_are_left_out_and_the_replay_starts_at_the_latest_round() -> None:
    feed = Feed(gateway_settings("nats://127.0.0.1:1", checkpoint_horizon=60.0), GatewayMetrics())
    hour = 3600 * 10**9

    def cp(ticker: str, seq: int, round_ns: int) -> bytes:
        return core.encode_records(
            [
                {
                    "kind": "book",
                    "ticker": ticker,
                    "bids": [(10 * CENT, seq * E6)],
                    "asks": [],
                    "valid": True,
                    "conn_id": 1,
                    "sid": 1,
                    "seq": seq,
                    "receive_ts": round_ns,
                }
            ]
        )

    t0 = 1_784_557_805 * 10**9
    start = feed._restore_books(
        [
            (10, t0, cp("GONE", 3, t0)),  # two hours before the newest: not held any more
            (500, t0 + 2 * hour - 40 * 10**9, cp("QUIET", 40, t0 + 2 * hour - 40 * 10**9)),
            (900, t0 + 2 * hour, cp("BUSY-A", 90, t0 + 2 * hour)),
            (901, t0 + 2 * hour, cp("BUSY-B", 90, t0 + 2 * hour)),
        ]
    )
    assert start == 900
    assert feed.state.books.view("GONE") is None
    quiet = feed.state.books.view("QUIET")
    assert quiet is not None and quiet.bids == [(10 * CENT, 40 * E6)]
    # The (conn, sid) ends at the newest round's seq: 91 applies, 90 is a duplicate.
    dup = core.encode_records([delta("BUSY-A", "yes", 10 * CENT, E6, seq=90)])
    assert isinstance(feed.state.books.apply(dup)[0], core.DuplicateEvent)
    assert (
        feed.state.books.apply(core.encode_records([delta("BUSY-A", "yes", 10 * CENT, E6, seq=91)]))
        == []
    )
    busy = feed.state.books.view("BUSY-A")
    assert busy is not None and busy.bids == [(10 * CENT, 91 * E6)]
    assert feed._restore_books([]) is None


async def test_nats_restart_is_recovered(tmp_path: Path) -> None:
    flow = Flow(seed=5)
    async with nats_server(tmp_path / "nats") as srv, publisher(srv.url) as pub:
        await pub.publish_fast(flow.snapshots() + flow.deltas(300))
        async with running_gateway(gateway_settings(srv.url)) as gw, Client.connect(gw.ws) as c:
            await c.send({"action": "subscribe", "symbols": NAMES})
            await wait_books(c, pub, "before the restart")
            srv.stop()
            await until(lambda: not gw.gw.feed.nats_connected(), 10, "the gateway to see it")
            assert (await gw.aget("/v1/health")).status_code == 503
            await srv.start()
            await until(lambda: pub.nc.is_connected, 20, "the publisher to reconnect")
            await pub.publish_fast(flow.deltas(300))
            await pub.publish(trade(NAMES[1], 25 * CENT, E6, seq=1))
            await wait_books(c, pub, "after the restart")
            await c.recv_until(lambda m: m["type"] == "trade")
            await health_ok(gw)
            assert gw.gw.metrics.value("ssmd_gateway_book_events_total", kind="gap") == 0


def test_stream_sequences_are_read_from_both_reply_forms() -> None:
    from ssmd.gateway.startup import stream_meta

    assert stream_meta("$JS.ACK.SSMD_X.c1.1.42.7.1700000000000000000.3") == (
        42,
        1700000000000000000,
        3,
    )
    with_domain = "$JS.ACK.hub.ACCHASH.SSMD_X.c1.1.42.7.1700000000000000000.3.tok"
    assert stream_meta(with_domain) == (42, 1700000000000000000, 3)


async def test_a_live_consumer_deleted_on_the_server_is_made_again_from_where_it_was(
    tmp_path: Path,
) -> None:
    flow = Flow(seed=9)
    async with nats_server(tmp_path / "nats") as srv, publisher(srv.url) as pub:
        await pub.publish_fast(flow.snapshots() + flow.deltas(300))
        async with running_gateway(gateway_settings(srv.url)) as gw, Client.connect(gw.ws) as c:
            await c.send({"action": "subscribe", "symbols": NAMES})
            await wait_books(c, pub, "before the deletion")
            feed = gw.gw.feed
            starts = gw.gw.metrics.value("ssmd_gateway_consumer_starts_total", consumer="live")
            gone = feed._consumer
            assert gone is not None
            await pub.nc.jetstream().delete_consumer(STREAM, gone)
            await until(lambda: feed._consumer not in (None, gone), 20, "a new live consumer")
            assert (
                gw.gw.metrics.value("ssmd_gateway_consumer_starts_total", consumer="live")
                == starts + 1
            )
            await pub.publish_fast(flow.deltas(300))
            await pub.publish(trade(NAMES[2], 31 * CENT, E6, seq=1))
            await wait_books(c, pub, "after the deletion")
            await c.recv_until(lambda m: m["type"] == "trade")
            # Every delta applied once: none seen twice, none missed.
            value = gw.gw.metrics.value
            assert value("ssmd_gateway_book_events_total", kind="gap") == 0
            assert value("ssmd_gateway_book_events_total", kind="duplicate") == 0


async def test_a_stream_created_again_is_read_from_its_start(tmp_path: Path) -> None:
    """Deleted and made again, the stream numbers its messages from 1: the live consumer
    made again must read it from there, not wait until the new sequences pass the old."""
    flow = Flow(seed=11)
    async with nats_server(tmp_path / "nats") as srv, publisher(srv.url) as pub:
        await pub.publish_fast(flow.snapshots() + flow.deltas(300))
        async with running_gateway(gateway_settings(srv.url)) as gw, Client.connect(gw.ws) as c:
            await c.send({"action": "subscribe", "symbols": NAMES})
            await wait_books(c, pub, "before the stream is made again")
            js = pub.nc.jetstream()
            await js.delete_stream(STREAM)
            await ensure_stream(js, gateway_settings(srv.url).nats)
            await pub.publish(trade(NAMES[2], 31 * CENT, E6, seq=1))
            got = await c.recv_until(lambda m: m["type"] == "trade")
            assert (got["ticker"], got["price"]) == (NAMES[2], 31 * CENT / E6)
