"""Shard groups: the selection split across connector processes, each market in exactly
one group, stable as markets come and go; each group its own identity; a dead group's
markets get a gap of their own, and its replacement picks them up."""

from __future__ import annotations

import os
import random
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from _support import ROOT
from _support.chaosproc import (
    ENV,
    FEED,
    SSMD,
    STREAM,
    Component,
    SimProcess,
    environment_yaml,
    until,
)
from _support.connfix import manual_sim, open_markets, settings_for
from ssmd import core
from ssmd.archiver.gaps import compute_gaps
from ssmd.bus import subjects
from ssmd.config.models.environment import Symbols
from ssmd.connector.groups import GROUP_STRIDE, ShardGroup, group_key, group_of
from ssmd.connector.runner import Connector
from ssmd.connector.selection import Selection
from ssmd.exceptions import ConfigError
from ssmd.testing.connector import tickers_symbols
from ssmd.testing.nats import NatsServer, client, nats_server, read_stream
from ssmd.venues.kalshi import auth
from ssmd.venues.kalshi.rest import RestClient
from ssmd.venues.kalshi.ws import Credentials

S = 1_000_000_000


def tickers(n: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return [f"KX{rng.randrange(10**6)}-{i}" for i in range(n)]


# ---- the split -----------------------------------------------------------------------------


def test_every_market_in_exactly_one_group() -> None:
    ts = tickers(3000)
    for n in (1, 2, 3, 7):
        groups = [ShardGroup(i, n) for i in range(n)]
        owners = {t: [g.index for g in groups if g.owns(t)] for t in ts}
        assert all(len(o) == 1 for o in owners.values())
        sizes = [sum(1 for o in owners.values() if o == [i]) for i in range(n)]
        # a hash spreads them: no group gets far more than its share
        assert max(sizes) < 1.25 * len(ts) / n, sizes


def test_a_markets_group_depends_on_its_ticker_only() -> None:
    ts = tickers(2000)
    before = {t: group_of(t, 3) for t in ts}
    # markets come and go: the others stay where they were
    came = tickers(500, seed=2)
    after = {t: group_of(t, 3) for t in ts[500:] + came}
    assert all(after[t] == before[t] for t in ts[500:])
    # the same answer in another process (no per-process hash seed)
    assert group_of("KXBTCD-26JUL2014-B64000", 4) == group_of("KXBTCD-26JUL2014-B64000", 4)


def test_a_new_group_takes_only_its_share() -> None:
    ts = tickers(4000)
    moved = [t for t in ts if group_of(t, 4) != group_of(t, 5)]
    # rendezvous hashing: the markets that move all move to the new group, about 1/5
    assert all(group_of(t, 5) == 4 for t in moved)
    assert 0.15 < len(moved) / len(ts) < 0.25


@pytest.mark.parametrize("text", ["2/2", "-1/2", "a/b", "1", "0/0", "1/1000", ""])
def test_a_bad_shard_group_says_what_is_expected(text: str) -> None:
    with pytest.raises(ConfigError, match="expected I/N"):
        ShardGroup.parse(text)


def test_identities_never_meet() -> None:
    a, b = ShardGroup.parse("0/2"), ShardGroup.parse(" 1 / 2 ")
    assert (a.shard_base, b.shard_base) == (GROUP_STRIDE, 2 * GROUP_STRIDE)
    assert group_key(a.shard_base + 5) == 1 and group_key(b.shard_base) == 2 and group_key(7) == 0
    assert a.spool_name != b.spool_name and a.id_residue != b.id_residue


async def test_selection_and_connector_identity_of_a_group(tmp_path: Path) -> None:
    sim, _ = manual_sim(seed=3)
    async with nats_server(tmp_path / "nats") as srv, sim:
        ts = open_markets(sim, 20)
        group = ShardGroup(1, 3)
        s = settings_for(sim, srv, tmp_path, symbols=tickers_symbols(ts), shard_group=group)
        assert s.spool_path.name == "connector-kalshi-sim.group-1-of-3.spool"
        conn = Connector(s)
        assert conn.run_id % GROUP_STRIDE == group.id_residue
        assert conn.shards.config.first_number == group.shard_base
        assert conn.shards.config.global_channels == ()  # group 0 captures lifecycle
        sel = Selection(tickers_symbols(ts), None, group=group)
        assert sel.desired() == {t for t in ts if group_of(t, 3) == 1}
        whole = Selection(tickers_symbols(ts), None)
        assert whole.desired() == set(ts)


# ---- the gaps of a group -------------------------------------------------------------------


def ev(kind: str, t: float, **fields: Any) -> dict[str, Any]:
    return {"kind": "connector_event", "event": kind, "receive_ts": int(t), **fields}


def group_run(group: ShardGroup, run_id: int, start: int, end: int, markets: list[str]) -> list:
    base = group.shard_base
    beats = [
        ev("heartbeat", t * S, conn_id=run_id, shard=base, duration_ns=S, tickers=markets)
        for t in range(start, end + 1)
    ]
    conn = ev("connected", (start + 0.1) * S, shard=base + 1, conn_id=run_id + 1)
    return [beats[0], conn, *beats[1:]]


def test_a_dead_group_is_a_gap_of_its_markets_only() -> None:
    g0, g1 = ShardGroup(0, 2), ShardGroup(1, 2)
    m0, m1 = ["A-1", "A-2"], ["B-1"]
    events = sorted(
        [
            *group_run(g0, 1_001, 100, 400, m0),
            *group_run(g1, 2_002, 100, 200, m1),  # kill -9 after its beat at 200 s
            *group_run(g1, 3_002, 230, 400, m1),  # the same group started again
        ],
        key=lambda e: e["receive_ts"],
    )
    gaps = compute_gaps(events, 0, 400 * S)
    assert [(g["reason"], g["start_ns"] / S, g["end_ns"] / S, g["markets"]) for g in gaps] == [
        ("connector_crashed", 200.0, 230.1, m1)
    ]
    # without its replacement, three silent heartbeat intervals make it a gap to the horizon
    alone = [e for e in events if e["conn_id"] not in (3_002, 3_003)]
    gaps = compute_gaps(alone, 0, 400 * S)
    assert [(g["reason"], g["markets"]) for g in gaps] == [("connector_crashed", m1)]


# ---- two groups as processes against the simulator -----------------------------------------


def _credentials(info: dict[str, Any]) -> Credentials:
    return Credentials(info["key_id"], auth.load_private_key(info["private_key_path"]))


async def _events(url: str) -> list[dict[str, Any]]:
    async with client(url) as nc:
        msgs = await read_stream(nc, STREAM, f"{ENV}.{FEED}.events.>")
    return [rec for m in msgs for rec in core.decode_records(m.data)]


def _markets_of(events: list[dict[str, Any]], group: ShardGroup) -> set[str]:
    beats = [e for e in events if e["event"] == "heartbeat" and e["shard"] == group.shard_base]
    return set(beats[-1]["tickers"]) if beats else set()


async def _fresh_books(url: str, markets: set[str], since_ns: int) -> bool:
    """Every market has a book record received after `since_ns`."""
    async with client(url) as nc:
        js = nc.jetstream()
        for t in markets:
            try:
                msg = await js.get_last_msg(STREAM, subjects.record(ENV, FEED, "orderbook", t))
            except Exception:
                return False
            if core.decode_records(msg.data)[0]["receive_ts"] <= since_ns:
                return False
    return True


@pytest.mark.xdist_group("shard_groups")
async def test_two_groups_kill_one_restart_it(tmp_path: Path) -> None:
    nats = NatsServer(tmp_path / "nats")
    sim = SimProcess(tmp_path / "sim.log")
    groups = [ShardGroup(0, 2), ShardGroup(1, 2)]
    procs: list[Component] = []
    await nats.start()
    try:
        await sim.start(seed=5, rate=200.0, markets=40, hostile=False)
        config = tmp_path / "exchanges"
        shutil.copytree(ROOT / "exchanges", config)
        (config / "environments" / f"{ENV}.yaml").write_text(
            environment_yaml(nats.url, None, False)
        )
        environ = dict(os.environ) | {
            "KALSHI_API_KEY": sim.info["key_id"],
            "KALSHI_PRIVATE_KEY_PATH": sim.info["private_key_path"],
        }
        common = [
            "--env", ENV, "--config-dir", str(config), "--nats-url", nats.url,
            "--data-dir", str(tmp_path / "data"), "--ws-url", sim.info["ws_url"],
            "--rest-url", sim.info["rest_url"], "--heartbeat-interval", "0.5",
        ]  # fmt: skip
        for g in groups:
            argv = [SSMD, "connector", "run", *common, "--shard-group", g.label]
            log = tmp_path / f"connector-{g.index}.log"
            procs.append(Component(f"connector {g.label}", argv, environ, log))

        def alive() -> None:
            for p in procs:
                if p.proc is not None and p.proc.returncode is not None:
                    raise AssertionError(f"{p.name} exited:\n{p.tail()}")

        for p in procs:
            await p.start()
        for p in procs:
            await until(p.healthy, 90, f"{p.name} streaming", alive)

        # the selection, as one connector would take it
        rest = RestClient(sim.info["rest_url"], _credentials(sim.info))
        try:
            whole = Selection(Symbols(series=["KXBTCD"], sync=True), rest)
            await whole.refresh()
        finally:
            await rest.aclose()
        selected = whole.desired()
        assert len(selected) >= 4

        async def both_hold_theirs() -> bool:
            evs = await _events(nats.url)
            return all(_markets_of(evs, g) for g in groups) and (
                _markets_of(evs, groups[0]) | _markets_of(evs, groups[1]) == selected
            )

        await until(both_hold_theirs, 60, "both groups holding their markets", alive)
        evs = await _events(nats.url)
        m0, m1 = _markets_of(evs, groups[0]), _markets_of(evs, groups[1])
        assert not m0 & m1 and m0 | m1 == selected
        assert m1 == {t for t in selected if groups[1].owns(t)}
        health = await procs[1].health()
        assert health["shard_group"] == "1/2" and health["markets"] == len(m1)
        assert {sh["shard"] for sh in health["shards"]} <= set(range(2000, 3000))

        # kill -9 group 1; group 0 captures on; group 1 started again picks its markets up
        assert await procs[1].stop(signal.SIGKILL) == -9
        killed_ns = time.time_ns()
        await procs[1].start()
        await until(procs[1].healthy, 90, "group 1 streaming again", alive)
        restarted_ns = int(procs[1].started_at * 1e9)

        async def resumed() -> bool:
            return await _fresh_books(nats.url, m1, restarted_ns)

        await until(resumed, 60, "group 1's markets captured again", alive)
        assert await _fresh_books(nats.url, m0, killed_ns)  # group 0 never stopped

        evs = await _events(nats.url)
        gaps = compute_gaps(evs, 0, time.time_ns())
        crashed = [g for g in gaps if g["reason"] == "connector_crashed"]
        assert len(crashed) == 1, gaps
        assert set(crashed[0]["markets"]) == m1
        assert crashed[0]["start_ns"] <= killed_ns <= crashed[0]["end_ns"]
        # no gap of group 0's markets, nor one of every market
        assert not any(g["markets"] == [] or set(g["markets"]) & m0 for g in gaps), gaps
    finally:
        for p in procs:
            await p.kill_quietly()
        await sim.close()
        nats.stop()
