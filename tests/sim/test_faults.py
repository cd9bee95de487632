"""Every fault appears when it is scheduled and only then.

`_session` runs the same client session against a simulator: it subscribes, floods a
few commands, streams eight seconds of clock while pinging the server, reconnects twice
and makes three REST calls; `_symptoms` names every anomaly the client saw. A baseline
run without a scenario shows none; each scheduled fault shows exactly its own.
"""

from __future__ import annotations

import asyncio
import collections
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from _support.simhelp import Client, Closed, client, manual_sim, wait_for
from ssmd.exceptions import ConfigError
from ssmd.sim import DEMO_PRIVATE_KEY_PATH, CommandRate, Fault, FaultKind, Scenario, Simulator
from ssmd.venues.kalshi import auth

PING = 2.0  # server heartbeat interval in these tests
DATA = {"orderbook_snapshot", "orderbook_delta", "trade"}
KNOWN = DATA | {"ticker", "subscribed", "ok", "error"}


@dataclass
class Observed:
    frames: list[dict[str, object]] = field(default_factory=list)
    bad: int = 0
    abrupt_close: bool = False
    missed_pongs: int = 0
    unanswered: int = 0
    server_pings: list[float] = field(default_factory=list)
    handshakes: list[int] = field(default_factory=list)
    rest: list[int] = field(default_factory=list)


def _seq_problems(frames: list[dict[str, object]]) -> tuple[int, int, int]:
    gaps = dups = back = 0
    last: dict[object, int] = {}
    for f in frames:
        if f.get("type") in DATA:
            sid, seq = f["sid"], f["seq"]
            assert isinstance(seq, int)
            if sid in last:
                if seq == last[sid]:
                    dups += 1
                elif seq < last[sid]:
                    back += 1
                elif seq > last[sid] + 1:
                    gaps += 1
            last[sid] = max(seq, last.get(sid, seq))
    return gaps, dups, back


def _symptoms(o: Observed) -> set[str]:
    gaps, dups, back = _seq_problems(o.frames)
    types = [f.get("type") for f in o.frames]
    codes = {
        f["msg"]["code"]  # type: ignore[index]
        for f in o.frames
        if f.get("type") == "error"
    }
    out = {f"error_{c}" for c in codes}
    if gaps:
        out.add("seq_gap")
    if dups:
        out.add("seq_duplicate")
    if back:
        out.add("seq_back")
    if o.bad:
        out.add("malformed")
    bodies = [f.get("msg") for f in o.frames]
    if any(isinstance(b, dict) and b.get("market_ticker") == "" for b in bodies):
        out.add("empty_ticker")
    if any(t not in KNOWN for t in types):
        out.add("unknown_type")
    if types.index("subscribed") > types.index("orderbook_snapshot"):
        out.add("late_ack")
    if o.abrupt_close:
        out.add("abrupt_close")
    if o.missed_pongs:
        out.add("missed_pongs")
    if o.unanswered:
        out.add("unanswered_commands")
    if any(b - a > PING for a, b in zip(o.server_pings, o.server_pings[1:], strict=False)):
        out.add("server_ping_gap")
    if 401 in o.handshakes:
        out.add("http_401")
    if 429 in o.rest:
        out.add("rest_429")
    if 401 in o.rest:
        out.add("rest_401")
    # The two subscribes (ids 1 and 2) are answered once per channel they name.
    answers = collections.Counter(f.get("id") for f in o.frames)
    if answers[1] < 2 or answers[2] < 1:
        out.add("lost_reply")
    return out


def _rest_get(url: str) -> int:
    try:
        with urllib.request.urlopen(url) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        body = orjson.loads(e.read())
        if e.code == 401:
            assert body["error"]["code"] == "authentication_failed"
            return 401
        assert body == {"error": "too many requests"}
        assert e.headers.get("Retry-After") is None
        return int(e.code)


