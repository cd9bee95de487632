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
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import nats.errors
import orjson

from ssmd import core
from ssmd.archiver.consumer import ConsumerSettings, Delivery, Puller, ensure_consumer
from ssmd.archiver.gaps import ARCHIVER_REASON_PREFIX
from ssmd.archiver.manifest import build_manifest, day_bounds_ns, write_manifest
from ssmd.archiver.seal import seal
from ssmd.archiver.spool import Spool, SpoolFile
from ssmd.bus.connection import NatsClient, connect
from ssmd.bus.stream import check_stream
from ssmd.exceptions import DecodeError
from ssmd.obs.health import HealthServer
from ssmd.store import keys
from ssmd.store.base import ObjectStore, open_store

__all__ = ["Archiver", "ArchiverSettings"]

log = logging.getLogger(__name__)

HDR_RECEIVE = "Ssmd-Receive-Ns"
HDR_CONN = "Ssmd-Conn-Id"
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
            or Path(env.data_dir) / "archiver" / env.name / "spool",
            **changes,
        )


def _json_ok(frame: bytes) -> bool:
    if b"\n" in frame or b"\r" in frame:
        return False
    try:
        orjson.loads(frame)
    except orjson.JSONDecodeError:
        return False
    return True


def raw_line(
    frame: bytes, msgtype: str, receive_ns: int, conn: str | None, seq: int, binary: bool = False
) -> tuple[bytes, bool]:
    """One JSONL line; the frame is spliced in byte for byte when it is one-line JSON.

    Otherwise it is kept losslessly as `data_text` (UTF-8) or `data_b64`; returns (line, ok).
    """
    head = b'{"ts":%d,"rns":%d,"type":"%s",' % (
        receive_ns // 1_000_000,
        receive_ns,
        msgtype.encode(),
    )
    ok = not binary and _json_ok(frame)
    if ok:
        body = b'"data":' + frame
    elif binary:
        body = b'"data_b64":"' + base64.b64encode(frame) + b'"'
    else:
        try:
            body = b'"data_text":' + orjson.dumps(frame.decode("utf-8"))
        except UnicodeDecodeError:
            body = b'"data_b64":"' + base64.b64encode(frame) + b'"'
    if conn is None:
        conn_b = b"null"
    elif conn.isdigit():
        conn_b = conn.encode()
    else:
        conn_b = orjson.dumps(conn)
    return head + body + b',"conn":%s,"seq":%d}\n' % (conn_b, seq), ok


_HOUR_NS = 3_600_000_000_000
_DAY_NS = 24 * _HOUR_NS
_KEY_CACHE = 100_000


@dataclass
class Stats:
    received: int = 0
    written: int = 0
    duplicates: int = 0
    malformed: int = 0
    undecodable: int = 0
    derived: int = 0  # book checkpoints: rebuilt from the archive, so not stored
    holes: int = 0
    batches: int = 0
    sealed: int = 0
    sealed_bytes: int = 0


