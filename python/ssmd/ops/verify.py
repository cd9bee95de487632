"""Verifying a day's archive after the teardown, and the day's figures.

Three checks (docs/operations.md, "Verification"):

- acked: every raw message the archiver acked since the day started (stream
  sequences from the day's first up to the archiver's ack floor, on the raw
  subjects) is in a sealed raw file or in the archiver's durable spool, found by
  its stream sequence (quarantined messages are in the day's quarantine files). The
  server counts the raw messages of that range; the archive's sequences in it must
  number as many. Only when they do not are the stream's sequences read one by one
  to name the missing ones;
- sealed: every file a manifest of the day lists has the sha256 the manifest says;
- gaps final: every manifest of the day was rebuilt after the connector stopped, so
  its gaps include the stop and none is left open by a running connector.

Normalized records carry no stream sequence, so they are covered by the sealed
check (the files' digests), not message by message.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from ssmd import core
from ssmd.bus import subjects
from ssmd.data.inventory import Archive
from ssmd.data.query import raw_line_seq
from ssmd.data.source import Dataset
from ssmd.store import keys

__all__ = ["DayFigures", "Verification", "combine", "day_figures", "days_between", "verify_day"]

ARCHIVER_DURABLE: Final = "archiver"  # ssmd.archiver.consumer's durable name
SAMPLE: Final = 20  # missing sequences and bad files listed at most (all are counted)
FETCH: Final = 1000


@dataclass
class Verification:
    ok: bool = False
    acked_checked: int = 0  # raw messages acked since the day started
    acked_messages: int = 0  # every message acked since the day started (records archived)
    missing: int = 0  # of those, found in no file and no spool
    missing_sample: list[int] = field(default_factory=list)
    files_checked: int = 0
    bad_files: list[str] = field(default_factory=list)  # key: what is wrong
    gaps_final: bool = False
    problems: list[str] = field(default_factory=list)
    # An environment of several venues: each further venue's own verification.
    venues: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DayFigures:
    records: int = 0  # records of every data type, sealed and pending
    bytes: int = 0  # sealed bytes
    gaps: int = 0
    quality_score: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def days_between(start: float, end: float) -> list[date]:
    """The UTC days from Unix time `start` to `end`, both included."""
    first = datetime.fromtimestamp(start, UTC).date()
    last = datetime.fromtimestamp(end, UTC).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _raw_seqs(blob: bytes) -> list[int]:
    """The stream sequences of the raw lines in one archive file."""
    out = []
    for line in core.read_archive(blob).data.splitlines():
        if line:
            seq = raw_line_seq(line)
            if seq is not None:
                out.append(seq)
    return out


def archived_seqs(archive: Archive, feed: str, days: list[date]) -> set[int]:
    """Stream sequences of every raw message of `days`: sealed, spooled, quarantined."""
    found: set[int] = set()
    ds = Dataset(archive, feed)
    for day in days:
        for f in ds.raw_files(day, include_open=True):
            found.update(_raw_seqs(f.load()))
        for obj in archive.raw_store.list(keys.raw_day_prefix(archive.env, feed, day)):
            info = keys.parse_key(obj.key)
            if info is not None and info.kind == "raw" and info.msgtype == keys.QUARANTINE_MSGTYPE:
                found.update(_raw_seqs(archive.raw_store.get(obj.key)))
    return found


async def ack_floor(js: Any, stream: str) -> int:
    """The archiver's ack floor: every stream sequence up to it is acked (0: none)."""
    from nats.js.errors import NotFoundError

    try:
        info = await js.consumer_info(stream, ARCHIVER_DURABLE)
    except NotFoundError:
        return 0
    return int(info.ack_floor.stream_seq or 0)


async def raw_count(js: Any, stream: str, env: str, feed: str, start_seq: int) -> int:
    """How many raw messages of the feed the stream holds from `start_seq` on, counted by
    the server (a consumer's pending count: no message is read)."""
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    info = await js.add_consumer(
        stream,
        ConsumerConfig(
            filter_subject=subjects.under(subjects.prefix(env, feed), "raw"),
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=max(1, start_seq),
            ack_policy=AckPolicy.NONE,
            inactive_threshold=60.0,
        ),
    )
    try:
        return int(info.num_pending or 0)
    finally:
        await js.delete_consumer(stream, info.name)


async def acked_seqs(
    js: Any, stream: str, env: str, feed: str, first_seq: int, floor: int
) -> list[int]:
    """Stream sequences of raw messages from `first_seq` up to `floor`."""
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    if floor < first_seq:
        return []
    sub = await js.pull_subscribe(
        subjects.under(subjects.prefix(env, feed), "raw"),
        durable=None,
        stream=stream,
        config=ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=max(1, first_seq),
            ack_policy=AckPolicy.NONE,
            headers_only=True,  # sequences only: the payloads are not needed
            inactive_threshold=60.0,
        ),
    )
    seqs: list[int] = []
    try:
        while True:
            try:
                msgs = await sub.fetch(FETCH, timeout=2.0)
            except TimeoutError:
                break
            done = False
            for m in msgs:
                seq = m.metadata.sequence.stream
                if seq > floor:
                    done = True
                    break
                seqs.append(seq)
            if done or not msgs:
                break
    finally:
        await sub.unsubscribe()
    return seqs


