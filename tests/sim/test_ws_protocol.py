from __future__ import annotations

from decimal import Decimal

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from _support.simhelp import apply_book, as_decimal, client, manual_sim
from ssmd.sim import Simulator
from ssmd.venues.kalshi import auth


async def test_handshake_requires_valid_signature() -> None:
    sim, _ = manual_sim()
    async with sim:
        good = sim.auth_headers()
        bad = dict(good, **{auth.HEADER_TIMESTAMP: str(int(good[auth.HEADER_TIMESTAMP]) + 1)})
        for headers in (
            {},
            bad,
            dict(good, **{auth.HEADER_KEY: "00000000-0000-4000-8000-000000000000"}),
        ):
            with pytest.raises(InvalidStatus) as exc:
                async with connect(sim.ws_url, additional_headers=headers):
                    pass
            assert exc.value.response.status_code == 401
        assert sim.truth.connections == {}  # no frames, no connection
        async with client(sim, good) as c:
            await c.send("list_subscriptions")
            await c.until(lambda fs: any(f["type"] == "ok" for f in fs))
        assert sim.truth.rejected_handshakes == 3


async def test_subscribe_snapshot_deltas_and_exact_book() -> None:
    sim, clock = manual_sim(seed=3)
    async with sim, client(sim) as c:
        tickers = await c.subscribe_all(sim)
        await c.drain(sim)
        subscribed = c.of("subscribed")
        assert sorted(f["msg"]["channel"] for f in subscribed) == [
            "orderbook_delta",
            "ticker",
            "trade",
        ]
        assert all(f["id"] == 1 for f in subscribed)
        assert len({f["msg"]["sid"] for f in subscribed}) == 3
        for _ in range(5):
            clock.advance(1.0)
            await c.drain(sim)
        # one sid per channel, seq contiguous per sid (ticker has none)
        by_sid: dict[int, list[int]] = {}
        for f in c.frames:
            if f["type"] in ("orderbook_snapshot", "orderbook_delta", "trade"):
                by_sid.setdefault(f["sid"], []).append(f["seq"])
            if f["type"] == "ticker":
                assert "seq" not in f
        for seqs in by_sid.values():
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        assert c.of("trade") and c.of("orderbook_delta")
        books = apply_book(c.frames)
        for t in tickers:
            truth = sim.book(t)
            assert books[t]["yes"] == as_decimal(truth.yes)
            assert books[t]["no"] == as_decimal(truth.no)
        # the last ticker of each market shows its top of book
        last = {f["msg"]["market_ticker"]: f["msg"] for f in c.of("ticker")}
        for t, msg in last.items():
            yes, no = books[t]["yes"], books[t]["no"]
            assert Decimal(msg["yes_bid_dollars"]) == (max(yes) if yes else Decimal(0))
            assert Decimal(msg["yes_ask_dollars"]) == (1 - max(no) if no else Decimal(1))
        # REST agrees with the WebSocket book
        status, body = sim.rest.handle(f"/trade-api/v2/markets/{tickers[0]}/orderbook", {})
        assert status == 200
        fp = orjson.loads(body)["orderbook_fp"]
        assert {Decimal(p): Decimal(s) for p, s in fp["yes_dollars"]} == books[tickers[0]]["yes"]
        # trades consume book levels: every trade is preceded by a negative delta at its price
        for i, f in enumerate(c.frames):
            if f["type"] == "trade":
                prev = [
                    g
                    for g in c.frames[:i]
                    if g["type"] == "orderbook_delta"
                    and g["msg"]["market_ticker"] == f["msg"]["market_ticker"]
                ][-1]["msg"]
                assert prev["delta_fp"].startswith("-")
                assert Decimal(prev["delta_fp"]) == -Decimal(f["msg"]["count_fp"])


