"""Gaps from connector events, stream holes and downtime past retention; quality; `ssmd data`."""

from __future__ import annotations

from pathlib import Path

import orjson
from typer.testing import CliRunner

from _support.archfix import (
    ROOT,
    STREAM,
    T0_NS,
    Published,
    archive_until_acked,
    environment,
    make_stream,
    publish_event,
    publish_frames,
    settings,
    stores,
)
from ssmd import core
from ssmd.archiver.gaps import compute_gaps, quality_score
from ssmd.archiver.manifest import read_manifest
from ssmd.cli import app
from ssmd.store import keys
from ssmd.testing.frames import frame_mix
from ssmd.testing.nats import client, nats_server

S = 1_000_000_000


def test_gap_rules_and_quality_score() -> None:
    day0 = T0_NS - (T0_NS % (86_400 * S))
    events = [
        {"kind": "connector_event", "event": "disconnected", "receive_ts": day0 + 100 * S, "shard": 1, "reason": "stale", "tickers": []},
        {"kind": "connector_event", "event": "connected", "receive_ts": day0 + 130 * S, "shard": 1},
        {"kind": "connector_event", "event": "gap", "receive_ts": day0 + 200 * S, "conn_id": 5, "sid": 3, "expected_seq": 10, "received_seq": 12, "tickers": ["A", "B"]},
        {"kind": "connector_event", "event": "resync", "receive_ts": day0 + 210 * S, "conn_id": 5, "sid": 3},
        {"kind": "connector_event", "event": "gap", "receive_ts": day0 + 400 * S, "reason": "archiver:retention seq 5-9", "duration_ns": 50 * S, "expected_seq": 5, "received_seq": 10},
        # the same hole seen twice (a redelivery after a crash) counts once
        {"kind": "connector_event", "event": "gap", "receive_ts": day0 + 400 * S, "reason": "archiver:retention seq 5-9", "duration_ns": 50 * S, "expected_seq": 5, "received_seq": 10},
        {"kind": "connector_event", "event": "gap", "receive_ts": day0 + 500 * S, "conn_id": 5, "sid": 4, "expected_seq": 3, "received_seq": 6, "reason": "sid 4 (trade): expected seq 3, received 6 (next record A); 3 messages lost, not recoverable", "tickers": ["A"]},
        {"kind": "connector_event", "event": "disconnected", "receive_ts": day0 + 86_000 * S, "shard": 2, "reason": "eof", "tickers": []},
    ]  # fmt: skip
    gaps = compute_gaps(events, day0, day0 + 86_400 * S)
    assert [(g["reason"], g["duration_s"], g["markets"]) for g in gaps] == [
        ("disconnect", 30.0, []),
        ("seq_gap", 10.0, ["A", "B"]),
        ("archiver_downtime", 50.0, []),
        ("records_lost", 0.0, ["A"]),
        ("disconnect", 400.0, []),  # never reconnected: ends with the day
    ]
    # 30 + 50 + 400 s for every market, 10 s for 2 of 4 markets
    expected = 1 - (480 + 10 * 0.5) / 86_400
    assert quality_score(gaps, 4, 86_400 * S) == round(expected, 6)
    assert quality_score([], 4, 86_400 * S) == 1.0


