"""Outages of the connector as gaps: every way a run ends (stop, crash, lost connection,
a new connection over one never closed), across midnight, and never coming back."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import nats.js.errors
import orjson
import pytest
from typer.testing import CliRunner

from _support.archfix import (
    ROOT,
    STREAM,
    Published,
    ack_floor,
    archive_until_acked,
    environment,
    make_stream,
    publish_event,
    running,
    settings,
    stores,
    until,
)
from ssmd.archiver.gaps import compute_gaps, quality_score
from ssmd.archiver.manifest import read_manifest
from ssmd.cli import app
from ssmd.sim import Simulator
from ssmd.store import keys
from ssmd.testing.nats import client, nats_server

S = 1_000_000_000
DAY = 86_400 * S
DAY0 = 20_654 * DAY  # 2026-07-20 00:00 UTC
BEAT = 5 * S


def ev(kind: str, t: float, **fields: Any) -> dict[str, Any]:
    return {"kind": "connector_event", "event": kind, "receive_ts": int(t), **fields}


def run(run_id: int, start: float, end: float, *, shards: int = 2) -> list[dict[str, Any]]:
    """A connector process's events: heartbeats every 5 s from `start` to `end`, and each
    shard connected (conn ids run_id + shard) just after the first one."""
    beats = [
        ev("heartbeat", t, conn_id=run_id, duration_ns=BEAT)
        for t in range(int(start), int(end) + 1, BEAT)
    ]
    conns = [
        ev("connected", start + S // 10 * (n + 1), shard=n, conn_id=run_id + n)
        for n in range(shards)
    ]
    return beats[:1] + conns + beats[1:]


def spans(gaps: list[dict[str, Any]]) -> list[tuple[str, float, float]]:
    return [(g["reason"], (g["start_ns"] - DAY0) / S, (g["end_ns"] - DAY0) / S) for g in gaps]


def test_a_graceful_stop_is_a_gap_until_the_next_run_connects() -> None:
    events = [
        *run(1_000, DAY0 + 100 * S, DAY0 + 300 * S),
        ev("stopped", DAY0 + 302 * S, conn_id=1_000, reason="stop requested"),
        # the shards close after `stopped`: inside the outage, no gaps of their own
        ev("disconnected", DAY0 + 302.2 * S, shard=1, conn_id=1_001, reason="connector stopping", tickers=["A"]),
        ev("disconnected", DAY0 + 302.3 * S, shard=0, conn_id=1_000, reason="connector stopping"),
        *run(2_000, DAY0 + 330 * S, DAY0 + 600 * S),
    ]  # fmt: skip
    gaps = compute_gaps(events, DAY0, DAY0 + 600 * S)
    assert spans(gaps) == [("connector_stopped", 302.0, 330.1)]
    assert gaps[0]["markets"] == [] and "stop requested" in gaps[0]["detail"]


def test_a_crash_is_a_gap_from_the_last_sign_of_life_until_the_next_run_connects() -> None:
    events = [
        *run(1_000, DAY0 + 100 * S, DAY0 + 300 * S),
        # after the last heartbeat, the process still said something: it lived until then
        ev("error", DAY0 + 302 * S, shard=1, conn_id=1_001, reason="sid 3: error 8"),
        # kill -9: no `stopped`, no `disconnected`; a new process starts 30 s later
        *run(2_000, DAY0 + 332 * S, DAY0 + 600 * S),
    ]
    gaps = compute_gaps(events, DAY0, DAY0 + 600 * S)
    assert spans(gaps) == [("connector_crashed", 302.0, 332.1)]
    assert "run 1000" in gaps[0]["detail"]


def test_a_lost_connection_is_a_disconnect_of_its_markets() -> None:
    events = [
        *run(1_000, DAY0 + 100 * S, DAY0 + 600 * S),
        ev("disconnected", DAY0 + 200 * S, shard=1, conn_id=1_001, reason="eof", tickers=["A", "B"]),
        ev("connected", DAY0 + 203 * S, shard=1, conn_id=1_002),
    ]  # fmt: skip
    gaps = compute_gaps(sorted(events, key=lambda e: e["receive_ts"]), DAY0, DAY0 + 600 * S)
    assert spans(gaps) == [("disconnect", 200.0, 203.0)]
    assert gaps[0]["markets"] == ["A", "B"]
    # A shard that is down when the process crashes: its disconnect ends where the crash
    # outage begins, so no time counts twice.
    events = [
        *run(1_000, DAY0 + 100 * S, DAY0 + 300 * S),
        ev("disconnected", DAY0 + 250 * S, shard=1, conn_id=1_001, reason="eof", tickers=["A"]),
        *run(2_000, DAY0 + 400 * S, DAY0 + 600 * S),
    ]
    gaps = compute_gaps(sorted(events, key=lambda e: e["receive_ts"]), DAY0, DAY0 + 600 * S)
    assert spans(gaps) == [("disconnect", 250.0, 300.0), ("connector_crashed", 300.0, 400.1)]


def test_a_new_connection_over_one_never_closed_is_a_crash_without_heartbeats() -> None:
    # A connector without heartbeats: the only sign that its process died is a new
    # connection on a shard whose connection was never closed.
    events = [
        ev("connected", DAY0 + 100 * S, shard=0, conn_id=11),
        ev("connected", DAY0 + 100.5 * S, shard=1, conn_id=12),
        ev("subscribed", DAY0 + 101 * S, shard=1, conn_id=12, reason="2 markets"),
        ev("connected", DAY0 + 160 * S, shard=0, conn_id=21),
        ev("subscribed", DAY0 + 160.2 * S, shard=0, conn_id=21, reason="global"),
        ev("connected", DAY0 + 160.5 * S, shard=1, conn_id=22),
    ]
    gaps = compute_gaps(events, DAY0, DAY0 + 600 * S)
    assert spans(gaps) == [("connector_crashed", 101.0, 160.0)]
    assert "connection 11 was never closed" in gaps[0]["detail"]


def test_an_outage_across_midnight_is_a_gap_of_both_days() -> None:
    day1 = DAY0 + DAY
    crash = [*run(1_000, day1 - 600 * S, day1 - 30 * S), *run(2_000, day1 + 40 * S, day1 + 600 * S)]
    assert spans(compute_gaps(crash, DAY0, day1)) == [("connector_crashed", 86_370.0, 86_400.0)]
    assert spans(compute_gaps(crash, day1, day1 + 600 * S)) == [
        ("connector_crashed", 86_400.0, 86_440.1)
    ]
    stop = [
        *run(1_000, day1 - 600 * S, day1 - 30 * S),
        ev("stopped", day1 - 28 * S, conn_id=1_000, reason="stop requested"),
        *run(2_000, day1 + 40 * S, day1 + 600 * S),
    ]
    assert spans(compute_gaps(stop, DAY0, day1)) == [("connector_stopped", 86_372.0, 86_400.0)]
    assert spans(compute_gaps(stop, day1, day1 + 600 * S)) == [
        ("connector_stopped", 86_400.0, 86_440.1)
    ]
    # A shard down across midnight, back within the same run.
    down = [
        *run(1_000, day1 - 600 * S, day1 + 600 * S),
        ev("disconnected", day1 - 10 * S, shard=1, conn_id=1_001, reason="eof", tickers=["A"]),
        ev("connected", day1 + 20 * S, shard=1, conn_id=1_005),
    ]
    down.sort(key=lambda e: e["receive_ts"])
    assert spans(compute_gaps(down, DAY0, day1)) == [("disconnect", 86_390.0, 86_400.0)]
    assert spans(compute_gaps(down, day1, day1 + 600 * S)) == [("disconnect", 86_400.0, 86_420.0)]


def test_a_connector_that_never_comes_back_is_down_until_the_horizon() -> None:
    stopped = [
        *run(1_000, DAY0 + 100 * S, DAY0 + 300 * S),
        ev("stopped", DAY0 + 301 * S, conn_id=1_000, reason="stop requested"),
    ]
    gaps = compute_gaps(stopped, DAY0, DAY0 + 1_000 * S)
    assert spans(gaps) == [("connector_stopped", 301.0, 1_000.0)]
    # Heartbeats that just stop: after three missed intervals the run has ended...
    silent = run(1_000, DAY0 + 100 * S, DAY0 + 300 * S)
    assert spans(compute_gaps(silent, DAY0, DAY0 + 1_000 * S)) == [
        ("connector_crashed", 300.0, 1_000.0)
    ]
    # ...before that it may only be on its way: not a gap (yet).
    assert compute_gaps(silent, DAY0, DAY0 + 314 * S) == []
    # A sealed day whose connector ran on into the next day has no gap at its end.
    day1 = DAY0 + DAY
    assert compute_gaps(run(1_000, day1 - 100 * S, day1 + 100 * S), DAY0, day1) == []
    # The whole day down after a stop the day before: the day's window is one gap.
    whole = compute_gaps(stopped, day1, day1 + DAY)
    assert spans(whole) == [("connector_stopped", 86_400.0, 172_800.0)]
    assert quality_score(whole, 10, DAY) == 0.0


def test_overlapping_runs_leave_no_gap() -> None:
    # A new process started before the old one stopped (a handover): always one capturing.
    events = [
        *run(1_000, DAY0 + 100 * S, DAY0 + 400 * S),
        *run(2_000, DAY0 + 350 * S, DAY0 + 600 * S),
        ev("stopped", DAY0 + 401 * S, conn_id=1_000, reason="stop requested"),
    ]
    events.sort(key=lambda e: e["receive_ts"])
    assert compute_gaps(events, DAY0, DAY0 + 600 * S) == []


def test_a_seq_gap_ends_with_its_connection() -> None:
    # Books invalid after a gap, then the connection is lost before any resync: the
    # seq gap ends there (the new connection starts from snapshots), the disconnect
    # takes over; nothing runs on until the horizon.
    events = [
        *run(1_000, DAY0 + 100 * S, DAY0 + 600 * S),
        ev("gap", DAY0 + 200 * S, shard=1, conn_id=1_001, sid=3, expected_seq=5, received_seq=7, tickers=["A"]),
        ev("disconnected", DAY0 + 210 * S, shard=1, conn_id=1_001, reason="eof", tickers=["A"]),
        ev("connected", DAY0 + 212 * S, shard=1, conn_id=1_002),
    ]  # fmt: skip
    events.sort(key=lambda e: e["receive_ts"])
    gaps = compute_gaps(events, DAY0, DAY0 + 600 * S)
    assert spans(gaps) == [("seq_gap", 200.0, 210.0), ("disconnect", 210.0, 212.0)]


async def test_the_manifests_of_both_days_have_an_outage_across_midnight(tmp_path: Path) -> None:
    """The archiver reads the events of the days around a day too: a crash before midnight
    with the next process up after it is a gap in both days' manifests."""
    midnight = DAY0 + DAY
    async with nats_server(tmp_path / "nats") as ns:
        env = environment(tmp_path, ns.url)
        await make_stream(ns.url, env)
        pub = Published()
        async with client(ns.url) as nc:
            for e in [
                *run(1_000, midnight - 120 * S, midnight - 60 * S, shards=1),
                *run(2_000, midnight + 90 * S, midnight + 100 * S, shards=1),
                ev("stopped", midnight + 101 * S, conn_id=2_000, reason="stop requested"),
            ]:
                await publish_event(nc, pub, **e)
        await archive_until_acked(settings(env), ns.url, max(pub.events))
    _, norm_store = stores(env)
    found = {}
    for day in (DAY0, midnight):
        m = read_manifest(norm_store, "kalshi-sim", "kalshi", "events", keys.day_of_ns(day))
        assert m is not None and m["status"] == "sealed"
        found[day] = spans(m["gaps"])
    assert found == {
        DAY0: [("connector_crashed", 86_340.0, 86_400.0)],
        midnight: [
            ("connector_crashed", 86_400.0, 86_490.1),
            ("connector_stopped", 86_501.0, 172_800.0),  # and not back that day
        ],
    }


