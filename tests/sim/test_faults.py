from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from simhelp import Client, client, manual_sim
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from ssmd.exceptions import ConfigError
from ssmd.sim import CommandRate, Fault, FaultKind, Scenario, Simulator


async def _stream(sim: Simulator, c: Client, seconds: int = 3) -> None:
    tickers = sorted(m.ticker for m in sim.universe.active())
    await c.send("subscribe", {"channels": ["orderbook_delta", "trade"], "market_tickers": tickers})
    await c.until(
        lambda fs: len(c.of("orderbook_snapshot")) == len(tickers) and len(c.of("subscribed")) == 2
    )
    clock = sim.clock
    for _ in range(seconds):
        clock.advance(1.0)  # type: ignore[attr-defined]
        await c.drain(sim)


def _seq_problems(c: Client) -> tuple[int, int, int]:
    gaps = dups = back = 0
    last: dict[int, int] = {}
    for f in c.frames:
        if "seq" in f and f.get("type") not in ("ok", "unsubscribed"):
            sid, seq = f["sid"], f["seq"]
            if sid in last:
                if seq == last[sid]:
                    dups += 1
                elif seq < last[sid]:
                    back += 1
                elif seq > last[sid] + 1:
                    gaps += 1
            last[sid] = max(seq, last.get(sid, seq))
    return gaps, dups, back


async def test_no_fault_without_a_schedule() -> None:
    sim, _ = manual_sim(seed=4)
    async with sim, client(sim) as c:
        await _stream(sim, c, 4)
        assert not c.bad
        assert _seq_problems(c) == (0, 0, 0)
        assert {f["type"] for f in c.frames} <= {
            "subscribed",
            "orderbook_snapshot",
            "orderbook_delta",
            "trade",
        }
    assert sim.truth.faults == []


@pytest.mark.parametrize(
    ("kind", "expect"),
    [
        (FaultKind.SEQ_GAP, (1, 0, 0)),
        (FaultKind.SEQ_DUPLICATE, (0, 1, 0)),
        (FaultKind.SEQ_REORDER, (1, 0, 1)),
    ],
)
async def test_seq_faults(kind: FaultKind, expect: tuple[int, int, int]) -> None:
    sim, _ = manual_sim(seed=4, scenario=Scenario([Fault(kind, after_frames=120, connection=1)]))
    async with sim, client(sim) as c:
        await _stream(sim, c, 4)
    assert _seq_problems(c) == expect
    assert [f.kind for f in sim.truth.faults] == [kind.value]


@pytest.mark.parametrize(
    "kind", [FaultKind.MALFORMED_FRAME, FaultKind.UNKNOWN_TYPE, FaultKind.BUFFER_OVERFLOW]
)
async def test_frame_faults(kind: FaultKind) -> None:
    sim, _ = manual_sim(seed=4, scenario=Scenario([Fault(kind, after_frames=100)]))
    async with sim, client(sim) as c:
        await _stream(sim, c, 3)
    if kind is FaultKind.MALFORMED_FRAME:
        assert len(c.bad) == 1
    elif kind is FaultKind.UNKNOWN_TYPE:
        assert (
            len(
                [
                    f
                    for f in c.frames
                    if f["type"]
                    not in {"subscribed", "orderbook_snapshot", "orderbook_delta", "trade"}
                ]
            )
            == 1
        )
    else:
        err = c.of("error")
        assert [e["msg"]["code"] for e in err] == [25]
        dead = err[0]["sid"]
        idx = c.frames.index(err[0])
        assert not [f for f in c.frames[idx + 1 :] if f.get("sid") == dead]


async def test_disconnect_and_401_on_reconnect() -> None:
    scen = Scenario(
        [Fault(FaultKind.DISCONNECT, after_frames=50), Fault(FaultKind.REJECT_AUTH, connection=2)]
    )
    sim, _clock = manual_sim(scenario=scen)
    async with sim:
        with pytest.raises(ConnectionClosed) as exc:
            async with client(sim) as c:
                await _stream(sim, c, 3)
        assert exc.value.rcvd is None  # abrupt: no close frame
        with pytest.raises(InvalidStatus) as rej:
            async with connect(sim.ws_url, additional_headers=sim.auth_headers()):
                pass
        assert rej.value.response.status_code == 401
        async with client(sim) as c3:  # the third handshake is accepted again
            await c3.send("list_subscriptions")
            await c3.until(lambda fs: bool(fs))
    assert [f.kind for f in sim.truth.faults] == ["disconnect", "reject_auth"]


async def test_stall_is_half_open_then_resumes() -> None:
    sim, clock = manual_sim(
        scenario=Scenario([Fault(FaultKind.STALL, at=2.5, duration=2.0)]), ping_interval=1.0
    )
    async with sim, client(sim) as c:
        await _stream(sim, c, 2)
        before = len(c.frames)
        clock.advance(1.0)  # stall starts at +2.5
        await c.drain(sim)
        during = len(c.frames)
        pong = await c.ws.ping(b"x")
        clock.advance(1.0)
        await c.drain(sim)
        assert len(c.frames) == during and not pong.done()  # no data, no pongs, socket open
        clock.advance(1.0)  # stall over at +4.5
        await sim.wait_idle()
        async with asyncio.timeout(5):
            while sim.connections[1].stalled:
                await asyncio.sleep(0)
        clock.advance(1.0)
        await c.until(lambda fs: len(fs) > during)
        assert not pong.done()  # a pong withheld during the stall is lost, as on a dead link
        assert before > 0
    assert [f.kind for f in sim.truth.faults] == ["stall"]