async def test_commands_and_error_codes() -> None:
    sim, _ = manual_sim()
    async with sim:
        t1, t2, t3 = sorted(m.ticker for m in sim.universe.active())[:3]
        async with client(sim) as c:
            await c.send_raw("{not json")
            await c.send("frobnicate", {})
            await c.send("subscribe")
            await c.send("subscribe", {"market_tickers": [t1]})
            await c.send("subscribe", {"channels": ["nope"]})
            await c.send("subscribe", {"channels": ["orderbook_delta"]})
            await c.send(
                "subscribe", {"channels": ["orderbook_delta"], "market_tickers": ["KXNOPE-1"]}
            )
            await c.send("unsubscribe", {})
            await c.send("unsubscribe", {"sids": [99]})
            await c.send(
                "update_subscription",
                {"sids": [1, 2], "action": "add_markets", "market_tickers": [t1]},
            )
            await c.until(lambda fs: len(fs) >= 10)
            codes = [f["msg"]["code"] for f in c.frames]
            assert codes == [1, 5, 2, 3, 8, 14, 16, 4, 7, 12]
            assert "id" not in c.frames[0] and c.frames[1]["id"] == 1
            assert c.frames[6]["msg"]["market_ticker"] == "KXNOPE-1"
            c.frames.clear()
            sid_cmd = await c.send(
                "subscribe", {"channels": ["orderbook_delta"], "market_tickers": [t1]}
            )
            await c.until(lambda fs: any(f["type"] == "orderbook_snapshot" for f in fs))
            sid = c.of("subscribed")[0]["msg"]["sid"]
            assert c.of("subscribed")[0]["id"] == sid_cmd
            # idempotent re-subscribe: ok with the same sid and the merged list
            await c.send("subscribe", {"channels": ["orderbook_delta"], "market_tickers": [t1, t2]})
            await c.until(lambda fs: any(f["type"] == "ok" for f in fs))
            ok = c.of("ok")[0]
            assert (
                ok["sid"] == sid and ok["msg"]["market_tickers"] == sorted([t1, t2]) and "seq" in ok
            )
            await c.send("update_subscription", {"sid": sid, "market_tickers": [t3]})
            await c.send(
                "update_subscription", {"sids": [sid], "action": "bogus", "market_tickers": [t3]}
            )
            await c.send("update_subscription", {"sids": [sid], "action": "add_markets"})
            await c.until(lambda fs: len([f for f in fs if f["type"] == "error"]) == 3)
            assert [f["msg"]["code"] for f in c.of("error")] == [15, 13, 14]
            c.frames.clear()
            await c.send(
                "update_subscription",
                {"sids": [sid], "action": "add_markets", "market_tickers": [t3]},
            )
            await c.until(lambda fs: any(f["type"] == "ok" for f in fs))
            assert c.of("ok")[0]["msg"]["market_tickers"] == sorted([t1, t2, t3])
            assert [f["msg"]["market_ticker"] for f in c.of("orderbook_snapshot")] == [t3]
            c.frames.clear()
            await c.send(
                "update_subscription",
                {"sids": [sid], "action": "delete_markets", "market_tickers": [t2]},
            )
            await c.send(
                "update_subscription",
                {"sids": [sid], "action": "get_snapshot", "market_tickers": [t1]},
            )
            await c.until(lambda fs: len([f for f in fs if f["type"] == "ok"]) == 2)
            assert c.of("ok")[0]["msg"]["market_tickers"] == sorted([t1, t3])
            assert [f["msg"]["market_ticker"] for f in c.of("orderbook_snapshot")] == [t1]
            await c.send(
                "subscribe",
                {"channels": ["ticker", "market_lifecycle_v2"], "skip_ticker_ack": True},
            )
            await c.send("list_subscriptions")
            await c.until(
                lambda fs: any(f["type"] == "ok" and isinstance(f["msg"], list) for f in fs)
            )
            listing = next(f for f in c.of("ok") if isinstance(f["msg"], list))["msg"]
            assert [x["channel"] for x in listing] == [
                "orderbook_delta",
                "ticker",
                "market_lifecycle_v2",
            ]
            await c.send("unsubscribe", {"sids": [sid]})
            await c.until(lambda fs: any(f["type"] == "unsubscribed" for f in fs))
            unsub = c.of("unsubscribed")[0]
            assert unsub["sid"] == sid and isinstance(unsub["seq"], int)


