"""The archive of a chaos run against the simulator's ground truth.

`read_archive` takes everything archived (sealed objects and the archiver's spool, raw
and normalized, quarantined messages included); `compare` matches it with what the
simulator sent and with the outages the run caused, and returns the figures and every
problem found (it does not stop at the first, so a failing run tells the whole story).

Ground truth per simulator connection: the SHA-256 of every frame sent, in order, and
when it opened and closed. Each connection the archive holds must be a prefix of one
the simulator sent; a missing tail is allowed only on connections the run cut (a
connector killed, stopped or disconnected while frames were in flight), and for a
connector stopped with SIGTERM only beyond what it reported received. Normalized
records must be exactly what the connector's normalization makes of the archived
frames, each once.
"""

from __future__ import annotations

import base64
import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import orjson

from ssmd import core
from ssmd.archiver.gaps import compute_gaps
from ssmd.data.inventory import Archive
from ssmd.store import keys

__all__ = ["Archived", "Figures", "Outage", "Run", "compare", "read_archive"]

TOLERANCE = 3.0  # seconds: how far a gap's start and end may be from the truth
NS = 1_000_000_000


@dataclass
class Outage:
    """Capture stopped at `start` (wall seconds); the archive must show `gaps` gaps with
    `reason`, ending when the simulator next accepted a connection (`final`: open until
    the archive's horizon, the end of the run)."""

    reason: str
    start: float
    gaps: int = 1
    final: bool = False
    closed: tuple[int, ...] = ()  # simulator connections it cut (a disconnect)


@dataclass
class Run:
    """One connector process: when it ran, how it ended, what it said it received."""

    started_at: float
    stopped_at: float
    exit_code: int
    frames_received: int | None = None  # from its `connector stopped` log line


@dataclass
class Archived:
    frames: dict[int, list[tuple[int, int, bytes]]]  # conn id -> [(stream seq, rns, frame)]
    records: list[tuple[bytes, dict[str, Any]]]  # (packed record, decoded), events excluded
    events: list[dict[str, Any]]
    gaps: list[dict[str, Any]]
    quarantined: int  # messages kept raw in quarantine
    stream_seqs: list[int]  # of every raw line and quarantined message


@dataclass
class Figures:
    sent: int = 0
    archived: int = 0
    lost_at_kill: int = 0  # in flight when a connector was killed (allowed)
    unreceived_at_stop: int = 0  # sent after a stopped connector stopped reading (allowed)
    lost_at_disconnect: int = 0  # in the socket when the simulator cut it (allowed)
    lost: int = 0  # anything else: a defect
    duplicated: int = 0
    records_expected: int = 0
    records_archived: int = 0
    records_missing: int = 0
    quarantined: int = 0
    gaps_expected: list[str] = field(default_factory=list)
    gaps_reported: list[str] = field(default_factory=list)
    gaps_in_events: list[str] = field(default_factory=list)  # what the archived events make
    problems: list[str] = field(default_factory=list)

    def line(self, name: str) -> str:
        return (
            f"{name}: sent {self.sent}, archived {self.archived}, lost {self.lost} "
            f"(+{self.lost_at_kill} in flight at kill -9, {self.unreceived_at_stop} unreceived "
            f"at SIGTERM, {self.lost_at_disconnect} at disconnect), duplicated {self.duplicated}, "
            f"records {self.records_archived}/{self.records_expected} "
            f"(quarantined {self.quarantined}); gaps expected {self.gaps_expected}, "
            f"reported {self.gaps_reported} (the archived events make {self.gaps_in_events})"
        )


# ---- reading -----------------------------------------------------------------------------------


def _frame_of(line: bytes, obj: dict[str, Any]) -> bytes:
    """The frame as received: spliced in byte for byte after "data":, or kept as text/base64."""
    if "data" in obj:
        start = line.index(b',"data":') + len(b',"data":')
        return line[start : line.rindex(b',"conn":')]
    if "data_text" in obj:
        return str(obj["data_text"]).encode()
    return base64.b64decode(obj["data_b64"])