async def _stream(sim: Simulator, c: Client, o: Observed) -> None:
    clock = sim.clock
    ts = sorted(m.ticker for m in sim.universe.active())
    await c.send("subscribe", {"channels": ["orderbook_delta", "trade"], "market_tickers": ts[:6]})
    await c.send("subscribe", {"channels": ["ticker"], "market_tickers": ts[:10]})
    for _ in range(3):
        await c.send("list_subscriptions")
    await c.settle(sim)
    markers: list[tuple[bytes, int]] = []
    try:
        for step in range(1, 9):
            clock.advance(1.0)  # type: ignore[attr-defined]
            payload = b"ping-%d" % step
            c.ws.ping(payload)
            markers.append((payload, await c.send("list_subscriptions")))
            await c.settle(sim)
    finally:
        answered = {f.get("id") for f in c.frames}
        last = max((cid for _, cid in markers if cid in answered), default=0)
        # a pong or a reply that never came although a later reply did was lost
        o.missed_pongs = sum(1 for p, cid in markers if cid <= last and p not in c.pongs)
        o.unanswered = sum(1 for _, cid in markers if cid < last and cid not in answered)


async def _session(scenario: Scenario | None) -> tuple[Observed, Simulator]:
    sim, _clock = manual_sim(seed=4, scenario=scenario, ping_interval=PING)
    o = Observed()
    async with sim:
        c: Client | None = None
        try:
            async with client(sim) as c:
                await _stream(sim, c, o)
        except Closed as exc:
            o.abrupt_close = exc.code is None
        assert c is not None
        o.frames, o.bad = c.frames, len(c.bad)
        o.server_pings = [t - sim.started_at for t, data in c.server_pings]
        assert {data for _, data in c.server_pings} <= {b"heartbeat"}
        for _ in range(2):
            try:
                async with connect(sim.ws_url, additional_headers=sim.auth_headers()):
                    o.handshakes.append(101)
            except InvalidStatus as exc:
                o.handshakes.append(exc.response.status_code)
        for _ in range(3):
            o.rest.append(await asyncio.to_thread(_rest_get, sim.rest_url + "/series"))
    return o, sim


FAULTS: list[tuple[str, Scenario, set[str]]] = [
    ("seq_gap", Scenario([Fault(FaultKind.SEQ_GAP, after_frames=40, connection=1)]), {"seq_gap"}),
    (
        "seq_duplicate",
        Scenario([Fault(FaultKind.SEQ_DUPLICATE, after_frames=40)]),
        {"seq_duplicate"},
    ),
    (
        "seq_reorder",
        Scenario([Fault(FaultKind.SEQ_REORDER, after_frames=40)]),
        {"seq_gap", "seq_back"},
    ),
    (
        "empty_ticker",
        Scenario([Fault(FaultKind.EMPTY_TICKER, after_frames=40, channel="trade")]),
        {"empty_ticker"},
    ),
    ("malformed_frame", Scenario([Fault(FaultKind.MALFORMED_FRAME, at=2.5)]), {"malformed"}),
    ("unknown_type", Scenario([Fault(FaultKind.UNKNOWN_TYPE, at=2.5)]), {"unknown_type"}),
    (
        "buffer_overflow",
        Scenario([Fault(FaultKind.BUFFER_OVERFLOW, after_frames=40, channel="trade")]),
        {"error_25"},
    ),
    ("market_cap", Scenario(market_cap=6), {"error_26"}),
    ("command_rate", Scenario(command_rate=CommandRate(6, 60.0)), {"error_27"}),
    ("slow_ack", Scenario(ack_delay=1.0), {"late_ack"}),
    (
        "withhold_pongs",
        Scenario([Fault(FaultKind.WITHHOLD_PONGS, at=2.0, duration=3.0)]),
        {"missed_pongs"},
    ),
    (
        "stall",
        Scenario([Fault(FaultKind.STALL, at=3.0, duration=3.0)]),
        {"seq_gap", "missed_pongs", "unanswered_commands", "server_ping_gap"},
    ),
    ("disconnect", Scenario([Fault(FaultKind.DISCONNECT, at=4.5)]), {"abrupt_close"}),
    ("reject_auth", Scenario([Fault(FaultKind.REJECT_AUTH, connection=2)]), {"http_401"}),
    ("rest_429", Scenario([Fault(FaultKind.REST_429, at=1.0, count=2)]), {"rest_429"}),
    ("rest_401", Scenario([Fault(FaultKind.REST_401, at=1.0, count=2)]), {"rest_401"}),
    (
        "drop_reply",
        Scenario([Fault(FaultKind.DROP_REPLY, at=0.0, channel="ticker")]),
        {"lost_reply"},
    ),
]