# ---- end to end: the connector as a process, stopped, killed and started again ----------------

SSMD = str(Path(sys.executable).parent / "ssmd")


@pytest.mark.timeout(240)
async def test_stopped_and_killed_connector_processes_are_gaps_in_the_manifest(
    tmp_path: Path,
) -> None:
    """`ssmd connector run` with one-second heartbeats: SIGTERM, a few seconds down, start;
    kill -9, a few seconds down, start; SIGTERM for good. The archive's gaps are exactly a
    connector_stopped, a connector_crashed and a final connector_stopped until the horizon,
    each within two seconds of when the process really stopped and the next one really
    connected (the simulator's accept time)."""
    async with (
        nats_server(tmp_path / "nats") as srv,
        Simulator(seed=31, rate=100, markets=20) as sim,
    ):
        argv = [
            SSMD, "connector", "run", "--env", "kalshi-sim", "--config-dir", str(ROOT / "exchanges"),
            "--ws-url", sim.ws_url, "--rest-url", sim.rest_url, "--nats-url", srv.url,
            "--data-dir", str(tmp_path / "connector"), "--health-port", "0",
            "--heartbeat-interval", "1",
        ]  # fmt: skip
        environ = os.environ | {
            "KALSHI_API_KEY": sim.key_id,
            "KALSHI_PRIVATE_KEY_PATH": str(sim.private_key_path),
        }
        runs: list[asyncio.subprocess.Process] = []

        async def stream_end(nc: Any) -> int:
            return int((await nc.jetstream().stream_info(STREAM)).state.last_seq)

        async def start() -> float:
            """A new connector process; returns when the simulator accepted its first
            connection, once the process has published 100 messages (its first events,
            which come before its frames, are in the stream then)."""
            asked = time.time()
            async with client(srv.url) as nc:
                before = await stream_end(nc) if runs else 0
                log = (tmp_path / f"connector-{len(runs)}.log").open("wb")
                runs.append(await asyncio.create_subprocess_exec(*argv, env=environ, stderr=log))
                log.close()

                async def published() -> bool:
                    try:
                        return await stream_end(nc) > before + 100
                    except nats.js.errors.NotFoundError:
                        return False  # the first process has not created the stream yet

                await until(published, 60, "the new process publishing")
            return min(r.opened_at for r in sim.truth.connections.values() if r.opened_at >= asked)

        async def stop(sig: signal.Signals) -> float:
            proc, at = runs[-1], time.time()
            proc.send_signal(sig)
            rc = await asyncio.wait_for(proc.wait(), 30)
            assert rc == (0 if sig is signal.SIGTERM else -signal.SIGKILL)
            return at

        try:
            await start()
            stopped = await stop(signal.SIGTERM)
            await asyncio.sleep(3)  # the outage under test
            back = await start()
            killed = await stop(signal.SIGKILL)
            await asyncio.sleep(3)
            back_after_kill = await start()
            last_stop = await stop(signal.SIGTERM)
        finally:
            for proc in runs:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()

        async with client(srv.url) as nc:
            last_seq = (await nc.jetstream().stream_info(STREAM)).state.last_seq
        env = environment(tmp_path / "archive", srv.url)
        async with running(settings(env)):
            await until(lambda: _acked(srv.url, last_seq), what="the stream archived")

    common = ["--env", "kalshi-sim", "--config-dir", str(ROOT / "exchanges")]
    common += ["--data-dir", str(tmp_path / "archive")]
    gaps: list[dict[str, Any]] = []
    for day in sorted({_utc_day(stopped), _utc_day(last_stop)}):
        res = CliRunner().invoke(
            app, ["data", "gaps", "--feed", "kalshi", "--date", day, *common, "--json"]
        )
        assert res.exit_code == 0, res.output
        gaps.extend(orjson.loads(res.stdout))
    merged = _merge_at_midnight(gaps)  # a test run across midnight: pieces in both days
    assert [g["reason"] for g in merged] == [
        "connector_stopped",
        "connector_crashed",
        "connector_stopped",
    ], merged
    graceful, crash, final = ((g["start_ns"] / 1e9, g["end_ns"] / 1e9) for g in merged)
    # A stop is said as it happens; a killed process says nothing, so its gap starts at
    # its last heartbeat (1 s apart). Each ends when the next process connected (its
    # `connected` and the simulator's accept are a handshake apart).
    assert stopped <= graceful[0] <= stopped + 2 and abs(graceful[1] - back) <= 2
    assert killed - 2 <= crash[0] <= killed and abs(crash[1] - back_after_kill) <= 2
    assert last_stop <= final[0] <= last_stop + 2 and final[1] > final[0]


async def _acked(url: str, last_seq: int) -> bool:
    return await ack_floor(url) >= last_seq


def _utc_day(t: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(t))


def _merge_at_midnight(gaps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pieces of one gap that two days each report, joined again."""
    out: list[dict[str, Any]] = []
    for g in sorted(gaps, key=lambda g: g["start_ns"]):
        if out and out[-1]["reason"] == g["reason"] and out[-1]["end_ns"] == g["start_ns"]:
            out[-1] = {**out[-1], "end_ns": g["end_ns"]}
        else:
            out.append(g)
    return out