def _blobs(arc: Archive, kind: str) -> list[bytes]:
    """Every archive file of a kind: sealed objects, then the spool."""
    store = arc.raw_store if kind == "raw" else arc.normalized_store
    suffix = ".jsonl.zst" if kind == "raw" else ".capnp.zst"
    out = [store.get(o.key) for o in store.list(f"{arc.env}/") if o.key.endswith(suffix)]
    if arc.spool_dir is not None:
        out += [p.read_bytes() for p in sorted((arc.spool_dir / "files" / kind).rglob("*.spool"))]
    return out


def _join_days(gaps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One gap again for an outage across midnight (each day's manifest has its part)."""
    out: list[dict[str, Any]] = []
    for g in sorted(gaps, key=lambda g: (g["reason"], int(g["start_ns"]))):
        last = out[-1] if out else None
        start = int(g["start_ns"])
        if (
            last is not None
            and last["reason"] == g["reason"]
            and int(last["end_ns"]) == start
            and start % core.DAY_NS == 0
        ):
            end = int(g["end_ns"])
            out[-1] = last | {"end_ns": end, "duration_s": (end - int(last["start_ns"])) / NS}
        else:
            out.append(g)
    return sorted(out, key=lambda g: int(g["start_ns"]))


def read_archive(arc: Archive, feed: str) -> Archived:
    frames: dict[int, list[tuple[int, int, bytes]]] = defaultdict(list)
    packed: list[bytes] = []
    quarantined = 0
    seqs: list[int] = []
    for blob in _blobs(arc, "raw"):
        for line in core.read_archive(blob).data.splitlines():
            obj = orjson.loads(line)
            seqs.append(int(obj["seq"]))
            if obj["type"] == keys.QUARANTINE_MSGTYPE:
                quarantined += 1
                payload = base64.b64decode(obj["data_b64"])
                if ".raw." in obj["subject"]:
                    headers = obj.get("headers") or {}
                    conn = int(headers[core.CONN_HEADER])
                    frames[conn].append((int(obj["seq"]), int(obj["rns"]), payload))
                else:
                    packed.append(payload)
            elif "conn" in obj:
                frames[int(obj["conn"])].append(
                    (int(obj["seq"]), int(obj["rns"]), _frame_of(line, obj))
                )
    for blob in _blobs(arc, "normalized"):
        data = core.read_archive(blob).data
        packed.extend(data[a:b] for a, b in core.record_spans(data))
    records: list[tuple[bytes, dict[str, Any]]] = []
    events: list[dict[str, Any]] = []
    for payload in packed:
        (rec,) = core.decode_records(payload)
        if rec["kind"] == "connector_event":
            events.append(rec)
        else:
            records.append((payload, rec))
    days = sorted({r["date"] for r in arc.inventory(feed)})
    gaps = _join_days([g for day in days for g in arc.gaps(feed, date.fromisoformat(day))])
    return Archived(
        {c: sorted(v) for c, v in frames.items()}, records, events, gaps, quarantined, seqs
    )


# ---- comparing ---------------------------------------------------------------------------------


def _match(
    archived: dict[int, list[str]], sent: dict[int, list[str]]
) -> tuple[dict[int, int], list[int]]:
    """Archive connection -> simulator connection whose frames it holds as a prefix.

    Longest first, an exact match preferred, so that a short connection that is a
    prefix of a longer one (two connections that only got `subscribed`) cannot take
    the longer one's place. Returns the mapping and the archive connections that
    match nothing."""
    mapping: dict[int, int] = {}
    unmatched = []
    for conn, hashes in sorted(archived.items(), key=lambda kv: -len(kv[1])):
        free = [n for n in sent if n not in mapping.values()]
        exact = [n for n in free if sent[n] == hashes]
        prefix = [n for n in free if sent[n][: len(hashes)] == hashes]
        if exact or prefix:
            mapping[conn] = (exact or prefix)[0]
        else:
            unmatched.append(conn)
    return mapping, unmatched


def _first_difference(
    hashes: list[str], items: list[tuple[int, int, bytes]], sent: dict[int, list[str]]
) -> str:
    """Where an archived connection leaves the simulator connection it starts like: the
    simulator's positions of the frames archived from there, with their stream sequences."""
    for number, truth in sent.items():
        if not truth or not hashes or truth[0] != hashes[0]:
            continue
        at = next(
            (i for i, (a, b) in enumerate(zip(hashes, truth, strict=False)) if a != b), len(truth)
        )
        position = {h: i for i, h in enumerate(truth)}
        window = range(max(0, at - 2), min(len(hashes), at + 10))
        sent_at = [position.get(hashes[i]) for i in window]
        seqs = [items[i][0] for i in window]
        return (
            f"; from archived frame {at} on, simulator connection {number}'s frames "
            f"{sent_at} (None: never sent there) at stream sequences {seqs}"
        )
    return ""


def _expected_records(frames: dict[int, list[tuple[int, int, bytes]]]) -> Counter[bytes]:
    """What the connector publishes for these frames: normalize_kalshi per connection."""
    out: Counter[bytes] = Counter()
    for conn, items in frames.items():
        batch = core.normalize_kalshi([f for _, _, f in items], [r for _, r, _ in items], conn)
        data = batch.data
        out.update(data[start:end] for _fi, _rtype, _ticker, start, end in batch.records)
    return out


def _gap_text(g: dict[str, Any], t0: float) -> str:
    start = int(g["start_ns"]) / NS - t0
    return f"{g['reason']}@{start:+.1f}s/{float(g['duration_s']):.1f}s"


def compare(
    truth: dict[str, Any],
    arc: Archived,
    outages: list[Outage],
    runs: list[Run],
    t0: float,
) -> Figures:
    """Figures and problems of a run; `t0` (wall seconds) only makes the texts readable."""
    fig = Figures()
    problems = fig.problems
    conns = {c["number"]: c for c in truth["connections"]}
    sent = {n: c["frame_sha256"] for n, c in conns.items() if c["frames_sent"]}
    fig.sent = sum(len(h) for h in sent.values())
    fig.archived = sum(len(v) for v in arc.frames.values())
    fig.quarantined = arc.quarantined

    # Each stream sequence once; each connection a prefix of what the simulator sent.
    dup_seqs = sum(n - 1 for n in Counter(arc.stream_seqs).values() if n > 1)
    if dup_seqs:
        problems.append(f"{dup_seqs} stream sequences archived more than once")
    fig.duplicated += dup_seqs
    hashes = {
        c: [hashlib.sha256(f).hexdigest() for _, _, f in items] for c, items in arc.frames.items()
    }
    mapping, unmatched = _match(hashes, sent)
    for conn in unmatched:
        problems.append(
            f"archive connection {conn}: its {len(hashes[conn])} frames are not a prefix of "
            "any connection of the simulator (a frame lost in the middle, reordered or twice)"
            + _first_difference(hashes[conn], arc.frames[conn], sent)
        )
    held = {n: len(hashes[c]) for c, n in mapping.items()}

    # Which connections may miss a tail, and why.
    killed = [r for r in runs if r.exit_code == -9]
    termed = [r for r in runs if r.exit_code == 0 and r.frames_received is not None]
    cut = {n for o in outages for n in o.closed}

    def run_of(n: int, among: list[Run]) -> Run | None:
        opened = conns[n]["opened_at"]
        return next((r for r in among if r.started_at <= opened < r.stopped_at), None)

    for n, frames in sorted(sent.items()):
        missing = len(frames) - held.get(n, 0)
        if missing == 0:
            continue
        if run_of(n, killed) is not None:
            fig.lost_at_kill += missing
        elif run_of(n, termed) is not None:
            fig.unreceived_at_stop += missing
        elif n in cut:
            fig.lost_at_disconnect += missing
        else:
            fig.lost += missing
            problems.append(f"simulator connection {n}: {missing} of {len(frames)} frames lost")
    for r in termed:
        mine = [n for n in sent if run_of(n, [r]) is not None]
        got = sum(held.get(n, 0) for n in mine)
        if got != r.frames_received:
            problems.append(
                f"the connector stopped at {r.stopped_at - t0:+.1f}s reported "
                f"{r.frames_received} frames received; the archive holds {got} of them"
            )

    # Normalized records: exactly what the archived frames make, each once.
    expected = _expected_records(arc.frames)
    got_records = Counter(p for p, _ in arc.records)
    fig.records_expected = sum(expected.values())
    fig.records_archived = sum(got_records.values())
    twice = sum(n - 1 for n in got_records.values() if n > 1)
    if twice:
        problems.append(f"{twice} normalized records archived more than once")
    fig.duplicated += twice
    extra = got_records - expected
    if extra:
        problems.append(f"{sum(extra.values())} normalized records that no archived frame makes")
    missing_records = expected - got_records
    fig.records_missing = sum(missing_records.values())
    if missing_records:
        # A connector killed between publishing a batch's frames and its records.
        killed_conns = {c for c, n in mapping.items() if run_of(n, killed) is not None}
        decoded = {p: r for p, r in ((p, core.decode_records(p)[0]) for p in missing_records)}
        blamed = sum(
            missing_records[p] for p, r in decoded.items() if r["conn_id"] not in killed_conns
        )
        if blamed:
            tickers = sorted({r.get("ticker", "") for r in decoded.values()})[:10]
            problems.append(f"{blamed} normalized records missing (tickers {tickers})")
    trade_ids = Counter(r["trade_id"] for _, r in arc.records if r["kind"] == "trade")
    dup_trades = sum(n - 1 for n in trade_ids.values() if n > 1)
    if dup_trades:
        problems.append(f"{dup_trades} trade ids archived more than once")

    # Gaps: every outage with its reason and span, nothing else.
    opened = sorted(c["opened_at"] for c in conns.values())
    want = []
    for o in outages:
        end = None if o.final else next((t for t in opened if t > o.start), None)
        want.append((o, end))
        span = "open" if end is None else f"{end - o.start:.1f}s"
        fig.gaps_expected.append(f"{o.reason}@{o.start - t0:+.1f}s/{span}x{o.gaps}")
    fig.gaps_reported = [_gap_text(g, t0) for g in arc.gaps]
    # For the diagnosis only: the gaps the archived events make, read straight from them.
    if arc.events:
        stamps = [int(e["receive_ts"]) for e in arc.events]
        fig.gaps_in_events = [
            _gap_text(g, t0) for g in compute_gaps(arc.events, min(stamps), max(stamps))
        ]
    found: Counter[int] = Counter()
    for g in arc.gaps:
        start, end = int(g["start_ns"]) / NS, int(g["end_ns"]) / NS
        hit = next(
            (
                i
                for i, (o, o_end) in enumerate(want)
                if g["reason"] == o.reason
                and abs(start - o.start) <= TOLERANCE
                and (o.final or (o_end is not None and abs(end - o_end) <= TOLERANCE))
            ),
            None,
        )
        if hit is None:
            problems.append(f"gap where the truth has none: {_gap_text(g, t0)} ({g['detail']})")
        else:
            found[hit] += 1
    for i, (o, _) in enumerate(want):
        if found[i] < o.gaps:
            problems.append(
                f"outage not in the archive: {fig.gaps_expected[i]} "
                f"({found[i]} of {o.gaps} gaps with that reason and span)"
            )
    return fig