async def test_baseline_without_a_scenario_has_no_fault() -> None:
    o, sim = await _session(None)
    assert _symptoms(o) == set()
    assert _seq_problems(o.frames) == (0, 0, 0)
    assert o.server_pings == [2.0, 4.0, 6.0, 8.0]
    assert o.handshakes == [101, 101] and o.rest == [200, 200, 200]
    assert len([f for f in o.frames if f.get("type") in DATA]) > 100
    assert sim.truth.faults == []
    assert sim.truth.rest_429 == 0 and sim.truth.rejected_handshakes == 0


@pytest.mark.parametrize(("name", "scenario", "expected"), FAULTS, ids=[f[0] for f in FAULTS])
async def test_fault_appears_when_scheduled(
    name: str, scenario: Scenario, expected: set[str]
) -> None:
    o, sim = await _session(scenario)
    assert _symptoms(o) == expected
    kinds = {f.kind for f in sim.truth.faults}
    for f in scenario.faults:
        assert {f.kind.value, f.kind.value + "_armed"} & kinds
    if name == "seq_gap":
        assert _seq_problems(o.frames) == (1, 0, 0)
    elif name == "buffer_overflow":
        err = next(f for f in o.frames if f.get("type") == "error")
        dead = err["sid"]
        assert not [f for f in o.frames[o.frames.index(err) + 1 :] if f.get("sid") == dead]
    elif name in ("rest_429", "rest_401"):
        assert o.rest == [int(name[-3:])] * 2 + [200]
    elif name == "drop_reply":
        # The reply is lost, not the command: the ticker channel is subscribed.
        assert [f["msg"]["channel"] for f in o.frames if f.get("type") == "subscribed"] == [
            "orderbook_delta",
            "trade",
        ]
        assert any(f.get("type") == "ticker" for f in o.frames)
    elif name == "reject_auth":
        assert o.handshakes == [401, 101]  # only the scheduled handshake is refused
    elif name == "command_rate":
        codes = [f["msg"]["code"] for f in o.frames if f.get("type") == "error"]  # type: ignore[index]
        assert codes == [27] * (2 + 3 + 8 - 6)


async def test_stall_is_silent_loses_what_it_would_send_and_leaves_a_seq_gap() -> None:
    sim, clock = manual_sim(
        seed=4,
        scenario=Scenario([Fault(FaultKind.STALL, at=3.0, duration=3.0)]),
        ping_interval=PING,
    )
    async with sim, client(sim) as c:
        ts = sorted(m.ticker for m in sim.universe.active())
        await c.send("subscribe", {"channels": ["orderbook_delta"], "market_tickers": ts[:6]})
        await c.until(lambda fs: len(c.of("orderbook_snapshot")) == 6)
        for _ in range(3):
            clock.advance(1.0)
            await c.settle(sim)
        assert sim.connections[1].stalled  # stalled from t=3
        seqs_before = [f["seq"] for f in c.frames if f["type"].startswith("orderbook")]
        n_frames, n_pings = len(c.raw), len(c.server_pings)
        lost_ping = c.ws.ping(b"during")
        await c.send("list_subscriptions")  # lost as well
        for _ in range(2):  # t=4 and t=5: order flow goes on, the link is dead
            clock.advance(1.0)
            await c.settle(sim)
        assert len(c.raw) == n_frames and len(c.server_pings) == n_pings  # nothing at all
        assert c.ws.open  # and no close
        assert sim.connections[1].dropped_while_stalled > 0
        clock.advance(1.0)  # t=6: the stall ends
        await c.settle(sim)
        assert not sim.connections[1].stalled
        # the first ping after the stall is answered; the one sent during it never is
        after = c.ws.ping(b"after")
        assert after is not None and lost_ping is not None
        async with asyncio.timeout(5):
            await after
        assert b"after" in c.pongs and b"during" not in c.pongs
        assert lost_ping.done()  # a later pong acknowledges earlier pings, client-side
        clock.advance(1.0)
        await c.settle(sim)
        seqs_after = [f["seq"] for f in c.frames if f["type"].startswith("orderbook")][
            len(seqs_before) :
        ]
        assert seqs_after, "data flows again after the stall"
        assert seqs_after[0] > seqs_before[-1] + 1  # the lost frames leave a gap on the sid
        assert seqs_after == list(range(seqs_after[0], seqs_after[0] + len(seqs_after)))
        assert seqs_after[0] - seqs_before[-1] - 1 == sim.connections[1].dropped_while_stalled
        assert [t - sim.started_at for t, _ in c.server_pings] == [2.0, 6.0]
        assert c.of("ok") == []  # the command sent during the stall got no reply
    assert [f.kind for f in sim.truth.faults] == ["stall", "stall_end"]


