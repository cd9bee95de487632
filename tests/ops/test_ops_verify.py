"""The teardown's verification on a real archive: a stream archived by the archiver
verifies; a sealed file changed after its manifest, a raw file lost, or manifests
older than the connector's stop are each found and named."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from _support.archfix import (
    T0_NS,
    Published,
    archive_until_acked,
    environment,
    make_stream,
    publish_frames,
    settings,
)
from ssmd.ops.verify import day_figures, verify_day
from ssmd.store import keys
from ssmd.testing.frames import frame_mix
from ssmd.testing.nats import client, nats_server

DAY = datetime.fromtimestamp(T0_NS / 1e9, UTC).date()


async def test_verification_passes_then_finds_each_fault(tmp_path: Path) -> None:
    async with nats_server(tmp_path / "nats") as ns:
        env = environment(tmp_path, ns.url)
        await make_stream(ns.url, env)
        pub = Published()
        frames = frame_mix(300)
        async with client(ns.url) as nc:
            await publish_frames(nc, frames, [T0_NS + i * 1_000_000 for i in range(300)], pub)
        stopped_at = time.time()  # the connector's stop: before the archiver's manifests
        await archive_until_acked(settings(env), ns.url, pub.last_seq)

        async with client(ns.url) as nc:
            good = await verify_day(env, nc.jetstream(), [DAY], 1, stopped_at)
            assert good.ok, good.problems
            assert good.acked_checked == len(pub.raw)
            assert good.acked_messages == pub.last_seq  # raw frames and normalized records
            assert good.files_checked > 0 and good.gaps_final
            figures = day_figures(env, [DAY])
            assert figures.records >= len(pub.raw) + len(pub.records)
            assert figures.bytes > 0

            # Manifests written before the connector stopped: the gaps are not final.
            late = await verify_day(env, nc.jetstream(), [DAY], 1, time.time() + 60)
            assert not late.ok and not late.gaps_final
            assert "not final" in late.problems[0]

            # A sealed file changed after its manifest was written.
            root = Path(env.data_dir)
            raw_files = sorted((root / "raw").rglob("*.jsonl.zst"))
            normalized = sorted((root / "normalized").rglob("*.capnp.zst"))
            normalized[0].write_bytes(normalized[0].read_bytes() + b"\0")
            # A raw file lost: its acked messages are in no file and not in the spool.
            lost = raw_files[0]
            lost.unlink()
            bad = await verify_day(env, nc.jetstream(), [DAY], 1, stopped_at)
        assert not bad.ok
        assert bad.missing > 0 and bad.missing_sample
        key = normalized[0].relative_to(root / "normalized").as_posix()
        assert any(b.startswith(key) and "sha256" in b for b in bad.bad_files)
        lost_key = lost.relative_to(root / "raw").as_posix()
        assert any(b.startswith(lost_key) and "missing" in b for b in bad.bad_files)
        assert keys.parse_key(lost_key) is not None
