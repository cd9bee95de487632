"""The archiver sealing into S3 (a moto server): exactly once, manifests, restart, readers."""

from __future__ import annotations

from pathlib import Path

import pytest

from _support.archfix import (
    T0_NS,
    MotoServer,
    Published,
    archive_until_acked,
    check_exactly_once,
    environment,
    make_bucket,
    make_stream,
    publish_frames,
    s3_credentials,
    settings,
)
from ssmd.archiver.manifest import read_manifest
from ssmd.data.inventory import Archive
from ssmd.store import keys
from ssmd.store.s3 import S3ObjectStore
from ssmd.testing.frames import frame_mix
from ssmd.testing.nats import client, nats_server


async def test_archive_into_s3_across_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3_credentials(monkeypatch)
    moto = MotoServer(tmp_path)
    moto.start()
    try:
        make_bucket(moto.url, "raw")
        make_bucket(moto.url, "normalized")
        raw = S3ObjectStore("raw", endpoint=moto.url)
        norm = S3ObjectStore("normalized", endpoint=moto.url)
        async with nats_server(tmp_path / "nats") as ns:
            env = environment(tmp_path, ns.url)
            await make_stream(ns.url, env)
            pub = Published()
            async with client(ns.url) as nc:
                # hour 14, archived and sealed by a first archiver
                await publish_frames(
                    nc, frame_mix(300, seed=1, markets=10), [T0_NS + i for i in range(300)], pub
                )
                await archive_until_acked(
                    settings(env, raw_store=raw, normalized_store=norm), ns.url, pub.last_seq
                )
                first = read_manifest(raw, "kalshi-sim", "kalshi", "raw", keys.day_of_ns(T0_NS))
                assert first is not None
                # the same hour and day again after a restart: objects are extended, not replaced
                await publish_frames(
                    nc, frame_mix(300, seed=2, markets=10), [T0_NS + 10**6 + i for i in range(300)], pub,
                    frame_base=1000,
                )  # fmt: skip
                await archive_until_acked(
                    settings(env, raw_store=raw, normalized_store=norm), ns.url, pub.last_seq
                )
        check_exactly_once(env, pub, (raw, norm))
        day = keys.day_of_ns(T0_NS)
        manifest = read_manifest(raw, "kalshi-sim", "kalshi", "raw", day)
        assert manifest is not None and manifest["record_count"] == len(pub.raw)
        assert {f["key"] for f in first["files"]} <= {f["key"] for f in manifest["files"]}
        assert not [o.key for o in raw.list("") if ".tmp" in o.key]
        arc = Archive("kalshi-sim", raw, norm)
        inv = arc.inventory("kalshi")
        assert {r["data_type"] for r in inv} >= {"raw", "trade", "orderbook", "ticker"}
        assert sum(r["records"] for r in inv if r["data_type"] != "raw") == len(pub.records)
        trades = arc.read_normalized("kalshi", "trade", day)
        assert trades.height == sum(r["records"] for r in inv if r["data_type"] == "trade")
    finally:
        moto.stop()