async def _pong_session(pong_timeout: float | None, answer: bool) -> tuple[Simulator, Client, bool]:
    sim, clock = manual_sim(ping_interval=10.0, pong_timeout=pong_timeout)
    closed_by_server = False
    async with sim, client(sim) as c:
        c.answer_pings = answer
        for k in range(1, 4):  # heartbeats at 10, 20, 30
            clock.set(sim.started_at + 10.0 * k)
            await wait_for(lambda k=k: len(c.server_pings) >= (k if answer else 1))
            if answer:
                await wait_for(lambda k=k: sim.connections[1].pongs_received == k)
            try:
                clock.set(sim.started_at + 10.0 * k + 5.0)  # this heartbeat's pong deadline
                await c.send("list_subscriptions")
                await c.until(lambda fs, k=k: len(c.of("ok")) == k)
            except Closed as exc:
                assert exc.code == 1011
                closed_by_server = True
                break
    return sim, c, closed_by_server


async def test_pong_timeout_closes_only_when_configured_and_pongs_stop() -> None:
    sim, c, closed = await _pong_session(5.0, answer=False)
    assert closed and [f.kind for f in sim.truth.faults] == ["pong_timeout_close"]
    assert len(c.server_pings) == 1
    sim, c, closed = await _pong_session(5.0, answer=True)
    assert not closed and sim.truth.faults == [] and len(c.server_pings) == 3
    sim, c, closed = await _pong_session(None, answer=False)
    assert not closed and sim.truth.faults == []
    assert len(c.server_pings) == 1  # one outstanding heartbeat at a time


async def _handshake(sim: Simulator, headers: dict[str, str] | None = None) -> int:
    try:
        async with connect(
            sim.ws_url, additional_headers=sim.auth_headers() if headers is None else headers
        ):
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


@pytest.mark.parametrize("cap", [2, None])
async def test_connection_cap_per_key(cap: int | None) -> None:
    sim, _ = manual_sim(**({"max_connections_per_key": cap} if cap else {}))
    async with sim, client(sim) as a, client(sim):
        await wait_for(lambda: len(sim.connections) == 2)
        third = await _handshake(sim)
        if cap is None:
            assert third == 101 and sim.truth.rejected_handshakes == 0
            return
        assert third == 429 and sim.truth.rejected_handshakes == 1
        await a.ws.close(1000, "")
        await wait_for(lambda: len(sim.connections) == 1)
        assert await _handshake(sim) == 101  # room again once one closed


@pytest.mark.parametrize("skew", [5.0, None])
async def test_clock_skew_window(skew: float | None) -> None:
    key = auth.load_private_key(DEMO_PRIVATE_KEY_PATH)
    sim, clock = manual_sim(max_clock_skew=skew)
    async with sim:

        def headers(offset: float) -> dict[str, str]:
            ms = int((clock.now() + offset) * 1000)
            return auth.auth_headers(sim.key_id, key, "GET", "/trade-api/ws/v2", now_ms=ms)

        statuses = [await _handshake(sim, headers(off)) for off in (-3.0, 3.0, -10.0, 3600.0)]
    if skew is None:
        assert statuses == [101, 101, 101, 101]
        assert sim.truth.rejected_handshakes == 0
    else:
        assert statuses == [101, 101, 401, 401]
        assert sim.truth.rejected_handshakes == 2


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


async def test_drop_reply_loses_the_reply_to_an_update_not_the_update() -> None:
    sim, _ = manual_sim(seed=4)
    async with sim, client(sim) as c:
        ts = sorted(m.ticker for m in sim.universe.active())
        await c.send("subscribe", {"channels": ["orderbook_delta"], "market_tickers": ts[:1]})
        await c.settle(sim)
        sid = c.of("subscribed")[0]["msg"]["sid"]
        sim.inject(Fault(FaultKind.DROP_REPLY, at=0, channel="orderbook_delta"))
        add = {"sids": [sid], "market_tickers": ts[1:2], "action": "add_markets"}
        lost = await c.send("update_subscription", add)
        again = await c.send("update_subscription", add)
        await c.settle(sim)
    assert not [f for f in c.frames if f.get("id") == lost]
    (ok,) = [f for f in c.frames if f.get("id") == again]
    assert ok["type"] == "ok" and ok["msg"]["market_tickers"] == ts[:2]
    # The lost one was carried out: its market's snapshot came, and only once.
    assert [f["msg"]["market_ticker"] for f in c.of("orderbook_snapshot")] == ts[:2]
    assert [f.kind for f in sim.truth.faults] == ["drop_reply_armed", "drop_reply"]


