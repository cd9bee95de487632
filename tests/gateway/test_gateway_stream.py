"""The WebSocket stream: exact message shapes, subscribe/unsubscribe, dotted tickers,
1,000 symbols on one connection, and every error a client message can get."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from _support.gwfix import (
    CENT,
    E6,
    Client,
    connector_event,
    delta,
    gateway_settings,
    publisher,
    running_gateway,
    snapshot,
    status,
    tickers,
    trade,
)
from ssmd.testing import until
from ssmd.testing.nats import nats_server

T1 = "INXD-25-B4000"
T2 = "INXD-25-B4100"
DOTTED = "KXBTCD-26MAR1213-T69499.99"
TS = 1_702_540_800_000


async def test_every_message_has_the_documented_shape(tmp_path: Path) -> None:
    async with nats_server(tmp_path / "nats") as srv, publisher(srv.url) as pub:
        await pub.publish(
            {
                **snapshot(
                    T1, [(44 * CENT, 100 * E6), (43 * CENT, 5 * E6)], [(54 * CENT, 150 * E6)]
                ),
                "exchange_ts": T0_MS * 1_000_000,
            }
        )
        async with (
            running_gateway(gateway_settings(srv.url)) as gw,
            Client.connect(gw.ws) as c,
        ):
            await c.send({"action": "subscribe", "symbols": [T1]})
            assert await c.recv() == {"type": "subscribed", "symbols": [T1]}
            book = await c.recv()
            assert book == {
                "type": "orderbook",
                "ticker": T1,
                "bids": [[0.44, 100], [0.43, 5]],
                "asks": [[0.46, 150]],
                "valid": True,
                "ts": T0_MS,
            }
            exchange = {"exchange_ts": TS * 1_000_000}
            # A sub-cent price and a fractional size: exact values, as dollars and contracts.
            await pub.publish({**delta(T1, "yes", 999_000, 2_233_487_480_000, seq=2), **exchange})
            assert await c.recv() == {
                "type": "orderbook",
                "ticker": T1,
                "bids": [[0.999, 2233487.48], [0.44, 100], [0.43, 5]],
                "asks": [[0.46, 150]],
                "valid": True,
                "ts": TS,
            }
            await pub.publish({**trade(T1, 45 * CENT, 10 * E6, "yes"), **exchange})
            assert await c.recv() == {
                "type": "trade",
                "ticker": T1,
                "price": 0.45,
                "size": 10,
                "side": "buy",
                "ts": TS,
            }
            await pub.publish({**trade(T1, 9_990, 1_500_000, "no"), **exchange})
            assert await c.recv() == {
                "type": "trade",
                "ticker": T1,
                "price": 0.00999,
                "size": 1.5,
                "side": "sell",
                "ts": TS,
            }
            await pub.publish({**status(T1, "halted"), **exchange})
            assert await c.recv() == {"type": "status", "ticker": T1, "status": "halted", "ts": TS}
            # A lost connection invalidates its books until a snapshot comes.
            await pub.publish({**connector_event("disconnected", 1), **exchange})
            invalid = await c.recv()
            assert invalid["valid"] is False and invalid["bids"] == [
                [0.999, 2233487.48],
                [0.44, 100],
                [0.43, 5],
            ]
            await pub.publish(
                {**snapshot(T1, [(40 * CENT, 1 * E6)], [], conn=2, sid=4, seq=1), **exchange}
            )
            assert await c.recv() == {
                "type": "orderbook",
                "ticker": T1,
                "bids": [[0.4, 1]],
                "asks": [],
                "valid": True,
                "ts": TS,
            }
            await c.send({"action": "unsubscribe", "symbols": [T1]})
            assert await c.recv() == {"type": "unsubscribed", "symbols": [T1]}


T0_MS = 1_784_557_805_000


async def test_unsubscribe_stops_updates_and_subscribe_adds(tmp_path: Path) -> None:
    async with nats_server(tmp_path / "nats") as srv, publisher(srv.url) as pub:
        await pub.publish(snapshot(T1, [(10 * CENT, E6)], []), snapshot(T2, [(20 * CENT, E6)], []))
        async with running_gateway(gateway_settings(srv.url)) as gw, Client.connect(gw.ws) as c:
            await c.send({"action": "subscribe", "symbols": [T1, T2]})
            await c.recv_until(lambda m: m["type"] == "orderbook" and m["ticker"] == T2)
            assert [m["type"] for m in c.messages] == ["subscribed", "orderbook", "orderbook"]
            await c.send({"action": "unsubscribe", "symbols": [T1]})
            await c.recv_until(lambda m: m["type"] == "unsubscribed")
            await pub.publish(trade(T1, 11 * CENT, E6, seq=1), trade(T2, 21 * CENT, 2 * E6, seq=2))
            got = await c.recv_until(lambda m: m["type"] == "trade")
            assert got["ticker"] == T2 and got["size"] == 2
            assert c.of("trade", T1) == []
            active = "ssmd_gateway_subscriptions_active"
            assert gw.gw.metrics.value(active, symbol=T2) == 1
            assert gw.gw.metrics.value(active, symbol=T1) == 0
            # Subscribing again answers with the current book, then live updates.
            await c.send({"action": "subscribe", "symbols": [T1]})
            await c.recv_until(lambda m: m["type"] == "subscribed")
            again = await c.recv()
            assert again["type"] == "orderbook" and again["bids"] == [[0.1, 1]]
            await pub.publish(trade(T1, 12 * CENT, E6, seq=3))
            assert (await c.recv_until(lambda m: m["type"] == "trade"))["ticker"] == T1


async def test_a_dotted_ticker_through_subject_escaping(tmp_path: Path) -> None:
    async with nats_server(tmp_path / "nats") as srv, publisher(srv.url) as pub:
        await pub.publish(snapshot(DOTTED, [(31 * CENT, 7 * E6)], [(60 * CENT, 3 * E6)]))
        async with (
            running_gateway(gateway_settings(srv.url)) as gw,
            Client.connect(f"{gw.ws}?symbols={DOTTED}") as c,
        ):
            assert await c.recv() == {"type": "subscribed", "symbols": [DOTTED]}
            book = await c.recv()
            assert book["ticker"] == DOTTED and book["bids"] == [[0.31, 7]]
            assert book["asks"] == [[0.4, 3]]
            await pub.publish(trade(DOTTED, 31 * CENT, 4 * E6, "yes", seq=5))
            got = await c.recv()
            assert got["type"] == "trade" and got["ticker"] == DOTTED
            r = await gw.aget(f"/v1/markets/{DOTTED}/trades")
            assert r.status_code == 200 and r.json()["trades"][0]["ticker"] == DOTTED


async def test_one_thousand_symbols_on_one_connection(tmp_path: Path) -> None:
    names = tickers(1000, "KXMANY-26JUL20-T")
    async with nats_server(tmp_path / "nats") as srv, publisher(srv.url) as pub:
        await pub.publish_fast(
            [
                snapshot(t, [((i % 98 + 1) * CENT, (i + 1) * E6)], [], sid=i + 1)
                for i, t in enumerate(names)
            ]
        )
        async with running_gateway(gateway_settings(srv.url)) as gw, Client.connect(gw.ws) as c:
            await c.send({"action": "subscribe", "symbols": names})
            assert await c.recv() == {"type": "subscribed", "symbols": names}
            for _ in names:
                await c.recv()
            books = {m["ticker"]: m for m in c.of("orderbook")}
            assert len(books) == 1000
            for i, t in enumerate(names):
                assert books[t]["bids"] == [[round((i % 98 + 1) / 100, 6), i + 1]]
            await pub.publish(trade(names[999], 50 * CENT, E6, seq=1))
            assert (await c.recv())["ticker"] == names[999]
            assert len(gw.gw.hub.subs) == 1000


async def test_bad_messages_get_errors_and_the_connection_stays(tmp_path: Path) -> None:
    async with nats_server(tmp_path / "nats") as srv, publisher(srv.url) as pub:
        await pub.publish(snapshot(T1, [(10 * CENT, E6)], []), snapshot(T2, [(20 * CENT, E6)], []))
        settings = gateway_settings(srv.url, max_symbols=2)
        async with running_gateway(settings) as gw, Client.connect(gw.ws) as c:
            cases: list[tuple[Any, str]] = [
                ("{not json", "bad_json"),
                ("[1, 2]", "bad_request"),
                ({"symbols": [T1]}, "bad_request"),
                ({"action": "buy", "symbols": [T1]}, "unknown_action"),
                ({"action": 7}, "unknown_action"),
                ({"action": "subscribe"}, "bad_request"),
                ({"action": "subscribe", "symbols": "T1"}, "bad_request"),
                ({"action": "subscribe", "symbols": []}, "bad_request"),
                ({"action": "subscribe", "symbols": [1]}, "bad_request"),
                ({"action": "unsubscribe", "symbols": None}, "bad_request"),
                ({"action": "subscribe", "symbols": ["NOPE-1"]}, "unknown_symbol"),
                ({"action": "subscribe", "symbols": [T1, T2, "NOPE-1", "NOPE-2"]}, ""),
            ]
            for message, code in cases[:-1]:
                await c.send(message)
                got = await c.recv()
                assert got["type"] == "error" and got["code"] == code, (message, got)
                assert set(got) == {"type", "code", "message"} and got["message"]
            await c.conn.send(b"\x00binary")
            got = await c.recv()
            assert (got["type"], got["code"]) == ("error", "bad_request")
            # Some unknown: the known ones are subscribed, the unknown ones reported.
            await c.send(cases[-1][0])
            assert await c.recv() == {"type": "subscribed", "symbols": [T1, T2]}
            err = await c.recv()
            assert err["code"] == "unknown_symbol" and "NOPE-1" in err["message"]
            assert "NOPE-2" in err["message"] and T1 not in err["message"]
            assert {(await c.recv())["ticker"], (await c.recv())["ticker"]} == {T1, T2}
            # Over the per-connection limit: nothing subscribed.
            await pub.publish(snapshot("INXD-25-B4200", [(30 * CENT, E6)], [], sid=3))
            # A market the gateway knows, so that the limit is what refuses it.
            await until(lambda: gw.gw.feed.state.knows("INXD-25-B4200"), what="the new market")
            await c.send({"action": "subscribe", "symbols": ["INXD-25-B4200"]})
            got = await c.recv()
            assert got["code"] == "too_many_symbols"
            assert "INXD-25-B4200" not in gw.gw.hub.subs
            # Still open and working.
            await pub.publish(trade(T2, 21 * CENT, E6, seq=1))
            assert (await c.recv())["type"] == "trade"
            text = gw.gw.metrics.expose()
            for code in ("bad_json", "unknown_action", "bad_request", "unknown_symbol"):
                assert f'ssmd_gateway_client_errors_total{{code="{code}"}}' in text


def spot_book(
    symbol: str,
    bids: list[tuple[int, int]],
    asks: list[tuple[int, int]],
    *,
    snapshot: bool,
    ok: bool = True,
) -> dict[str, Any]:
    """A Kraken book message's record: levels in units of 10^-2 (price) and 10^-8 (qty)."""
    return {
        "kind": "spot_book",
        "ticker": symbol,
        "snapshot": snapshot,
        "bids": bids,
        "asks": asks,
        "price_decimals": 2,
        "qty_decimals": 8,
        "checksum": 0,
        "checksum_ok": ok,
        "depth": 10,
        "conn_id": 1,
        "sid": 1,
    }