async def test_gaps_in_manifests_and_data_commands(tmp_path: Path) -> None:
    async with nats_server(tmp_path / "nats") as ns:
        env = environment(tmp_path, ns.url)
        await make_stream(ns.url, env)
        pub = Published()
        async with client(ns.url) as nc:
            js = nc.jetstream()
            await publish_frames(
                nc, frame_mix(100, markets=5), [T0_NS + i for i in range(100)], pub
            )
            await publish_event(
                nc, pub, event="disconnected", receive_ts=T0_NS + 10 * S, shard=0, reason="stale"
            )
            await publish_event(nc, pub, event="connected", receive_ts=T0_NS + 12 * S, shard=0)
            await publish_event(
                nc,
                pub,
                event="gap",
                receive_ts=T0_NS + 20 * S,
                conn_id=9,
                sid=2,
                expected_seq=5,
                received_seq=7,
                tickers=["KX-A"],
            )
            await publish_event(
                nc, pub, event="resync", receive_ts=T0_NS + 21 * S, conn_id=9, sid=2
            )
            # a deleted message: a hole inside the retention
            before = pub.last_seq
            await publish_frames(
                nc,
                frame_mix(3, seed=3),
                [T0_NS + 30 * S + i for i in range(3)],
                pub,
                frame_base=500,
            )
            victim = before + 2
            await js.delete_msg(STREAM, victim)
            pub.raw.pop(victim, None)
            pub.records.pop(victim, None)
            await archive_until_acked(settings(env), ns.url, pub.last_seq)
            # the archiver is down while messages expire: purge stands in for max_age
            first_new = pub.last_seq + 1
            await publish_frames(
                nc,
                frame_mix(20, seed=4),
                [T0_NS + 60 * S + i for i in range(20)],
                pub,
                frame_base=900,
            )
            await js.purge_stream(STREAM, seq=first_new + 10)
            for seq in range(first_new, first_new + 10):
                pub.raw.pop(seq, None)
                pub.records.pop(seq, None)
            await archive_until_acked(settings(env), ns.url, pub.last_seq)  # fmt: skip
        day = keys.day_of_ns(T0_NS)
        raw_store, norm_store = stores(env)
        manifest = read_manifest(raw_store, "kalshi-sim", "kalshi", "raw", day)
        assert manifest is not None
        reasons = [g["reason"] for g in manifest["gaps"]]
        assert reasons == ["disconnect", "seq_gap", "stream_hole", "archiver_downtime"], reasons
        assert manifest["gaps"][1]["markets"] == ["KX-A"]
        assert manifest["gaps"][0]["duration_s"] == 2.0
        assert 0 < manifest["quality_score"] < 1
        trade = read_manifest(norm_store, "kalshi-sim", "kalshi", "trade", day)
        assert trade is not None and trade["gaps"] == manifest["gaps"]

        runner = CliRunner()
        common = [
            "--env",
            "kalshi-sim",
            "--config-dir",
            str(ROOT / "exchanges"),
            "--data-dir",
            str(tmp_path),
        ]
        res = runner.invoke(
            app, ["data", "gaps", "--feed", "kalshi", "--date", day.isoformat(), *common, "--json"]
        )
        assert res.exit_code == 0, res.output
        assert [g["reason"] for g in orjson.loads(res.stdout)] == reasons
        res = runner.invoke(
            app,
            ["data", "quality", "--feed", "kalshi", "--date", day.isoformat(), *common, "--json"],
        )
        report = orjson.loads(res.stdout)
        assert report["quality_score"] == manifest["quality_score"] and report["gaps"] == 4
        assert report["records_by_data_type"]["raw"] == len(pub.raw)
        res = runner.invoke(app, ["data", "inventory", *common, "--json"])
        rows = orjson.loads(res.stdout)
        raw_row = next(r for r in rows if r["data_type"] == "raw" and r["date"] == day.isoformat())
        assert raw_row["records"] == len(pub.raw) and raw_row["status"] == "sealed"
        books = {
            r["ticker"]
            for r in core.decode_records(b"".join(pub.records.values()))
            if r["type"] == "orderbook"
        }
        assert next(r for r in rows if r["data_type"] == "orderbook")["markets"] == len(books)
        res = runner.invoke(app, ["data", "inventory", *common, "--from", "2026-07-21"])
        assert res.exit_code == 1 and "it has data for kalshi from 2026-07-20" in res.stderr
        res = runner.invoke(app, ["data", "inventory", *common])
        assert res.exit_code == 0 and "Inventory of kalshi-sim" in res.stdout
        assert res.stdout.count("\n") > 6  # a table with rows
        res = runner.invoke(
            app, ["data", "gaps", "--feed", "kalshi", "--date", day.isoformat(), *common]
        )
        assert res.exit_code == 0 and "Gaps of kalshi" in res.stdout


def test_the_newest_manifest_of_a_day_wins_within_one_second(tmp_path: Path) -> None:
    """A stop writes several manifests of a day within a second; the last one written,
    with the events the earlier ones had not seen, gives the day's gaps."""
    from datetime import date

    from ssmd.archiver.manifest import build_manifest, write_manifest
    from ssmd.data.inventory import Archive
    from ssmd.store.local import LocalObjectStore

    raw, norm = LocalObjectStore(tmp_path / "raw"), LocalObjectStore(tmp_path / "norm")
    day = date(2026, 7, 20)
    t0 = 1_784_505_600.0 + 3600  # 01:00 that day
    start_ns = int(t0 * 1e9)
    stop = {"kind": "connector_event", "event": "stopped", "receive_ts": start_ns, "conn_id": 7}
    early = build_manifest(raw, "e", "kalshi", "raw", day, now=t0 + 0.1)
    late = build_manifest(norm, "e", "kalshi", "trade", day, events=[stop], now=t0 + 0.6)
    write_manifest(raw, early)
    write_manifest(norm, late)
    gaps = Archive("e", raw, norm).gaps("kalshi", day)
    assert [g["reason"] for g in gaps] == ["connector_stopped"]