async def test_already_subscribed_answers_error_6_and_subscribes_all_the_same() -> None:
    sim, _ = manual_sim(seed=4)
    async with sim, client(sim) as c:
        ts = sorted(m.ticker for m in sim.universe.active())
        await c.send("subscribe", {"channels": ["orderbook_delta"], "market_tickers": ts[:2]})
        sim.inject(Fault(FaultKind.ALREADY_SUBSCRIBED, at=0, channel="orderbook_delta"))
        second = await c.send(
            "subscribe", {"channels": ["orderbook_delta"], "market_tickers": ts[1:3]}
        )
        third = await c.send(
            "subscribe", {"channels": ["orderbook_delta"], "market_tickers": ts[:3]}
        )
        listed = await c.send("list_subscriptions")
        await c.settle(sim)
    (error,) = [f for f in c.frames if f.get("id") == second]
    assert error == {"id": second, "type": "error", "msg": {"code": 6, "msg": "Already subscribed"}}
    (ok,) = [f for f in c.frames if f.get("id") == third]  # the fault is spent: idempotent again
    assert ok["type"] == "ok" and ok["msg"]["market_tickers"] == ts[:3]
    assert [f["msg"]["market_ticker"] for f in c.of("orderbook_snapshot")] == ts[:3]
    (subs,) = [f for f in c.frames if f.get("id") == listed]
    assert subs["msg"] == [{"channel": "orderbook_delta", "sid": ok["sid"]}]
    assert [f.kind for f in sim.truth.faults] == ["already_subscribed_armed", "already_subscribed"]


async def test_unknown_sid_forgets_the_subscription_and_answers_error_7() -> None:
    """The server loses the orderbook_delta sid: the add_markets on it gets error 7, as
    does anything later on that sid; the channel's frames stop, the trade sid's go on,
    and a subscribe of the channel makes a new sid."""
    sim, clock = manual_sim(seed=4)
    async with sim, client(sim) as c:
        ts = sorted(m.ticker for m in sim.universe.active())
        await c.send(
            "subscribe", {"channels": ["orderbook_delta", "trade"], "market_tickers": ts[:2]}
        )
        await c.settle(sim)
        book, trade = (f["msg"]["sid"] for f in c.of("subscribed"))
        sim.inject(Fault(FaultKind.UNKNOWN_SID, at=0, channel="orderbook_delta"))
        add = {"sids": [trade], "market_tickers": ts[2:3], "action": "add_markets"}
        kept = await c.send("update_subscription", add)  # another channel: not lost
        lost = await c.send("update_subscription", {**add, "sids": [book]})
        gone = await c.send("unsubscribe", {"sids": [book]})  # the fault is spent: still gone
        await c.settle(sim)
        before = len(c.frames)
        clock.advance(2.0)
        await c.settle(sim)
        later = c.frames[before:]
        again = await c.send(
            "subscribe", {"channels": ["orderbook_delta"], "market_tickers": ts[:3]}
        )
        await c.settle(sim)
    (ok,) = [f for f in c.frames if f.get("id") == kept]
    assert ok["type"] == "ok"
    unknown = {"type": "error", "msg": {"code": 7, "msg": "Unknown subscription ID"}}
    assert [f for f in c.frames if f.get("id") == lost] == [{"id": lost, **unknown}]
    assert [f for f in c.frames if f.get("id") == gone] == [{"id": gone, **unknown}]
    assert any(f.get("sid") == trade for f in later)
    assert not [f for f in later if f.get("sid") == book]
    (fresh,) = [f for f in c.frames if f.get("id") == again]
    assert fresh["type"] == "subscribed" and fresh["msg"]["sid"] not in (book, trade)
    assert [f.kind for f in sim.truth.faults] == ["unknown_sid_armed", "unknown_sid"]


@pytest.mark.parametrize("kind", ["rest_401", "drop_reply", "already_subscribed", "unknown_sid"])
def test_armed_faults_are_triggered_by_at_only(kind: str) -> None:
    with pytest.raises(ValueError, match="triggered by at only"):
        Fault(FaultKind(kind), after_frames=10)
    Scenario.from_dict({"faults": [{"kind": kind, "at": 1, "channel": "trade", "count": 2}]})
