"""The archiver's /health and /metrics (`ssmd archiver run --health-port`).

Every counter of `Stats` is exposed as `ssmd_archiver_*`, read at exposition time, so
the batch loop keeps its plain integer counters and pays nothing for metrics.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

from ssmd.obs.metrics import CollectorRegistry, Read, Sampled
from ssmd.store import space

if TYPE_CHECKING:
    from ssmd.archiver.runner import Archiver

__all__ = ["STALL_AFTER", "build_registry", "health"]

# The loop fetches with a 1 s expiry and checks seals every 0.5 s: this long without a
# turn means it is stuck (a hung store, a full disk) and /health says so.
STALL_AFTER: Final = 30.0

# Stats field -> (metric name, help). A field added to Stats later is still exposed,
# as ssmd_archiver_{field}_total.
_COUNTERS: Final = {
    "received": (
        "ssmd_archiver_messages_received_total",
        "Messages fetched, redeliveries included",
    ),
    "written": (
        "ssmd_archiver_records_written_total",
        "Raw lines and records written to the spool",
    ),
    "duplicates": ("ssmd_archiver_duplicates_total", "Redeliveries dropped by stream sequence"),
    "malformed": ("ssmd_archiver_malformed_total", "Raw frames kept as data_text/data_b64"),
    "undecodable": ("ssmd_archiver_undecodable_total", "Normalized payloads that failed to decode"),
    "derived": ("ssmd_archiver_derived_total", "Derived messages (book checkpoints), not stored"),
    "quarantined": (
        "ssmd_archiver_quarantined_total",
        "Messages kept raw in quarantine: no storage key where they belong",
    ),
    "holes": ("ssmd_archiver_stream_holes_total", "Missing stream sequence ranges"),
    "streams_recreated": (
        "ssmd_archiver_streams_recreated_total",
        "Starts on a stream created again since the spool was written (sequences started over)",
    ),
    "batches": ("ssmd_archiver_batches_total", "Batches made durable and acked"),
    "sealed": ("ssmd_archiver_files_sealed_total", "Spool files sealed into stored objects"),
    "sealed_bytes": ("ssmd_archiver_sealed_bytes_total", "Bytes of the objects written by seals"),
}


def build_registry(arc: Archiver) -> CollectorRegistry:
    r = CollectorRegistry()
    feed = arc.s.feed

    def add(kind: Literal["counter", "gauge"], name: str, text: str, read: Read) -> None:
        Sampled.register(r, kind, name, text, ("feed",), read)

    def stat(attr: str) -> Read:
        return lambda: {(feed,): float(getattr(arc.stats, attr))}

    def spool(what: str) -> Read:
        def read() -> dict[tuple[str, ...], float]:
            # A snapshot of the entries: seals run in a worker thread and remove some.
            files = list(arc.spool.files.values())
            if what == "files":
                return {(feed,): float(len(files))}
            if what == "bytes":
                return {(feed,): float(sum(sf.size for sf in files))}
            return {(feed,): float(sum(sf.count for sf in files))}

        return read

    def per_bucket(counts: dict[str, int]) -> Read:
        return lambda: {(b,): float(n) for b, n in list(counts.items())}

    for f in dataclasses.fields(arc.stats):
        name, text = _COUNTERS.get(f.name, (f"ssmd_archiver_{f.name}_total", f"Stats.{f.name}"))
        add("counter", name, text, stat(f.name))
    for what, text in (
        ("files", "Archive files still in the spool"),
        ("bytes", "Compressed bytes in the spool"),
        ("records", "Records in the spool, not yet sealed"),
    ):
        add("gauge", f"ssmd_archiver_spool_{what}", text, spool(what))
    Sampled.register(
        r,
        "counter",
        "ssmd_archiver_files_written_total",
        "Objects sealed into each bucket",
        ("bucket",),
        per_bucket(arc.files_to),
    )
    Sampled.register(
        r,
        "counter",
        "ssmd_archiver_bytes_written_total",
        "Bytes of the objects sealed into each bucket",
        ("bucket",),
        per_bucket(arc.bytes_to),
    )
    add(
        "gauge",
        "ssmd_archiver_disk_full",
        "1 while a write failed for lack of space and the archiver waits (not acking)",
        lambda: {(feed,): float(arc.disk_full is not None)},
    )
    add(
        "gauge",
        "ssmd_archiver_disk_free_bytes",
        "Bytes free on the spool's filesystem",
        lambda: {(feed,): float(space.free_bytes(arc.spool.root))},
    )
    add(
        "gauge",
        "ssmd_archiver_disk_size_bytes",
        "Size of the spool's filesystem",
        lambda: _disk_size(feed, arc.spool.root),
    )
    Sampled.register(
        r,
        "counter",
        "ssmd_archiver_seal_failures_total",
        "Failed attempts to seal into, write a manifest to, or probe a bucket",
        ("feed", "bucket"),
        lambda: {(feed, b): float(n) for b, n in list(arc.store_failures.items())},
    )
    add(
        "gauge",
        "ssmd_archiver_seal_overdue_seconds",
        "How long the most overdue spool file has waited past its seal time (0: none)",
        lambda: {(feed,): arc.seal_overdue_s()},
    )
    add(
        "gauge",
        "ssmd_archiver_seal_check_seconds",
        "How long the last seal check took (consuming waits meanwhile, then goes on as long)",
        lambda: {(feed,): arc.seal_check_seconds},
    )
    add(
        "gauge",
        "ssmd_archiver_last_seal_timestamp_seconds",
        "When this process last sealed an object (Unix time; absent: not yet)",
        lambda: {(feed,): arc.last_seal_at} if arc.last_seal_at else {},
    )
    add(
        "gauge",
        "ssmd_archiver_last_sequence",
        "Highest stream sequence written",
        lambda: {(feed,): float(arc.last_seq)},
    )
    add(
        "gauge",
        "ssmd_archiver_consumer_pending_messages",
        "Stream messages not yet delivered to the archiver's consumer",
        lambda: {} if arc.consumer_pending is None else {(feed,): float(arc.consumer_pending)},
    )
    add(
        "gauge",
        "ssmd_archiver_loop_age_seconds",
        f"Seconds since the batch loop last turned (/health degrades at {STALL_AFTER:g})",
        lambda: {(feed,): time.monotonic() - arc.loop_at},
    )
    Sampled.register(
        r,
        "gauge",
        "ssmd_archiver_quality_score",
        "Quality score (0..1, 1: no gap) of the newest day's manifest, by data type",
        ("feed", "data_type"),
        lambda: {(feed, t): q for t, (_, q) in list(arc.quality.items())},
    )
    return r


def _disk_size(feed: str, root: Path) -> dict[tuple[str, ...], float]:
    try:
        return {(feed,): float(shutil.disk_usage(root).total)}
    except OSError:
        return {}


def health(arc: Archiver) -> tuple[bool, dict[str, object]]:
    nats_ok = bool(arc.nc is not None and arc.nc.is_connected)
    age = time.monotonic() - arc.loop_at
    full = arc.disk_full
    outages = list(arc.store_outages.values())
    ok = nats_ok and age < STALL_AFTER and full is None and not outages
    storage, error = "ok", None
    if full is not None:
        storage, error = "disk full", str(full.error)
    elif outages:
        storage, error = outages[0].error.state, str(outages[0].error)
    return ok, {
        "status": "ok" if ok else "degraded",
        "nats": "connected" if nats_ok else "disconnected",
        # ssmd up takes a storage fault as started: the archiver waits it out by itself
        "storage": storage,
        **({} if error is None else {"storage_error": error}),
        "loop_age_s": round(age, 3),
        "last_sequence": arc.last_seq,
        "spool_files": len(arc.spool.files),
        "stats": dataclasses.asdict(arc.stats),
    }
