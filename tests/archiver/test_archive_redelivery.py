"""Deliveries out of stream order: what a previous process held comes back late."""

from __future__ import annotations

from pathlib import Path

from _support.archfix import (
    STREAM,
    T0_NS,
    Published,
    archive_until_acked,
    check_exactly_once,
    environment,
    make_stream,
    publish_frames,
    settings,
    stores,
)
from ssmd.archiver.consumer import ensure_consumer
from ssmd.archiver.manifest import read_manifest
from ssmd.store import keys
from ssmd.testing.frames import frame_mix
from ssmd.testing.nats import client, nats_server


async def test_messages_a_dead_process_held_are_archived_when_redelivered(
    tmp_path: Path,
) -> None:
    """A process that dies holding unacked messages: the server redelivers them only
    when their ack wait expires, after newer ones have been archived. They are not
    duplicates (nothing wrote them) and not holes (the stream still has them)."""
    async with nats_server(tmp_path / "nats") as ns:
        env = environment(tmp_path, ns.url)
        await make_stream(ns.url, env)
        pub = Published()
        s = settings(env)
        async with client(ns.url) as nc:
            await publish_frames(nc, frame_mix(60), [T0_NS + i for i in range(60)], pub)
            js = nc.jetstream()
            await ensure_consumer(js, STREAM, s.consumer, f"{s.subject_prefix}.>")
            held = await js.pull_subscribe_bind(s.consumer.durable, STREAM)
            taken = await held.fetch(40, timeout=5)  # and never acked: the process "dies"
            assert [m.metadata.sequence.stream for m in taken] == list(range(1, 41))
        arc = await archive_until_acked(s, ns.url, pub.last_seq)
        assert arc.stats.holes == 0 and arc.stats.duplicates == 0
        assert arc.stats.written == len(pub.raw) + len(pub.records)
        check_exactly_once(env, pub)
        raw_store, _ = stores(env)
        manifest = read_manifest(raw_store, "kalshi-sim", "kalshi", "raw", keys.day_of_ns(T0_NS))
        assert manifest is not None and manifest["gaps"] == []