class Archiver:
    def __init__(self, settings: ArchiverSettings) -> None:
        self.s = settings
        self.spool = Spool(settings.spool_dir / "files", level=settings.level)
        self.stats = Stats()
        self.recent: set[int] = set()  # spooled above the ack floor at restart
        self.last_seq = 0
        self.last_ts = 0
        self._replay = (0, 0)  # (ack floor, last sequence written) at restart
        self.full_coverage = True
        self._crash_at = os.environ.get(CRASH_ENV)
        self._dirty_days: set[tuple[str, date]] = set()
        self._raw_keys: dict[tuple[str, int], tuple[str, date]] = {}
        self._normalized_keys: dict[tuple[str, str, int], tuple[str, date]] = {}
        self._state_path = settings.spool_dir / "state.json"
        self.nc: NatsClient | None = None
        self.loop_at = time.monotonic()  # the batch loop's last turn (/health)
        self.health_server: HealthServer | None = None

    # ---- test hook ----------------------------------------------------------------------

    def _maybe_crash(self, step: str) -> None:
        if self._crash_at and self._crash_at == step:
            log.warning("crashing at %s on request", step)
            os.kill(os.getpid(), signal.SIGKILL)

    # ---- the batch ------------------------------------------------------------------------

    def process(
        self, msgs: list[tuple[int, str, bytes, dict[str, str] | None, int]], first_seq: int = 0
    ) -> None:
        """Write one batch durably into the spool.

        Each message is (stream seq, subject, payload, headers, stored ns): the time
        JetStream stored it stands in for the receive time when the payload has none.

        `first_seq`: the stream's first sequence now (tells expired from deleted holes).
        """
        prefix_len = len(self.s.subject_prefix) + 1
        groups: dict[tuple[str, str], tuple[list[bytes], list[tuple[int, int]]]] = {}
        pending: list[tuple[int, str, bytes, int]] = []
        holes: list[tuple[int, int]] = []
        ts_of: dict[int, int] = {}

        def put(store: str, key: str, item: bytes, seq: int, ts: int) -> None:
            g = groups.get((store, key))
            if g is None:
                g = groups[(store, key)] = ([], [])
            g[0].append(item)
            g[1].append((seq, ts))

        def put_raw(
            payload: bytes, msgtype: str, ts: int, conn: str | None, seq: int, subject: str = ""
        ) -> None:
            line, ok = raw_line(payload, msgtype, ts, conn, seq, binary=bool(subject))
            if not ok and not subject:
                self.stats.malformed += 1
            if subject:
                line = line[:-2] + b',"subject":' + orjson.dumps(subject) + b"}\n"
            key, day = self._raw_key(msgtype, ts)
            put(
                RAW,
                key,
                line,
                seq,
                ts,
            )
            self._dirty_days.add((keys.RAW_DATA_TYPE, day))

        for seq, subject, payload, headers, stored_ns in sorted(msgs, key=lambda m: m[0]):
            self.stats.received += 1
            lo, hi = self._replay
            if seq in self.recent or (seq <= self.last_seq and not lo < seq <= hi):
                # Delivery is in stream order and a batch is written whole in this process:
                # at or below the last written sequence is a redelivery. After a restart,
                # (lo, hi] is the window the spool may hold in part: `recent` says what.
                self.stats.duplicates += 1
                self.last_seq = max(self.last_seq, seq)
                continue
            if lo < seq <= hi:
                self.recent.add(seq)  # written now: a later redelivery is a duplicate
            if self.last_seq and seq > self.last_seq + 1 and self.full_coverage:
                holes.append((self.last_seq + 1, seq))
            self.last_seq = max(self.last_seq, seq)
            rest = subject[prefix_len:]
            kind, _, tail = rest.partition(".")
            if kind == "book":
                self.stats.derived += 1
                continue
            if kind == "raw":
                ts = _int(headers.get(HDR_RECEIVE) if headers else None) or stored_ns
                msgtype = tail if tail and "-" not in tail and "/" not in tail else "unknown"
                put_raw(payload, msgtype, ts, headers.get(HDR_CONN) if headers else None, seq)
                ts_of[seq] = ts
            else:
                pending.append((seq, subject, payload, stored_ns))
        # normalized records and events: one decode call for the batch (what routing
        # needs: receive time, kind, type, ticker); one per message only when it fails
        if pending:
            heads: list[tuple[int, str, str, str] | None]
            try:
                decoded = core.record_heads(b"".join(p for _, _, p, _ in pending))
                heads = list(decoded) if len(decoded) == len(pending) else []
            except DecodeError:
                heads = []
            if len(heads) != len(pending):
                heads = []
                for _, _, p, _ in pending:
                    try:
                        one = core.record_heads(p)
                        heads.append(one[0] if len(one) == 1 else None)
                    except DecodeError:
                        heads.append(None)
            for (seq, subject, payload, stored_ns), head in zip(pending, heads, strict=True):
                if head is None:
                    self.stats.undecodable += 1
                    ts = stored_ns
                    put_raw(payload, "undecodable", ts, None, seq, subject)
                    ts_of[seq] = ts
                    continue
                receive_ts, kind, rtype, ticker = head
                ts = receive_ts or stored_ns
                ts_of[seq] = ts
                if kind == "connector_event":
                    rtype, ticker = keys.EVENTS_TYPE, ""
                key, day = self._normalized_key(rtype, ticker, ts)
                put(
                    NORMALIZED,
                    key,
                    payload,
                    seq,
                    ts,
                )
                self._dirty_days.add((rtype, day))
        for start, end in holes:
            before = ts_of.get(start - 1) or self.last_ts
            self._hole(start, end, before, ts_of.get(end) or self.s.clock(), first_seq, put)
        for (store, key), (items, meta) in groups.items():
            self.spool.append(store, key, items, meta)
            self.stats.written += len(items)
        if msgs:
            last = max(m[0] for m in msgs)
            self.last_ts = max(self.last_ts, ts_of.get(last, 0))
        self._maybe_crash("before_commit")
        self.spool.commit()
        self.stats.batches += 1
        self._save_state()

    # Keys are the same for every message of an hour (raw) or a day (normalized):
    # built once, the cache cleared when it grows past any real day's variety.
    def _raw_key(self, msgtype: str, ts: int) -> tuple[str, date]:
        cache = self._raw_keys
        hit = cache.get((msgtype, ts // _HOUR_NS))
        if hit is None:
            if len(cache) > _KEY_CACHE:
                cache.clear()
            day = keys.day_of_ns(ts)
            key = keys.raw_key(self.s.env, self.s.feed, msgtype, day, keys.hour_of_ns(ts))
            hit = cache[(msgtype, ts // _HOUR_NS)] = (key, day)
        return hit

    def _normalized_key(self, rtype: str, ticker: str, ts: int) -> tuple[str, date]:
        cache = self._normalized_keys
        hit = cache.get((rtype, ticker, ts // _DAY_NS))
        if hit is None:
            if len(cache) > _KEY_CACHE:
                cache.clear()
            day = keys.day_of_ns(ts)
            key = keys.normalized_key(self.s.env, self.s.feed, rtype, day, ticker)
            hit = cache[(rtype, ticker, ts // _DAY_NS)] = (key, day)
        return hit

    def _hole(
        self,
        start: int,
        end: int,
        before_ts: int,
        ts: int,
        first_seq: int,
        put: Callable[[str, str, bytes, int, int], None],
    ) -> None:
        why = "retention" if first_seq and start < first_seq else "deleted"
        self.stats.holes += 1
        duration = ts - before_ts if before_ts and ts > before_ts else 0
        log.warning("stream sequences %d-%d missing (%s)", start, end - 1, why)
        rec = {
            "kind": "connector_event",
            "event": "gap",
            "receive_ts": ts,
            "conn_id": 0,
            "sid": 0,
            "shard": 0,
            "reason": f"{ARCHIVER_REASON_PREFIX}{why} seq {start}-{end - 1}",
            "duration_ns": duration,
            "expected_seq": start,
            "received_seq": end,
            "tickers": [],
        }
        day = keys.day_of_ns(ts)
        put(
            NORMALIZED,
            keys.normalized_key(self.s.env, self.s.feed, keys.EVENTS_TYPE, day, ""),
            core.encode_records([rec]),
            0,
            ts,
        )
        self._dirty_days.add((keys.EVENTS_TYPE, day))

    # ---- sealing and manifests -----------------------------------------------------------

    def _due(self, sf: SpoolFile, now_ns: int) -> bool:
        info = keys.parse_key(sf.key)
        if info is None:
            return True
        grace = int(self.s.seal_grace * 1e9)
        start, end = day_bounds_ns(info.day)
        if info.kind == "raw" and info.hour is not None:
            end = start + (info.hour + 1) * 3_600_000_000_000
        return now_ns >= end + grace

    def _store(self, sf: SpoolFile) -> ObjectStore:
        return self.s.raw_store if sf.store == RAW else self.s.normalized_store

    def seal_due(self, *, everything: bool = False) -> int:
        """Seal every spool file that is due (or all of them); rewrite touched manifests."""
        now = self.s.clock()
        sealed = 0
        for sf in list(self.spool.files.values()):
            if everything or sf.marker_path.exists() or self._due(sf, now):
                info = keys.parse_key(sf.key)
                meta = seal(self.spool, sf, self._store(sf), crash_hook=self._maybe_crash)
                if meta is not None:
                    self.stats.sealed_bytes += meta.bytes
                sealed += 1
                if info is not None:
                    self._dirty_days.add((info.data_type, info.day))
        if sealed:
            self.write_manifests()
        self.stats.sealed += sealed
        return sealed

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
            events = self.day_events(day)
            open_files = [
                (sf, info)
                for sf in self.spool.files.values()
                if (info := keys.parse_key(sf.key)) is not None and info.day == day
            ]
            markets = {
                i.ticker
                for rtype in core.RECORD_TYPES
                for o in self.s.normalized_store.list(
                    keys.normalized_day_prefix(self.s.env, self.s.feed, rtype, day)
                )
                if (i := keys.parse_key(o.key)) is not None and i.kind == "normalized" and i.ticker
            } | {i.ticker for _, i in open_files if i.ticker}
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
        if days is None:
            self._dirty_days = set()
        return written

    # ---- state ----------------------------------------------------------------------------

    def _save_state(self) -> None:
        tmp = self._state_path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps({"last_seq": self.last_seq, "last_ts": self.last_ts}))
        os.replace(tmp, self._state_path)

    def _load_state(self) -> None:
        with contextlib.suppress(FileNotFoundError, orjson.JSONDecodeError):
            state = orjson.loads(self._state_path.read_bytes())
            self.last_ts = int(state.get("last_ts", 0))
            self.last_seq = int(state.get("last_seq", 0))

    def recover(self, ack_floor: int) -> None:
        """Load the spool after a restart and finish interrupted seals."""
        self.s.spool_dir.mkdir(parents=True, exist_ok=True)
        # A kill during a seal can leave a temp file of an unfinished put; the seal is
        # redone below from the spool, so the temp file holds nothing needed.
        for store in (self.s.raw_store, self.s.normalized_store):
            store.discard_temporaries()
        self._load_state()
        for sf in self.spool.recover(ack_floor):
            self.recent |= sf.seqs
            self.last_ts = max(self.last_ts, sf.ts_last)
            info = keys.parse_key(sf.key)
            if info is not None:
                self._dirty_days.add((info.data_type, info.day))
        # The last sequence written before the restart. When the consumer's ack floor is
        # past it, the messages in between were removed from the stream (expired or
        # purged) before the archiver got them: the first delivery reports the hole.
        self.last_seq = max(
            [self.last_seq, *self.recent, *(sf.seq_last for sf in self.spool.files.values())]
        )
        self._replay = (ack_floor, self.last_seq)
        if ack_floor > self.last_seq and not self.last_seq:
            self.last_seq = ack_floor  # a new spool on an old consumer: nothing to compare
        self.seal_due()

    # ---- the loop ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        s = self.s
        nc = self.nc = await connect(s.nats_url, f"ssmd-archiver-{s.env}")
        try:
            js = nc.jetstream()
            filt = f"{s.subject_prefix}.>"
            info = await check_stream(js, s.stream, [filt])
            self.full_coverage = list(info.config.subjects or []) == [filt]
            cinfo = await ensure_consumer(js, s.stream, s.consumer, filt)
            floor = cinfo.ack_floor.stream_seq if cinfo.ack_floor else 0
            self.recover(floor)
            await self._serve_health()
            sub = Puller(nc, s.stream, s.consumer)
            await sub.start()
            log.info("archiving %s from %s (ack floor %d)", filt, s.stream, floor)
            last_check = 0.0
            while not stop.is_set():
                self.loop_at = time.monotonic()
                msgs = await self._fetch(sub, stop)
                if msgs:
                    first_seq = 0
                    if self.last_seq and min(m[2] for m in msgs) > self.last_seq + 1:
                        with contextlib.suppress(Exception):
                            first_seq = (await js.stream_info(s.stream)).state.first_seq
                    now_ns = time.time_ns()
                    batch = [
                        (seq, subject, payload, headers, stored or now_ns)
                        for subject, _, seq, stored, headers, payload, _ in msgs
                    ]
                    self.process(batch, first_seq)
                    self._maybe_crash("before_ack")
                    await self._ack(sub, msgs)
                mono = time.monotonic()
                if mono - last_check >= s.seal_check_interval:
                    last_check = mono
                    await self._prune(js)
                    await asyncio.to_thread(self.seal_due)
                    self._save_state()
            await self._shutdown(js)
        finally:
            if self.health_server is not None:
                await self.health_server.stop()
            self.spool.close()
            with contextlib.suppress(Exception):
                await nc.close()

    async def _serve_health(self) -> None:
        # Started once the consumer is in place and the spool recovered, so that a
        # supervisor polling /health (ssmd up) waits for an archiver that consumes.
        if self.s.health_port is None:
            return
        from ssmd.archiver import metrics

        registry = metrics.build_registry(self)
        self.health_server = HealthServer(
            lambda: metrics.health(self), registry.expose, self.s.health_host, self.s.health_port
        )
        await self.health_server.start()

    async def _fetch(self, sub: Puller, stop: asyncio.Event) -> list[Delivery]:
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
            return []
        try:
            return fetch.result()
        except (nats.errors.Error, OSError) as exc:
            log.warning("fetch failed: %s", exc)
            await asyncio.sleep(0.1)
            return []

    async def _ack(self, sub: Puller, msgs: list[Delivery]) -> None:
        try:
            await sub.ack(msgs)
        except Exception as exc:  # redelivered later; the spool dedupes it
            log.warning("ack failed (messages will be redelivered): %s", exc)

    async def _prune(self, js: Any) -> None:
        if not self.recent:
            return
        try:
            info = await js.consumer_info(self.s.stream, self.s.consumer.durable)
        except Exception:
            return
        floor = info.ack_floor.stream_seq if info.ack_floor else 0
        self.recent = {q for q in self.recent if q > floor}

    async def _shutdown(self, js: Any) -> None:
        log.info("archiver stopping: sealing what is due and writing manifests")
        self.spool.commit()
        await asyncio.to_thread(self.seal_due)
        for sf in self.spool.files.values():
            info = keys.parse_key(sf.key)
            if info is not None:
                self._dirty_days.add((info.data_type, info.day))
        await asyncio.to_thread(self.write_manifests)
        self._save_state()


def _int(value: str | None) -> int:
    try:
        return int(value) if value else 0
    except ValueError:
        return 0