async def test_a_spot_pair_streams_its_book_and_the_takers_side(tmp_path: Path) -> None:
    pair = "BTC/USD"
    async with nats_server(tmp_path / "nats") as srv, publisher(srv.url) as pub:
        await pub.publish(
            spot_book(pair, [(6_500_010, 150_000_000)], [(6_500_100, 2_500_000)], snapshot=True)
        )
        async with (
            running_gateway(gateway_settings(srv.url)) as gw,
            Client.connect(f"{gw.ws}?symbols={pair}") as c,
        ):
            assert await c.recv() == {"type": "subscribed", "symbols": [pair]}
            book = await c.recv()
            assert book["bids"] == [[65000.1, 1.5]] and book["asks"] == [[65001.0, 0.025]]
            assert book["valid"] is True
            await pub.publish(spot_book(pair, [(6_500_020, 10_000_000)], [], snapshot=False))
            book = await c.recv()
            assert book["bids"] == [[65000.2, 0.1], [65000.1, 1.5]], book
            trade = {
                "kind": "trade",
                "spot": True,
                "ticker": pair,
                "trade_id": "77",
                "price_units": 6_500_100,
                "size_units": 2_500_000,
                "price_decimals": 2,
                "size_decimals": 8,
                "side": "sell",
                "conn_id": 1,
                "sid": 2,
            }
            await pub.publish(trade)
            got = await c.recv_until(lambda m: m["type"] == "trade")
            assert (got["price"], got["size"], got["side"]) == (65001.0, 0.025, "sell")
            # A checksum mismatch makes the book invalid until a snapshot checks out.
            await pub.publish(spot_book(pair, [(6_500_030, 1)], [], snapshot=False, ok=False))
            bad = await c.recv_until(lambda m: m["type"] == "orderbook")
            assert bad["valid"] is False
