"""No single message stops the archiver: odd tickers are stored under bounded keys, and a
message that cannot be stored where it belongs is quarantined (kept raw, counted, listed)."""

from __future__ import annotations

import base64
from pathlib import Path

import orjson

from _support.archfix import (
    ENV,
    FEED,
    PREFIX,
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
from ssmd.data.inventory import Archive
from ssmd.store import keys
from ssmd.testing.frames import frame_mix
from ssmd.testing.nats import client, nats_server

# Path-like, NATS wildcards, empty, hidden, very long ASCII, non-ASCII; the longest come
# close to what a subject can carry (nats-server's 4096-byte control line).
ODD_TICKERS = [
    *("../x", "a/b", "..", ".hidden", "*", ">", "a.*.>", ""),
    *("A" * 300, "é" * 50, "é" * 600, "B" * 3900),
]


def trade_record(ticker: str, receive_ns: int) -> bytes:
    """A trade record of `ticker`, as the connector would publish it."""
    batch = core.normalize_kalshi(frame_mix(200), [receive_ns] * 200, 7)
    for _, rtype, _, start, end in batch.records:
        if rtype == "trade":
            rec = core.decode_records(batch.data[start:end])[0]
            return core.encode_records([rec | {"ticker": ticker}])
    raise AssertionError("frame_mix(200) has no trade")


async def test_odd_tickers_are_archived_under_bounded_keys(tmp_path: Path) -> None:
    async with nats_server(tmp_path / "nats") as ns:
        env = environment(tmp_path, ns.url)
        await make_stream(ns.url, env)
        pub = Published()
        async with client(ns.url) as nc:
            js = nc.jetstream()
            for i, ticker in enumerate(ODD_TICKERS):
                payload = trade_record(ticker, T0_NS + i)
                ack = await js.publish(subjects.record(ENV, FEED, "trade", ticker), payload)
                pub.records[ack.seq] = payload
        await archive_until_acked(settings(env), ns.url, pub.last_seq)
        check_exactly_once(env, pub)
        raw_store, norm_store = stores(env)
        day = keys.day_of_ns(T0_NS)
        for key, _ in normalized_records(norm_store):
            assert all(len(part.encode()) <= keys.MAX_SEGMENT for part in key.split("/"))
        m = read_manifest(norm_store, ENV, FEED, "trade", day)
        assert m is not None and m["record_count"] == len(ODD_TICKERS)
        # the manifest gives every real ticker, hashed segments included (from the records)
        assert sorted(f["ticker"] for f in m["files"]) == sorted(ODD_TICKERS)
        assert m["markets"] == len([t for t in ODD_TICKERS if t])
        arc = Archive(ENV, raw_store, norm_store, tmp_path / "archiver" / ENV / "spool")
        got = {t: core.decode_records(data)[0]["ticker"] for t, data in arc.normalized_files(
            FEED, "trade", day
        )}  # fmt: skip
        assert got == {t: t for t in ODD_TICKERS}
        assert arc.read_normalized(FEED, "trade", day).height == len(ODD_TICKERS)


# Raw subjects whose message type cannot name a file.
ODD_RAW_TAILS = ["a-b", "é" * 50, "x" * 300, "a.b", "*", ">", "orderbook_delta.extra"]


async def test_messages_without_a_storage_key_are_quarantined(tmp_path: Path) -> None:
    async with nats_server(tmp_path / "nats") as ns:
        env = environment(tmp_path, ns.url)
        await make_stream(ns.url, env)
        pub = Published()
        odd: dict[int, tuple[str, bytes]] = {}  # seq -> (subject, payload)
        async with client(ns.url) as nc:
            js = nc.jetstream()
            await publish_frames(nc, frame_mix(50), [T0_NS + i for i in range(50)], pub)
            for i, tail in enumerate(ODD_RAW_TAILS):
                subject = f"{PREFIX}.raw.{tail}"
                payload = b'{"type":"odd","n":%d}' % i
                headers = {core.RECEIVE_HEADER: str(T0_NS + 100 + i)}
                ack = await js.publish(subject, payload, headers=headers)
                odd[ack.seq] = (subject, payload)
            await publish_frames(
                nc, frame_mix(50, seed=3), [T0_NS + 200 + i for i in range(50)], pub, frame_base=99
            )
        last = max(pub.last_seq, *odd)
        arc = await archive_until_acked(settings(env), ns.url, last)
        assert arc.stats.quarantined == len(ODD_RAW_TAILS)
        raw_store, norm_store = stores(env)
        # the quarantine file holds each message whole: subject, headers, payload, why
        kept = {}
        archived = []
        for key, line in raw_lines(raw_store):
            entry = orjson.loads(line)
            if keys.parse_key(key).msgtype != keys.QUARANTINE_MSGTYPE:  # type: ignore[union-attr]
                archived.append(entry["seq"])
                continue
            kept[entry["seq"]] = entry
            assert entry["headers"][core.RECEIVE_HEADER] == str(entry["rns"])
            assert "cannot name a raw file" in entry["reason"]
        assert {s: (e["subject"], base64.b64decode(e["data_b64"])) for s, e in kept.items()} == odd
        # everything else is archived exactly once, as usual
        assert sorted(archived) == sorted(pub.raw)
        records = sorted(p for _, p in normalized_records(norm_store))
        assert records == sorted(pub.records.values())
        m = read_manifest(raw_store, ENV, FEED, "raw", keys.day_of_ns(T0_NS))
        assert m is not None and m["quarantined_count"] == len(ODD_RAW_TAILS)
        assert sorted(q["seq"] for q in m["quarantined"]) == sorted(odd)
        for q in m["quarantined"]:
            assert q["subject"] == odd[q["seq"]][0]
            assert keys.parse_key(q["key"]).msgtype == keys.QUARANTINE_MSGTYPE  # type: ignore[union-attr]
            assert q["reason"]
        arc_view = Archive(ENV, raw_store, norm_store)
        assert arc_view.quality(FEED, keys.day_of_ns(T0_NS))["quarantined"] == len(ODD_RAW_TAILS)