async def test_new_connection_restarts_sids() -> None:
    sim, _ = manual_sim()
    async with sim:
        t = sorted(m.ticker for m in sim.universe.active())[0]
        sids = []
        for _ in range(2):
            async with client(sim) as c:
                await c.send(
                    "subscribe", {"channels": ["trade", "orderbook_delta"], "market_tickers": [t]}
                )
                await c.until(lambda fs: any(f["type"] == "orderbook_snapshot" for f in fs))
                sids.append(sorted(f["msg"]["sid"] for f in c.of("subscribed")))
                assert c.of("orderbook_snapshot")[0]["seq"] == 1
        assert sids[0] == sids[1] == [1, 2]


@pytest.mark.parametrize("era", ["A", "B", "C"])
async def test_era_shapes(era: str) -> None:
    sim, clock = manual_sim(era=era, seed=5)
    async with sim:
        async with client(sim) as c:
            await c.subscribe_all(sim)
            clock.advance(3.0)
            await c.until(
                lambda fs: (
                    any(f["type"] == "trade" for f in fs)
                    and any(f["type"] == "orderbook_delta" for f in fs)
                )
            )
        d = c.of("orderbook_delta")[0]["msg"]
        tr = c.of("trade")[0]["msg"]
        tk = c.of("ticker")[0]["msg"]
        snap = next(f["msg"] for f in c.of("orderbook_snapshot") if len(f["msg"]) > 2)
        if era == "A":
            assert (
                isinstance(d["price"], int)
                and isinstance(d["delta"], int)
                and "price_dollars" not in d
            )
            assert "count" in tr and "count_fp" not in tr and "Clock" in tk
            assert "yes" in snap and "yes_dollars_fp" not in snap
        elif era == "B":
            assert {"price", "price_dollars", "delta", "delta_fp"} <= set(d)
            assert {"yes_price", "yes_price_dollars", "count", "count_fp"} <= set(tr)
            assert "yes_dollars" in snap or "no_dollars" in snap
        else:
            assert "price" not in d and "delta" not in d and isinstance(d["ts_ms"], int)
            assert {"taker_outcome_side", "taker_book_side", "is_block_trade", "ts_ms"} <= set(tr)
            assert "count" not in tr and "yes_price" not in tr and "Clock" not in tk
            assert isinstance(tk["dollar_volume"], int) and isinstance(tk["time"], str)


async def test_era_switch_mid_stream_and_use_yes_price() -> None:
    sim, _clock = manual_sim(seed=9)
    async with sim:
        t = sorted(m.ticker for m in sim.universe.active())[0]
        async with client(sim) as c:
            await c.send(
                "subscribe",
                {"channels": ["orderbook_delta"], "market_tickers": [t], "use_yes_price": True},
            )
            await c.until(lambda fs: any(f["type"] == "orderbook_snapshot" for f in fs))
            snap = c.of("orderbook_snapshot")[0]["msg"]
            truth = sim.book(t)
            flipped = sorted((str(Decimal(1) - Decimal(p)), s) for p, s in truth.no)
            assert [(str(Decimal(p)), s) for p, s in snap.get("no_dollars_fp", [])] == [
                (str(Decimal(p)), s) for p, s in flipped
            ]
            sim.set_era("A")
            await c.send(
                "update_subscription",
                {"sids": [1], "action": "get_snapshot", "market_tickers": [t]},
            )
            await c.until(lambda fs: len(c.of("orderbook_snapshot")) == 2)
            assert "yes_dollars_fp" not in c.of("orderbook_snapshot")[1]["msg"]


