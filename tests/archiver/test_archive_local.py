"""End to end on local storage: stream -> spool -> sealed raw and normalized files + manifests."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import orjson
import pytest

from _support.archfix import (
    DAY_NS,
    ROOT,
    T0_NS,
    Published,
    archive_until_acked,
    check_exactly_once,
    environment,
    make_stream,
    normalized_records,
    publish_frames,
    raw_lines,
    settings,
    stores,
)
from ssmd import core
from ssmd.archiver.manifest import read_manifest
from ssmd.bus import subjects
from ssmd.store import keys
from ssmd.testing.frames import frame_mix
from ssmd.testing.nats import client, nats_server


async def test_archives_raw_and_normalized_exactly(tmp_path: Path) -> None:
    async with nats_server(tmp_path / "nats") as ns:
        env = environment(tmp_path, ns.url)
        await make_stream(ns.url, env)
        pub = Published()
        frames = frame_mix(600)
        rns = [T0_NS + i * 7_000_000_000 for i in range(len(frames))]  # spans ~70 min: 2 hours
        async with client(ns.url) as nc:
            await publish_frames(nc, frames, rns, pub)
        arc = await archive_until_acked(settings(env), ns.url, pub.last_seq)
        check_exactly_once(env, pub)
        assert arc.stats.duplicates == 0 and arc.stats.malformed == 0
        raw_store, norm_store = stores(env)
        # every raw line is JSON and holds the frame byte for byte
        for _, line in raw_lines(raw_store):
            obj = orjson.loads(line)
            frame = pub.raw[obj["seq"]][0]
            assert orjson.loads(frame) == obj["data"]
            assert obj["conn"] == 7 and obj["ts"] == obj["rns"] // 1_000_000
        # two hours of raw files, each with a meta, named by receive hour
        raw_keys = [o.key for o in raw_store.list("") if keys.parse_key(o.key).kind == "raw"]  # type: ignore[union-attr]
        hours = {keys.parse_key(k).hour for k in raw_keys}  # type: ignore[union-attr]
        assert hours == {14, 15}
        day = keys.day_of_ns(T0_NS)
        manifest = read_manifest(raw_store, "kalshi-sim", "kalshi", "raw", day)
        assert manifest is not None
        assert manifest["record_count"] == len(pub.raw)
        assert {f["key"] for f in manifest["files"]} == set(raw_keys)
        for f in manifest["files"]:
            import hashlib

            assert hashlib.sha256(raw_store.get(f["key"])).hexdigest() == f["sha256"]
            assert f["seq_first"] <= f["seq_last"]
        for field in (
            "feed", "date", "data_type", "schema_version", "status", "record_count", "byte_size",
            "first_timestamp", "last_timestamp", "gaps", "quality_score", "connector_version",
            "created_at",
        ):  # fmt: skip
            assert field in manifest
        assert manifest["status"] == "sealed" and manifest["quality_score"] == 1.0
        # normalized manifests per record type, files per ticker
        total = 0
        for rtype in ("trade", "orderbook", "ticker", "lifecycle"):
            m = read_manifest(norm_store, "kalshi-sim", "kalshi", rtype, day)
            assert m is not None, rtype
            total += m["record_count"]
            for f in m["files"]:
                data = core.read_archive(norm_store.get(f["key"])).data
                recs = core.decode_records(data)
                assert {r["ticker"] for r in recs} == {f["ticker"]}
                assert {r["type"] for r in recs} == {rtype}
                assert len(recs) == f["records"]
        assert total == len(pub.records)


async def test_bad_input_is_kept_and_counted(tmp_path: Path) -> None:
    async with nats_server(tmp_path / "nats") as ns:
        env = environment(tmp_path, ns.url)
        await make_stream(ns.url, env)
        pub = Published()
        frames = [
            b'{"type":"trade","sid":1,"seq":1,"msg":{"market_ticker":"A","yes_price_dollars":"0.5"',
            b"\xff\xfe not utf8",
            b'{"type":\n"ticker"}',
            *frame_mix(5),
        ]
        rns = [T0_NS + i for i in range(len(frames))]
        async with client(ns.url) as nc:
            await publish_frames(nc, frames, rns, pub)
            ack = await nc.jetstream().publish(
                subjects.record("kalshi-sim", "kalshi", "trade", "X"), b"\x00garbage"
            )
        # the undecodable record has no receive time: JetStream's stored time (now) stands in
        later = lambda: time.time_ns() + 2 * DAY_NS  # noqa: E731
        arc = await archive_until_acked(settings(env, clock=later), ns.url, ack.seq)
        assert arc.stats.malformed == 3 and arc.stats.undecodable == 1
        raw_store, _ = stores(env)
        by_seq = {orjson.loads(line)["seq"]: orjson.loads(line) for _, line in raw_lines(raw_store)}
        for seq, (frame, _, _) in pub.raw.items():
            obj = by_seq[seq]
            if "data" in obj:
                assert orjson.loads(frame) == obj["data"]
            elif "data_text" in obj:
                assert obj["data_text"].encode() == frame
            else:
                import base64

                assert base64.b64decode(obj["data_b64"]) == frame
        bad = by_seq[ack.seq]
        assert bad["type"] == "undecodable" and bad["subject"].endswith(".trade.X")
        import base64

        assert base64.b64decode(bad["data_b64"]) == b"\x00garbage"
        m = read_manifest(raw_store, "kalshi-sim", "kalshi", "raw", keys.day_of_ns(bad["rns"]))
        assert m is not None and m["undecodable_records"] == 1
        m = read_manifest(raw_store, "kalshi-sim", "kalshi", "raw", keys.day_of_ns(T0_NS))
        malformed = sum(1 for _, t, _ in pub.raw.values() if t == "malformed")
        assert malformed >= 2 and m is not None and m["malformed_frames"] == malformed


async def test_archives_decode_with_pycapnp_and_capnp_tool(tmp_path: Path) -> None:
    capnp = pytest.importorskip("capnp")
    tool = shutil.which("capnp")
    async with nats_server(tmp_path / "nats") as ns:
        env = environment(tmp_path, ns.url)
        await make_stream(ns.url, env)
        pub = Published()
        frames = frame_mix(200)
        async with client(ns.url) as nc:
            await publish_frames(nc, frames, [T0_NS + i for i in range(200)], pub)
        await archive_until_acked(settings(env), ns.url, pub.last_seq)
        _, norm_store = stores(env)
        schema = capnp.load(str(ROOT / "schemas" / "ssmd.capnp"))
        recs = normalized_records(norm_store)
        key = recs[0][0]
        data = core.read_archive(norm_store.get(key)).data
        n = sum(1 for k, _ in recs if k == key)
        decoded = list(schema.Record.read_multiple_bytes_packed(data))
        assert len(decoded) == n
        assert decoded[0].receiveTs >= T0_NS
        if tool is None:
            pytest.skip("capnp tool not installed (Debian capnproto)")
        out = subprocess.run(
            [tool, "decode", "--packed", str(ROOT / "schemas" / "ssmd.capnp"), "Record"],
            input=data, capture_output=True, check=True,
        ).stdout  # fmt: skip
        assert out.count(b"receiveTs") == n
