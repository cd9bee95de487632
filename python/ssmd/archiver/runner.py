"""The archiver: JetStream -> durable spool -> sealed objects + manifests.

One loop: fetch a batch, append it to the spool's journal and fsync it, ack; the
spool turns it into one append-only file per open archive file at checkpoints; then
seal what is due and rewrite the affected manifests (docs/archiver.md).

Dates and hours come from the local receive time of each message (raw: header
Ssmd-Receive-Ns; normalized and events: the record's receiveTs), UTC. A frame
received at 00:00:00.2 belongs to the new day even if its exchange time is from
the day before. A raw hour is sealed once the clock passes the end of the hour
plus `seal_grace`; a normalized day file once it passes the end of the day plus
`seal_grace`. Data arriving later for a sealed file is appended to it at the
next seal (the object is replaced atomically, never duplicated).

A bucket that fails while running (S3 away, or refusing) never stops the archiver:
acks depend only on the spool, so it goes on consuming, and seals and manifests wait
for the bucket, retried with a backoff (`storewait`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from ssmd import core, records
from ssmd.archiver.consumer import ConsumerSettings, ensure_consumer, puller
from ssmd.archiver.diskwait import DiskWait
from ssmd.archiver.gaps import ARCHIVER_REASON_PREFIX
from ssmd.archiver.manifest import build_manifest, day_bounds_ns, write_manifest
from ssmd.archiver.quarantine import quarantine_lines
from ssmd.archiver.seal import seal
from ssmd.archiver.spool import Spool, SpoolFile, spool_dir
from ssmd.archiver.storewait import StoreOutage
from ssmd.bus import subjects
from ssmd.bus.connection import NatsClient, connect
from ssmd.bus.puller import Puller
from ssmd.bus.stream import check_stream
from ssmd.exceptions import (
    DiskFullError,
    StorageError,
    StoreUnavailableError,
    StreamRecreatedError,
)
from ssmd.obs.health import HealthServer
from ssmd.store import keys, space
from ssmd.store.base import ObjectStore, open_store
from ssmd.store.local import write_durably

__all__ = ["Archiver", "ArchiverSettings"]

log = logging.getLogger(__name__)

CRASH_ENV = "SSMD_ARCHIVER_CRASH_AT"  # tests: SIGKILL self at a named step
RAW = "raw"
NORMALIZED = "normalized"


@dataclass
class ArchiverSettings:
    env: str
    feed: str
    nats_url: str
    stream: str
    raw_store: ObjectStore
    normalized_store: ObjectStore
    spool_dir: Path
    consumer: ConsumerSettings = field(default_factory=ConsumerSettings)
    seal_grace: float = 60.0  # seconds after the end of an hour/day before sealing it
    level: int = core.ARCHIVE_DEFAULT_LEVEL
    clock: Callable[[], int] = time.time_ns  # "now" for sealing decisions, ns
    seal_check_interval: float = 0.5
    shutdown_timeout: float = 20.0
    health_host: str = "127.0.0.1"
    health_port: int | None = None  # /health and /metrics; None = not served, 0 = any port
    env_file: Path | None = None  # where the storage is configured, for error messages

    @property
    def subject_prefix(self) -> str:
        return f"{self.env}.{self.feed}"

    @classmethod
    def from_environment(cls, env: Any, **changes: Any) -> ArchiverSettings:
        """From a ssmd.config.ResolvedEnvironment."""
        nats_url = changes.pop("nats_url", None) or env.nats.url
        return cls(
            env=env.name,
            feed=env.feed.name if hasattr(env.feed, "name") else str(env.feed),
            nats_url=nats_url,
            stream=env.nats.stream,
            raw_store=changes.pop("raw_store", None) or open_store(env.raw_store),
            normalized_store=changes.pop("normalized_store", None)
            or open_store(env.normalized_store),
            spool_dir=changes.pop("spool_dir", None)
            or spool_dir(env.data_dir, env.name, env.extra_feed),
            env_file=changes.pop("env_file", None) or getattr(env, "file", None),
            **changes,
        )


_KEY_CACHE = 100_000


@dataclass
class Stats:
    received: int = 0
    written: int = 0
    duplicates: int = 0
    malformed: int = 0
    undecodable: int = 0
    derived: int = 0  # book checkpoints: rebuilt from the archive, so not stored
    quarantined: int = 0  # kept raw: no storage key where they belong
    holes: int = 0
    streams_recreated: int = 0  # the stream was created again: its sequences started over
    batches: int = 0
    sealed: int = 0
    sealed_bytes: int = 0


def bucket_of(store: ObjectStore) -> str:
    """A store's `bucket` label: the S3 bucket, or the local directory's URL."""
    return str(getattr(store, "bucket", None) or store.url)


class Archiver:
    def __init__(self, settings: ArchiverSettings) -> None:
        self.s = settings
        self.spool = self._new_spool()
        self.stats = Stats()
        self.written = core.Coverage()  # stream sequences written (dedupe, holes)
        self._open_holes: list[tuple[int, int, int, str]] = []  # (start, end, ts before, why)
        self.last_ts = 0
        self.full_coverage = True
        self._crash_at = os.environ.get(CRASH_ENV)
        self._dirty_days: set[tuple[str, date]] = set()
        self._raw_keys: dict[tuple[str, int], tuple[str, date]] = {}
        self._normalized_keys: dict[tuple[str, str, int], tuple[str, date]] = {}
        self._state_path = settings.spool_dir / "state.json"
        # When the stream was created (ISO): its sequences are only comparable within
        # one creation. `stream_created` is the stream's now, `_spooled_from` the one
        # the state on disk was written from (None: not known).
        self.stream_created: str | None = None
        self._spooled_from: str | None = None
        self.nc: NatsClient | None = None
        self.loop_at = time.monotonic()  # the batch loop's last turn (/health)
        self.puller: Puller | None = None  # set once pulling (its connection is up)
        self.health_server: HealthServer | None = None
        self.disk_full: DiskWait | None = None  # set while waiting for space
        self.store_outages: dict[str, StoreOutage] = {}  # store url -> its outage
        self.store_failures: dict[str, int] = {}  # bucket -> failed attempts (metric)
        self._manifests_owed = False  # a manifest write failed: retried with the store
        # For /metrics: objects and bytes sealed into each bucket, when the last seal
        # was (wall clock, 0: none yet), messages the consumer has not been given yet
        # (None: not read yet), and each data type's quality score of its newest day.
        self.files_to: dict[str, int] = {}
        self.bytes_to: dict[str, int] = {}
        self.last_seal_at = 0.0
        self.seal_check_seconds = 0.0  # how long the last seal check took
        self.consumer_pending: int | None = None
        self.quality: dict[str, tuple[date, float]] = {}
        # `POST /control/seal` waiting for the loop's next turn: (status, answer) each.
        self._seal_requests: list[asyncio.Future[tuple[int, dict[str, object]]]] = []

    def _new_spool(self) -> Spool:
        s = self.s
        return Spool(s.spool_dir / "files", level=s.level, on_checkpoint=self._save_state)

    # ---- test hook ----------------------------------------------------------------------

    def _maybe_crash(self, step: str) -> None:
        if self._crash_at and self._crash_at == step:
            log.warning("crashing at %s on request", step)
            os.kill(os.getpid(), signal.SIGKILL)

    # ---- the batch ------------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        return int(self.written.last_seq)

    def process(self, deliveries: core.Deliveries) -> None:
        """Write one batch durably into the spool.

        `deliveries` as the puller takes them. The time JetStream stored a message
        stands in for its receive time when it has none (stored 0: now).
        """
        routed = core.route_batch(deliveries, self.s.subject_prefix, self.written, self.s.clock())
        st = self.stats
        st.received += routed.received
        st.duplicates += routed.duplicates
        st.malformed += routed.malformed
        st.undecodable += routed.undecodable
        st.derived += routed.derived
        for dest in routed.chunks:
            chunk = dest.chunk
            if dest.kind == "derived":
                self.spool.cover(chunk)
                continue
            try:
                if dest.kind == "raw":
                    key, day = self._raw_key(dest.data_type, dest.bucket)
                    self.spool.append(RAW, key, chunk)
                    self._dirty_days.add((keys.RAW_DATA_TYPE, day))
                else:
                    rtype = keys.EVENTS_TYPE if dest.kind == "events" else dest.data_type
                    key, day = self._normalized_key(rtype, dest.ticker, dest.bucket)
                    self.spool.append(NORMALIZED, key, chunk)
                    self._dirty_days.add((rtype, day))
            except ValueError as exc:  # no storage key for these: keep them, never stop
                self._quarantine(chunk, deliveries, str(exc))
            st.written += chunk.count
        self.last_ts = max(self.last_ts, routed.last_ts)
        if routed.first_ts:
            self._close_holes(routed.first_ts)
        self._maybe_crash("before_commit")
        self.spool.commit()
        st.batches += 1

    def _quarantine(self, chunk: core.Chunk, deliveries: core.Deliveries, reason: str) -> None:
        for hour, lines in quarantine_lines(chunk, deliveries, reason).items():
            key, day = self._raw_key(keys.QUARANTINE_MSGTYPE, hour)
            self.spool.append(RAW, key, lines)
            self._dirty_days.add((keys.RAW_DATA_TYPE, day))
        self.stats.quarantined += chunk.count
        log.warning("%d message(s) quarantined in the raw archive: %s", chunk.count, reason)

    def advance(self, ack_floor: int, first_seq: int) -> int:
        """Record the holes the consumer's ack floor has passed; returns how many.

        At or below the ack floor the server has nothing left to deliver, so a sequence
        there that was never written is gone from the stream (expired when below the
        stream's `first_seq` now, else deleted). When the consumer does not see every
        subject of the stream, sequences of other subjects are not holes.

        A hole's event carries the receive time of the first message after it, so one
        at the end of what was written waits for the next message (kept in the state).
        """
        holes = self.written.advance(ack_floor)
        if not self.full_coverage:
            return 0
        for start, end, before, after in holes:
            why = "retention" if first_seq and start < first_seq else "deleted"
            log.warning("stream sequences %d-%d missing (%s)", start, end - 1, why)
            self.stats.holes += 1
            self._open_holes.append((start, end, before or self.last_ts, why))
            if after:
                self._close_holes(after)
        if holes:
            self.spool.commit()
        return len(holes)

    def _close_holes(self, after_ts: int) -> None:
        """Writes the events of the open holes, `after_ts` being when data came back
        (0 = unknown: the event then gets the time before the hole, duration 0)."""
        for start, end, before, why in self._open_holes:
            ts = after_ts or before or self.s.clock()
            duration = ts - before if before and ts > before else 0
            rec = records.connector_event(
                "gap",
                ts,
                reason=f"{ARCHIVER_REASON_PREFIX}{why} seq {start}-{end - 1}",
                duration_ns=duration,
                expected_seq=start,
                received_seq=end,
            )
            key, day = self._normalized_key(keys.EVENTS_TYPE, "", ts // core.DAY_NS)
            chunk = core.Chunk([core.encode_records([rec])], [(0, ts)])
            self.spool.append(NORMALIZED, key, chunk)
            self.stats.written += 1
            self._dirty_days.add((keys.EVENTS_TYPE, day))
        self._open_holes = []

    # Keys are the same for every message of an hour (raw) or a day (normalized):
    # built once, the cache cleared when it grows past any real day's variety.
    def _raw_key(self, msgtype: str, hour: int) -> tuple[str, date]:
        """The key of a message type's file for an hour (hours since the epoch)."""
        cache = self._raw_keys
        hit = cache.get((msgtype, hour))
        if hit is None:
            if len(cache) > _KEY_CACHE:
                cache.clear()
            ts = hour * core.HOUR_NS
            day = keys.day_of_ns(ts)
            key = keys.raw_key(self.s.env, self.s.feed, msgtype, day, keys.hour_of_ns(ts))
            hit = cache[(msgtype, hour)] = (key, day)
        return hit

    def _normalized_key(self, rtype: str, ticker: str, day_number: int) -> tuple[str, date]:
        """The key of a record type's file for a ticker and day (days since the epoch)."""
        cache = self._normalized_keys
        hit = cache.get((rtype, ticker, day_number))
        if hit is None:
            if len(cache) > _KEY_CACHE:
                cache.clear()
            day = keys.day_of_ns(day_number * core.DAY_NS)
            key = keys.normalized_key(self.s.env, self.s.feed, rtype, day, ticker)
            hit = cache[(rtype, ticker, day_number)] = (key, day)
        return hit

    # ---- sealing and manifests -----------------------------------------------------------

    def _seal_at(self, sf: SpoolFile) -> int | None:
        """When a spool file is due (ns): the end of its hour (raw) or day, plus the grace."""
        info = keys.parse_key(sf.key)
        if info is None:
            return None
        start, end = day_bounds_ns(info.day)
        if info.kind == "raw" and info.hour is not None:
            end = start + (info.hour + 1) * 3_600_000_000_000
        return end + int(self.s.seal_grace * 1e9)

    def _due(self, sf: SpoolFile, now_ns: int) -> bool:
        at = self._seal_at(sf)
        return at is None or now_ns >= at

    def _store(self, sf: SpoolFile) -> ObjectStore:
        return self.s.raw_store if sf.store == RAW else self.s.normalized_store

    def seal_due(self, *, everything: bool = False, retry_now: bool = False) -> int:
        """Seal every spool file that is due (or all of them); rewrite touched manifests.

        A bucket that fails is waited out (`store_outages`): its files stay in the spool
        and are sealed once a retry (after the backoff, or now with `retry_now`) finds
        it working again.
        """
        self._retry_stores(retry_now)
        now = self.s.clock()
        sealed = 0
        for sf in list(self.spool.files.values()):
            if everything or sf.marker_path.exists() or self._due(sf, now):
                store = self._store(sf)
                if store.url in self.store_outages:
                    continue
                info = keys.parse_key(sf.key)
                try:
                    meta = seal(self.spool, sf, store, crash_hook=self._maybe_crash)
                except StoreUnavailableError as exc:
                    self._store_failed(store, exc)
                    continue
                if meta is not None:
                    self.stats.sealed_bytes += meta.bytes
                    bucket = bucket_of(store)
                    self.files_to[bucket] = self.files_to.get(bucket, 0) + 1
                    self.bytes_to[bucket] = self.bytes_to.get(bucket, 0) + meta.bytes
                    self.last_seal_at = time.time()
                sealed += 1
                if info is not None:
                    self._dirty_days.add((info.data_type, info.day))
        if (sealed or self._manifests_owed) and not self.store_outages:
            try:
                self.write_manifests()
                self._manifests_owed = False
            except StoreUnavailableError as exc:
                self._manifests_owed = True
                self._store_failed(self._store_of(exc), exc)
        elif sealed:
            self._manifests_owed = True
        self.stats.sealed += sealed
        return sealed

    # ---- a bucket that fails ---------------------------------------------------------------

    def _stores(self) -> list[tuple[str, ObjectStore]]:
        return [("raw", self.s.raw_store), ("normalized", self.s.normalized_store)]

    def _store_of(self, exc: StoreUnavailableError) -> ObjectStore:
        """The store an error came from (by its bucket; raw when both share it)."""
        for _, store in self._stores():
            if getattr(store, "bucket", None) == exc.bucket:
                return store
        return self.s.raw_store

    def _store_failed(self, store: ObjectStore, exc: StoreUnavailableError) -> None:
        """A request to `store` failed: start its outage (said once) or note another try."""
        self.store_failures[exc.bucket] = self.store_failures.get(exc.bucket, 0) + 1
        now = time.monotonic()
        outage = self.store_outages.get(store.url)
        if outage is None:
            outage = self.store_outages[store.url] = StoreOutage(exc, now)
            log.error("%s", outage.first_words(str(self.spool.root)))
            return
        summary = outage.failed_again(exc, now)
        if summary is not None:
            log.warning("%s", summary)
        log.debug("%s still failing: %s", store.url, exc)

    def _retry_stores(self, now_anyway: bool) -> None:
        """Probe each failing store whose backoff is over (a small object written, read
        and deleted); one that works again ends its outage, said once."""
        for _, store in self._stores():
            outage = self.store_outages.get(store.url)
            if outage is None or not (now_anyway or outage.due(time.monotonic())):
                continue
            try:
                store.check_access()
            except StoreUnavailableError as exc:
                self._store_failed(store, exc)
                continue
            del self.store_outages[store.url]
            log.warning("%s", outage.last_words(time.monotonic()))

    def seal_overdue_s(self) -> float:
        """How long the most overdue spool file has waited past its seal time (0: none)."""
        now = self.s.clock()
        late = 0
        for sf in list(self.spool.files.values()):  # a snapshot: seals remove entries
            at = self._seal_at(sf)
            if at is not None:
                late = max(late, now - at)
        return late / 1e9

    def day_events(self, day: date) -> list[dict[str, Any]]:
        """The day's connector events: the sealed events file plus the spool."""
        key = keys.normalized_key(self.s.env, self.s.feed, keys.EVENTS_TYPE, day, "")
        out: list[dict[str, Any]] = []
        with contextlib.suppress(FileNotFoundError):
            out.extend(
                core.decode_records(core.read_archive(self.s.normalized_store.get(key)).data)
            )
        sf = self.spool.files.get((NORMALIZED, key))
        if sf is not None and sf.path.exists():
            out.extend(core.decode_records(core.read_archive(sf.path.read_bytes()).data))
        return out

    def write_manifests(self, days: set[tuple[str, date]] | None = None) -> list[str]:
        """Rebuild the manifests of (data_type, day) pairs from the stores."""
        todo = self._dirty_days if days is None else days
        now = self.s.clock()
        written = []
        by_day: dict[date, list[str]] = {}
        for data_type, day in sorted(todo):
            by_day.setdefault(day, []).append(data_type)
        for day, types in by_day.items():
            # The days around it too: an outage across midnight is a gap of both days.
            around = [date.fromordinal(day.toordinal() + d) for d in (-1, 0, 1)]
            events = [e for d in around for e in self.day_events(d)]
            open_files = [
                (sf, info)
                for sf in self.spool.files.values()
                if (info := keys.parse_key(sf.key)) is not None and info.day == day
            ]
            # one segment per ticker (a long ticker's segment is hashed, not readable)
            markets = {
                i.segment
                for rtype in core.RECORD_TYPES
                for o in self.s.normalized_store.list(
                    keys.normalized_day_prefix(self.s.env, self.s.feed, rtype, day)
                )
                if (i := keys.parse_key(o.key)) is not None
                and i.kind == "normalized"
                and i.ticker != ""
            } | {i.segment for _, i in open_files if i.segment and i.ticker != ""}
            _, day_end = day_bounds_ns(day)
            closed = now >= day_end + int(self.s.seal_grace * 1e9)
            for data_type in types:
                mine = [sf for sf, i in open_files if i.data_type == data_type]
                store = (
                    self.s.raw_store if data_type == keys.RAW_DATA_TYPE else self.s.normalized_store
                )
                manifest = build_manifest(
                    store,
                    self.s.env,
                    self.s.feed,
                    data_type,
                    day,
                    events=events,
                    markets_of_day=len(markets),
                    status="sealed" if closed and not mine else "open",
                    horizon_ns=now,
                    pending={"files": len(mine), "records": sum(sf.count for sf in mine)},
                    now=now / 1e9,
                )
                written.append(write_manifest(store, manifest))
                newest = self.quality.get(data_type)
                if newest is None or newest[0] <= day:
                    self.quality[data_type] = (day, float(manifest["quality_score"]))
        if days is None:
            self._dirty_days = set()
        return written

    # ---- state ----------------------------------------------------------------------------

    def _save_state(self) -> None:
        """What was written, made durable at each spool checkpoint.

        With the journal, that is complete: a sequence written since the last
        checkpoint is in the journal or a spool index, and recovery adds it.
        """
        floor, floor_ts, runs = self.written.state()
        data = {
            "floor": floor,
            "floor_ts": floor_ts,
            "runs": runs,
            "last_ts": self.last_ts,
            "open_holes": self._open_holes,
            "stream_created": self.stream_created,
        }
        write_durably(self._state_path, orjson.dumps(data))

    def _load_state(self) -> bool:
        try:
            state = orjson.loads(self._state_path.read_bytes())
        except FileNotFoundError:
            return False
        except orjson.JSONDecodeError as exc:
            raise StorageError(
                f"archiver state {self._state_path} is not JSON ({exc}). Fix: restore it, or "
                "delete it to start over (sequences already archived may then be reported "
                "as holes)"
            ) from exc
        self.last_ts = int(state.get("last_ts", 0))
        runs = [tuple(r) for r in state.get("runs", [])]
        # a state without a floor is from before runs were kept: all up to last_seq
        floor = int(state.get("floor", state.get("last_seq", 0)))
        self.written = core.Coverage(floor, int(state.get("floor_ts", 0)), runs)
        self._open_holes = [(a, b, c, str(d)) for a, b, c, d in state.get("open_holes", [])]
        self._spooled_from = state.get("stream_created")
        return True

    @property
    def stream_replaced(self) -> bool:
        """The state on disk is of another creation of the stream than the one now."""
        was, now = self._spooled_from, self.stream_created
        return was is not None and now is not None and was != now

    def _start_over_on_new_stream(self, ack_floor: int) -> None:
        """The stream was deleted and created again: its sequences start over, so what
        was written of the old one (spool files, and the sequences that deduplicate)
        must not meet the new one's. Everything spooled is sealed first; a store that
        cannot take it now keeps it in the spool, and the archiver stops rather than
        mix the two (started again, it tries again)."""
        log.warning(
            "stream %s was created again (at %s; the spool is of the one created at %s): "
            "sealing what was spooled from the old one, then archiving the new one from "
            "its consumer's ack floor %d",
            self.s.stream,
            self.stream_created,
            self._spooled_from,
            ack_floor,
        )
        self._close_holes(0)
        self.seal_due(everything=True, retry_now=True)
        if self.spool.files:
            raise StreamRecreatedError(
                f"stream {self.s.stream} was created again, and {len(self.spool.files)} "
                "spool files of the old one could not be sealed yet (a store is "
                "unavailable: see the warnings above). Nothing of either is lost: the "
                "spool keeps the old stream's, the new stream keeps its own. Fix: make "
                "the store reachable and start the archiver again"
            )
        self.written = core.Coverage(ack_floor)
        self._open_holes = []
        self.stats.streams_recreated += 1
        self._spooled_from = self.stream_created

    def recover(self, ack_floor: int, first_seq: int = 0) -> None:
        """Load the spool after a restart, finish interrupted seals, record the holes
        the consumer's ack floor passed while the archiver was down."""
        self.s.spool_dir.mkdir(parents=True, exist_ok=True)
        # A kill during a seal can leave a temp file of an unfinished put; the seal is
        # redone below from the spool, so the temp file holds nothing needed.
        for store in (self.s.raw_store, self.s.normalized_store):
            store.discard_temporaries()
        known = self._load_state()
        floor = int(self.written.floor)
        for sf in self.spool.recover(floor, covered=self.written.insert):
            for seq, ts in sf.recovered:
                self.written.insert(seq, ts)
            self.last_ts = max(self.last_ts, sf.ts_last)
            info = keys.parse_key(sf.key)
            if info is not None:
                self._dirty_days.add((info.data_type, info.day))
            known = True
        if self.stream_replaced:
            self._start_over_on_new_stream(ack_floor)
        elif not known:
            # A new spool on an old consumer: what it acked is archived somewhere.
            self.written = core.Coverage(ack_floor)
        self.advance(ack_floor, first_seq)
        self._save_state()
        self.seal_due()

    # ---- the loop ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        s = self.s
        with self._storage_faults():
            await asyncio.to_thread(self.check_storage)
        nc = self.nc = await connect(s.nats_url, f"ssmd-archiver-{s.env}")
        sub: Puller | None = None
        try:
            js = nc.jetstream()
            filt = subjects.under(s.subject_prefix)
            info = await check_stream(js, s.stream, [filt])
            self.stream_created = _created(info)
            self.full_coverage = list(info.config.subjects or []) == [filt]
            cinfo = await ensure_consumer(js, s.stream, s.consumer, filt)
            floor = cinfo.ack_floor.stream_seq if cinfo.ack_floor else 0
            if self.disk_full is None:
                with self._storage_faults():
                    await asyncio.to_thread(self.recover, floor, info.state.first_seq)
            await self._serve_health()
            sub = self.new_puller()
            await sub.start()
            self.puller = sub
            log.info("archiving %s from %s (ack floor %d)", filt, s.stream, floor)
            next_check = 0.0
            while not stop.is_set():
                self.loop_at = time.monotonic()
                if self.disk_full is not None:
                    await self._wait_for_space(js, stop)
                    continue
                msgs = await self._fetch(sub, stop)
                if msgs and not await self._archive(sub, msgs):
                    continue
                if time.monotonic() >= next_check:
                    began = time.monotonic()
                    with self._storage_faults():
                        await self._check_floor(js)
                        await asyncio.to_thread(self.seal_due)
                    # Fetching waited while the check ran: a slow store (seconds per
                    # request) would otherwise leave one batch between checks and the
                    # stream would outrun the archiver. Consume at least as long.
                    self.seal_check_seconds = time.monotonic() - began
                    next_check = time.monotonic() + max(
                        s.seal_check_interval, self.seal_check_seconds
                    )
                if self._seal_requests:
                    await self._serve_seal_requests()
            if self.disk_full is None:
                await self._take_in_flight(sub)
            if self.disk_full is None:
                with self._storage_faults():
                    await self._shutdown(js)
            if self.disk_full is not None:
                log.warning(
                    "archiver stopping on a full disk: what it did not ack stays in the "
                    "stream for the next run"
                )
        finally:
            self._answer_seals(503, {"error": "the archiver is stopping; it seals what is due"})
            if self.health_server is not None:
                await self.health_server.stop()
            self.spool.close()
            if sub is not None:
                self.puller = None
                await sub.stop()
            with contextlib.suppress(Exception):
                await nc.close()

    # ---- seal now (POST /control/seal) ----------------------------------------------------

    async def seal_now(self, _params: dict[str, str]) -> tuple[int, dict[str, object]]:
        """Seal every spooled file now, the open hour's and day's too (what arrives for them
        later is appended at their next seal, as late data always is), and write the
        manifests. Served by the batch loop at its next turn, between batches."""
        if self.disk_full is not None:
            return 503, {"error": f"not sealing: {self.disk_full.first_words()}"}
        answer: asyncio.Future[tuple[int, dict[str, object]]] = (
            asyncio.get_running_loop().create_future()
        )
        self._seal_requests.append(answer)
        return await answer

    async def _serve_seal_requests(self) -> None:
        try:
            with self._storage_faults():
                sealed = await asyncio.to_thread(self.seal_due, everything=True, retry_now=True)
        except StorageError as exc:
            self._answer_seals(503, {"error": str(exc)})
            raise
        if self.disk_full is not None:
            self._answer_seals(503, {"error": f"not sealed: {self.disk_full.first_words()}"})
            return
        outages = sorted(o.error.state for o in self.store_outages.values())
        log.info("sealed %d file(s) on request", sealed)
        self._answer_seals(
            503 if outages else 200,
            {
                "sealed": sealed,
                "spooled_files": len(self.spool.files),
                "store_outages": outages,
                "manifests_written": not self._manifests_owed and not outages,
            },
        )

    def _answer_seals(self, status: int, body: dict[str, object]) -> None:
        requests, self._seal_requests = self._seal_requests, []
        for answer in requests:
            if not answer.done():
                answer.set_result((status, body))

    # ---- storage faults ------------------------------------------------------------------

    def check_storage(self, *, running: bool = False) -> None:
        """Prove at start that each bucket takes a write, a read and a delete, so that
        wrong credentials, a missing bucket or a read-only folder fail now (StorageError,
        exit 3), not at the first seal hours later.

        A bucket that does not answer (a transient error), or any bucket failure once
        `running`, is an outage instead: the archiver spools and retries."""
        for which, store in self._stores():
            try:
                store.check_access()
            except DiskFullError:
                raise  # not the configuration: waited out
            except StoreUnavailableError as exc:
                if not (running or exc.transient):
                    raise self._at_start(which, exc) from exc
                self._store_failed(store, exc)
            except StorageError as exc:
                raise self._at_start(which, exc) from exc

    def _at_start(self, which: str, exc: StorageError) -> StorageError:
        where = f" of {self.s.env_file}" if self.s.env_file else ""
        return StorageError(f"spec.storage.{which}{where}: {exc}")

    @contextlib.contextmanager
    def _storage_faults(self) -> Iterator[None]:
        """A full disk inside the block is waited out (`disk_full` set, said once, the
        spool abandoned: the disk holds what is durable); any other local I/O error is a
        StorageError naming the file."""
        try:
            yield
        except (StorageError, OSError) as exc:
            full = space.disk_full(exc, self.s.spool_dir)
            if full is None:
                if isinstance(exc, OSError):
                    raise StorageError(
                        f"cannot write {exc.filename or self.s.spool_dir}: {exc.strerror or exc}. "
                        "Fix: check the disk and the permissions of the data dir"
                    ) from exc
                raise
            self.spool.abandon()
            if self.disk_full is None:
                self.disk_full = DiskWait(full)
                log.error("%s", self.disk_full.first_words())
            else:
                self.disk_full.failed_again(full, time.monotonic())
                log.debug("disk still full: %s", full)

    async def _wait_for_space(self, js: Any, stop: asyncio.Event) -> None:
        """One turn of the loop on a full disk: wait a second (or for the stop), then,
        when the space is free or the backoff is over, take the spool up from disk as a
        restart does and go on."""
        wait = self.disk_full
        assert wait is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
        if stop.is_set() or not wait.due(time.monotonic()):
            return
        try:
            cinfo = await js.consumer_info(self.s.stream, self.s.consumer.durable)
            first_seq = (await js.stream_info(self.s.stream)).state.first_seq
        except Exception as exc:  # NATS is down: its own warning says so; next turn
            log.debug("consumer info failed: %s", exc)
            return
        floor = cinfo.ack_floor.stream_seq if cinfo.ack_floor else 0
        with self._storage_faults():
            await asyncio.to_thread(self._take_up_spool, floor, first_seq)
            log.warning("%s", wait.last_words(time.monotonic()))
            self.disk_full = None

    def _take_up_spool(self, ack_floor: int, first_seq: int) -> None:
        """Forget what was in memory when a write failed and start over from the disk."""
        self.spool = self._new_spool()
        self.written = core.Coverage()
        self._open_holes = []
        self.last_ts = 0
        self.check_storage(running=True)
        self.recover(ack_floor, first_seq)

    async def _serve_health(self) -> None:
        # Started once the consumer is in place and the spool recovered (or the disk
        # found full), so that a supervisor polling /health (ssmd up) waits for an
        # archiver that consumes or waits for space.
        if self.s.health_port is None:
            return
        from ssmd.archiver import metrics

        registry = metrics.build_registry(self)
        health = HealthServer(
            lambda: metrics.health(self),
            registry,
            self.s.health_host,
            self.s.health_port,
            actions={"/control/seal": self.seal_now},
        )
        await health.start()
        self.health_server = health  # set once it listens: its port is known

    def new_puller(self) -> Puller:
        """The pulls `run` archives from (a connection of their own to NATS)."""
        s = self.s
        return puller(s.nats_url, f"ssmd-archiver-{s.env}-pull", s.stream, s.consumer)

    async def _fetch(self, sub: Puller, stop: asyncio.Event) -> core.Deliveries | None:
        fetch = asyncio.ensure_future(sub.fetch())
        stopper = asyncio.ensure_future(stop.wait())
        try:
            done, _ = await asyncio.wait({fetch, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        if fetch not in done:
            fetch.cancel()
            with contextlib.suppress(BaseException):
                await fetch
            return None
        try:
            return fetch.result()
        except OSError as exc:  # not connected: the wire reconnects on its own
            log.warning("fetch failed: %s", exc)
            waiting = asyncio.ensure_future(sub.wait_connected())
            stopper = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait({waiting, stopper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiting.cancel()
                stopper.cancel()
            return None

    async def _take_in_flight(self, sub: Puller) -> None:
        """At a stop: archive and ack what the open pull request still brings (at most
        one batch, within its `expires`), so that none of it waits out the ack wait
        before the next start archives it."""
        msgs = await sub.finish()
        if len(msgs):
            await self._archive(sub, msgs)

    async def _archive(self, sub: Puller, msgs: core.Deliveries) -> bool:
        """Write a batch to the spool and ack it; False when the disk is full (nothing
        acked: the batch is delivered again)."""
        counted = replace(self.stats)
        with self._storage_faults():
            self.process(msgs)
        if self.disk_full is not None:
            self.stats = counted  # not written, not acked: delivered again
            return False
        self._maybe_crash("before_ack")
        await self._ack(sub, msgs)
        self._maybe_crash("after_ack")
        return True

    async def _ack(self, sub: Puller, msgs: core.Deliveries) -> None:
        try:
            await sub.ack(msgs)
        except Exception as exc:  # redelivered later; the spool dedupes it
            log.warning("ack failed (messages will be redelivered): %s", exc)

    async def _check_floor(self, js: Any) -> None:
        try:
            stream = await js.stream_info(self.s.stream)
        except Exception as exc:
            log.debug("stream info failed: %s", exc)
            return
        created = _created(stream)
        if self.stream_created is not None and created not in (None, self.stream_created):
            # Its sequences started over: going on would take the new ones for duplicates.
            raise StreamRecreatedError(
                f"stream {self.s.stream} was created again (at {created}; the archiver "
                f"started on the one created at {self.stream_created}). Stopping: started "
                "again, the archiver seals what it holds of the old stream and archives "
                "the new one from its start"
            )
        try:
            info = await js.consumer_info(self.s.stream, self.s.consumer.durable)
        except Exception as exc:
            log.debug("consumer info failed: %s", exc)
            return
        self.consumer_pending = info.num_pending
        floor = info.ack_floor.stream_seq if info.ack_floor else 0
        if floor > self.written.floor:
            self.advance(floor, stream.state.first_seq)

    async def _shutdown(self, js: Any) -> None:
        log.info("archiver stopping: sealing what is due and writing manifests")
        await self._check_floor(js)
        self._close_holes(0)
        self.spool.commit()
        # A failing bucket gets one more try now, whatever its backoff.
        await asyncio.to_thread(self.seal_due, retry_now=True)
        for sf in self.spool.files.values():
            info = keys.parse_key(sf.key)
            if info is not None:
                self._dirty_days.add((info.data_type, info.day))
        # Spool files first (and the state with them): the manifests read the current
        # day's records, connector events included, from them.
        self.spool.checkpoint()
        if self.store_outages:
            self._left_in_spool()
            return
        try:
            await asyncio.to_thread(self.write_manifests)
        except StoreUnavailableError as exc:
            self._store_failed(self._store_of(exc), exc)
            self._left_in_spool()

    def _left_in_spool(self) -> None:
        """Said at a stop while a bucket fails: the spool, durable, keeps what is not
        sealed, and the next start seals it (exit 0: nothing is lost)."""
        files = list(self.spool.files.values())
        states = "; ".join(sorted({o.error.state for o in self.store_outages.values()}))
        log.warning(
            "archiver stopping with %d file(s), %d record(s) left in the spool at %s "
            "(%s): nothing is lost, they are sealed at the next start, and the manifests "
            "are written then",
            len(files),
            sum(sf.count for sf in files),
            self.spool.root,
            states or "manifests not written",
        )


def _created(info: Any) -> str | None:
    """When the stream of `info` (a StreamInfo) was created, as ISO text (None: unknown)."""
    return None if info.created is None else str(info.created.isoformat())