async def test_same_seed_same_frames() -> None:
    async def run(seed: int) -> list[str]:
        sim, clock = manual_sim(seed=seed, rate=200.0)
        async with sim:
            tickers = sorted(m.ticker for m in sim.universe.active())
            async with client(sim) as c:
                await c.send(
                    "subscribe",
                    {
                        "channels": ["orderbook_delta", "trade", "ticker", "market_lifecycle_v2"],
                        "market_tickers": tickers,
                    },
                )
                await c.until(lambda fs: len(c.of("orderbook_snapshot")) == len(tickers))
                for _ in range(3):
                    clock.advance(1.0)
                    await c.drain(sim)
                return c.raw

    a, b, other = await run(11), await run(11), await run(12)
    assert len(a) > 300
    assert a == b
    assert a != other


async def test_wait_idle_after_a_step_shorter_than_one_action() -> None:
    """The flow sleeps until its next action; a clock step that stops short of it leaves
    nothing to do, so the simulator is idle at once (it used to wait out the timeout)."""
    sim, clock = manual_sim(rate=100.0)  # an action every 10 ms of clock
    async with sim, client(sim) as c:
        await c.send("subscribe", {"channels": ["trade"]})
        clock.advance(0.505)  # halfway between two actions
        await c.settle(sim)
        sent = sum(r.frames_sent for r in sim.truth.connections.values())
        clock.advance(0.002)
        await sim.wait_idle(2.0)
        clock.advance(0.002)  # 4 ms on: still no action due
        await sim.wait_idle(2.0)
        assert sum(r.frames_sent for r in sim.truth.connections.values()) == sent
        clock.advance(0.5)  # and the flow goes on from there
        await c.settle(sim)
    assert sum(r.frames_sent for r in sim.truth.connections.values()) > sent


async def test_rolling_15m_lifecycle() -> None:
    sim, clock = manual_sim(seed=2, rate=20.0)
    async with sim:
        async with client(sim) as c:
            await c.send("subscribe", {"channels": ["market_lifecycle_v2"]})
            await c.until(lambda fs: bool(c.of("subscribed")))
            for _ in range(20):  # 20 minutes of clock, one minute at a time
                clock.advance(60.0)
                await c.drain(sim)
        events = [
            (f["msg"]["market_ticker"], f["msg"]["event_type"]) for f in c.of("market_lifecycle_v2")
        ]
        kinds = {e for _, e in events}
        assert {"created", "determined", "settled", "metadata_updated"} <= kinds
        assert "activated" not in kinds  # opening at open_time is silent
        assert c.of("event_lifecycle")
        closing = [t for t, e in events if e == "determined" and "15M" in t]
        assert closing
        for t in closing:
            assert (t, "settled") in events
            assert events.index((t, "determined")) < events.index((t, "settled"))
        created = [
            f["msg"] for f in c.of("market_lifecycle_v2") if f["msg"]["event_type"] == "created"
        ]
        assert any(
            "15M" in m["market_ticker"] and m["open_ts"] > clock.now() for m in created
        )  # created ahead
        det = next(
            f["msg"] for f in c.of("market_lifecycle_v2") if f["msg"]["event_type"] == "determined"
        )
        assert isinstance(det["settlement_value"], str)
        assert any("." in t for t in sim.universe.markets)  # dotted ladder tickers


async def test_unauthenticated_mode_rejects_private_channels() -> None:
    async with Simulator(allow_unauthenticated=True, markets=20) as sim:
        t = sorted(m.ticker for m in sim.universe.active())[0]
        async with client(sim, {}) as c:
            await c.send(
                "subscribe", {"channels": ["orderbook_delta", "trade"], "market_tickers": [t]}
            )
            await c.until(
                lambda fs: (
                    len(fs) >= 2
                    and any(f["type"] == "subscribed" for f in fs)
                    and any(f["type"] == "error" for f in fs)
                )
            )
            assert c.of("error")[0]["msg"]["code"] == 9
            assert c.of("subscribed")[0]["msg"]["channel"] == "trade"