async def test_withhold_pongs_keeps_data_flowing() -> None:
    sim, clock = manual_sim(scenario=Scenario([Fault(FaultKind.WITHHOLD_PONGS, after_frames=1)]))
    async with sim, client(sim) as c:
        await _stream(sim, c, 1)
        pong = await c.ws.ping(b"y")
        n = len(c.frames)
        clock.advance(1.0)
        await c.drain(sim)
        assert len(c.frames) > n and not pong.done()


async def test_server_pings_heartbeat() -> None:
    sim, clock = manual_sim(ping_interval=10.0)
    async with sim, client(sim) as c:
        await c.send("list_subscriptions")
        await c.until(lambda fs: bool(fs))
        got: list[bytes] = []
        c.ws.protocol.recv_frame  # noqa: B018
        original = c.ws.protocol.recv_frame

        def spy(frame):  # type: ignore[no-untyped-def]
            if frame.opcode.name == "PING":
                got.append(frame.data)
            original(frame)

        c.ws.protocol.recv_frame = spy  # type: ignore[method-assign]
        clock.advance(10.0)
        await c.drain(sim)
        await c.send("list_subscriptions")
        await c.until(lambda fs: len(fs) >= 2)
        assert got == [b"heartbeat"]


async def test_market_cap_command_rate_and_slow_ack() -> None:
    scen = Scenario(market_cap=3, command_rate=CommandRate(4, 10.0), ack_delay=1.0)
    sim, clock = manual_sim(scenario=scen)
    async with sim:
        ts = sorted(m.ticker for m in sim.universe.active())
        async with client(sim) as c:
            await c.send("subscribe", {"channels": ["orderbook_delta"], "market_tickers": ts[:4]})
            await c.until(lambda fs: bool(fs))
            assert c.frames[0]["msg"]["code"] == 26
            await c.send("subscribe", {"channels": ["orderbook_delta"], "market_tickers": ts[:2]})
            await c.until(lambda fs: len(c.of("orderbook_snapshot")) == 2)
            assert not c.of("subscribed")  # data before the acknowledgement
            clock.advance(1.0)
            await c.until(lambda fs: bool(c.of("subscribed")))
            assert c.frames.index(c.of("subscribed")[0]) > c.frames.index(
                c.of("orderbook_snapshot")[1]
            )
            await c.send(
                "update_subscription",
                {"sids": [1], "action": "add_markets", "market_tickers": ts[2:4]},
            )
            await c.send("list_subscriptions")
            await c.send("list_subscriptions")
            await c.until(lambda fs: len(c.of("error")) == 3)
            assert [e["msg"]["code"] for e in c.of("error")] == [26, 26, 27]


async def test_rest_429_burst_only_when_scheduled() -> None:
    import urllib.request

    sim, clock = manual_sim(
        scenario=Scenario([Fault(FaultKind.REST_429, at=1.0, count=2)]),
        rest_tokens_per_s=1e6,
        rest_bucket=1e6,
    )
    async with sim:

        def get() -> int:
            try:
                with urllib.request.urlopen(sim.rest_url + "/series") as r:
                    return int(r.status)
            except urllib.error.HTTPError as e:
                assert orjson.loads(e.read()) == {"error": "too many requests"}
                assert e.headers.get("Retry-After") is None
                return int(e.code)

        assert await asyncio.to_thread(get) == 200
        clock.advance(1.0)
        await sim.wait_idle()
        while not sim.truth.faults:
            await asyncio.sleep(0)
        codes = [await asyncio.to_thread(get) for _ in range(3)]
        assert codes == [429, 429, 200]


def test_scenario_yaml(tmp_path: Path) -> None:
    p = tmp_path / "s.yaml"
    p.write_text(
        "market_cap: 50\ncommand_rate: {max_commands: 5, per_seconds: 1}\nack_delay: 2\n"
        "faults:\n  - {kind: seq_gap, after_frames: 500, connection: 1}\n  - {kind: disconnect, at: 30}\n"
        "  - {kind: reject_auth, connection: 2, count: 2}\n"
    )
    s = Scenario.load(p)
    assert s.market_cap == 50 and s.command_rate == CommandRate(5, 1.0) and s.ack_delay == 2.0
    assert [f.kind for f in s.faults] == [
        FaultKind.SEQ_GAP,
        FaultKind.DISCONNECT,
        FaultKind.REJECT_AUTH,
    ]
    p.write_text("faults:\n  - {kind: seq_gap}\n")
    with pytest.raises(ConfigError, match=r"faults\[0\]"):
        Scenario.load(p)