def check_sealed(archive: Archive, feed: str, days: list[date]) -> tuple[int, list[str]]:
    """(files checked, "key: problem" for each file of `feed` that does not match its
    manifest)."""
    checked, bad = 0, []
    for day in days:
        for manifest in archive.manifests(feed, day, day):
            store = (
                archive.raw_store
                if manifest["data_type"] == keys.RAW_DATA_TYPE
                else archive.normalized_store
            )
            for f in manifest.get("files", []):
                checked += 1
                try:
                    digest = hashlib.sha256(store.get(f["key"])).hexdigest()
                except FileNotFoundError:
                    bad.append(f"{f['key']}: listed in its manifest, missing from the store")
                    continue
                if digest != f["sha256"]:
                    bad.append(f"{f['key']}: sha256 {digest} but the manifest says {f['sha256']}")
    return checked, bad


def gaps_final(archive: Archive, feed: str, days: list[date], stopped_at: float) -> list[str]:
    """Problems with the day's gaps of `feed`: manifests not rebuilt since the connector
    stopped."""
    problems = []
    since = datetime.fromtimestamp(stopped_at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    for day in days:
        found = list(archive.manifests(feed, day, day))
        if not found:
            problems.append(f"{day}: no manifest")
            continue
        stale = sorted(m["data_type"] for m in found if str(m.get("created_at", "")) < since)
        if stale:
            problems.append(
                f"{day}: manifests of {', '.join(stale)} were written before the connector "
                f"stopped ({since}); their gaps are not final"
            )
    return problems


async def verify_day(
    env: Any, js: Any, days: list[date], first_seq: int, connector_stopped_at: float
) -> Verification:
    archive = Archive.from_environment(env)
    feed = env.feed.name
    v = Verification()
    stream = env.nats.stream
    floor = await ack_floor(js, stream)
    v.acked_messages = max(0, floor - first_seq + 1)
    if floor >= first_seq:
        # The archive is read in a thread: a day of a million frames takes long enough
        # that the event loop must stay free (the activity's heartbeats run on it).
        have = await asyncio.to_thread(archived_seqs, archive, feed, days)
        in_range = sum(1 for s in have if first_seq <= s <= floor)
        # The archive holds only raw messages' sequences, each once: when it holds as many
        # of the acked range as the stream does, it holds every one. Only when it holds
        # fewer are the stream's sequences read, to name the missing ones.
        acked = await raw_count(js, stream, env.name, feed, first_seq) - await raw_count(
            js, stream, env.name, feed, floor + 1
        )
        v.acked_checked = acked
        if in_range != acked:
            listed = await acked_seqs(js, stream, env.name, feed, first_seq, floor)
            missing = [s for s in listed if s not in have]
            v.acked_checked = len(listed)
            v.missing, v.missing_sample = len(missing), missing[:SAMPLE]
            if missing:
                v.problems.append(
                    f"{len(missing)} acked raw messages are in no sealed file and not in the "
                    f"spool (stream sequences {missing[:SAMPLE]})"
                )
    v.files_checked, bad = await asyncio.to_thread(check_sealed, archive, feed, days)
    v.bad_files = bad[:SAMPLE]
    if bad:
        v.problems.append(f"{len(bad)} sealed files do not match their manifests")
    stale = await asyncio.to_thread(gaps_final, archive, feed, days, connector_stopped_at)
    v.gaps_final = not stale
    v.problems.extend(stale)
    v.ok = not v.problems
    return v


def day_figures(env: Any, days: list[date]) -> DayFigures:
    """Records (sealed and pending, every data type), sealed bytes, gaps and the lowest
    quality score of `days`, from their manifests."""
    archive = Archive.from_environment(env)
    fig = DayFigures()
    scores = []
    for day in days:
        found = list(archive.manifests(env.feed.name, day, day))
        for m in found:
            fig.records += int(m.get("record_count", 0)) + int(
                (m.get("pending") or {}).get("records", 0)
            )
            fig.bytes += int(m.get("byte_size", 0))
        if found:
            newest = max(found, key=lambda m: m.get("created_at", ""))
            fig.gaps += len(newest.get("gaps", []))
            if newest.get("quality_score") is not None:
                scores.append(float(newest["quality_score"]))
    fig.quality_score = min(scores) if scores else None
    return fig


def combine(
    own: str, results: list[tuple[str, Verification, DayFigures]]
) -> tuple[Verification, DayFigures]:
    """One verification and one set of figures for a day across the feeds of an
    environment: counts and figures summed, the lowest quality score, ok when every
    feed's is; a further venue's problems (and bad files) carry its name, and each
    further venue's own verification is kept under `venues`."""
    v, fig = Verification(ok=True, gaps_final=True), DayFigures()
    scores = []
    for feed, one, figures in results:
        named = "" if feed == own else f"{feed}: "
        v.ok = v.ok and one.ok
        v.gaps_final = v.gaps_final and one.gaps_final
        v.acked_checked += one.acked_checked
        v.acked_messages += one.acked_messages
        v.missing += one.missing
        v.missing_sample += [] if named else one.missing_sample
        v.files_checked += one.files_checked
        v.bad_files += [named + bad for bad in one.bad_files]
        v.problems += [named + problem for problem in one.problems]
        if named:
            v.venues[feed] = one.as_dict()
        fig.records += figures.records
        fig.bytes += figures.bytes
        fig.gaps += figures.gaps
        if figures.quality_score is not None:
            scores.append(figures.quality_score)
    v.bad_files = v.bad_files[:SAMPLE]
    fig.quality_score = min(scores) if scores else None
    return v, fig
