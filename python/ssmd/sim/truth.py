"""Ground truth: what the simulator sent on each connection, and the final books.

Per connection it keeps the exact bytes of every frame sent, up to `record_limit`
frames (beyond that only counts and the running SHA-256 digest grow, and
`frames_unrecorded` says how many bytes-records were not kept), per-sid seq ranges, and
the faults applied. Set `record_limit=0` to keep counts and digests only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from ssmd.sim.book import BookState

__all__ = ["ConnectionRecord", "FaultRecord", "SidRecord", "Truth"]


@dataclass
class SidRecord:
    channel: str
    frames: int = 0
    first_seq: int | None = None
    last_seq: int | None = None


@dataclass(frozen=True)
class FaultRecord:
    kind: str
    connection: int | None
    ts: float
    detail: str = ""


@dataclass
class ConnectionRecord:
    number: int
    key_id: str | None
    opened_at: float
    closed_at: float | None = None
    peer: tuple[str, int] | None = None  # the client's address
    frames: list[bytes] = field(default_factory=list)
    frames_sent: int = 0
    frames_unrecorded: int = 0
    bytes_sent: int = 0
    sids: dict[int, SidRecord] = field(default_factory=dict)
    commands: int = 0
    _digest: hashlib._Hash = field(default_factory=hashlib.sha256, repr=False)

    @property
    def digest(self) -> str:
        """SHA-256 over every frame sent, each followed by a newline."""
        return self._digest.hexdigest()


class Truth:
    def __init__(self, record_limit: int = 200_000) -> None:
        self.record_limit = record_limit
        self.connections: dict[int, ConnectionRecord] = {}
        self.faults: list[FaultRecord] = []
        self.handshakes = 0
        self.rejected_handshakes = 0
        self.rest_requests = 0
        self.rest_429 = 0
        self.rest_cache_hits = 0
        self._books: dict[str, BookState] | None = None

    def open(self, number: int, key_id: str | None, ts: float) -> ConnectionRecord:
        rec = ConnectionRecord(number, key_id, ts)
        self.connections[number] = rec
        return rec

    def sent(self, rec: ConnectionRecord, frames: list[bytes]) -> None:
        room = self.record_limit - len(rec.frames)
        if room >= len(frames):
            rec.frames.extend(frames)
        else:
            if room > 0:
                rec.frames.extend(frames[:room])
            rec.frames_unrecorded += len(frames) - max(room, 0)
        h = rec._digest
        for f in frames:
            h.update(f)
            h.update(b"\n")
            rec.bytes_sent += len(f)
        rec.frames_sent += len(frames)

    def fault(self, kind: str, connection: int | None, ts: float, detail: str = "") -> None:
        self.faults.append(FaultRecord(kind, connection, ts, detail))

    def faults_of(self, kind: str) -> list[FaultRecord]:
        return [f for f in self.faults if f.kind == kind]

    def freeze_books(self, books: dict[str, BookState]) -> None:
        self._books = books

    @property
    def books(self) -> dict[str, BookState]:
        """Final book of every market (set when the simulator stops)."""
        if self._books is None:
            raise RuntimeError(
                "books are frozen when the simulator stops; use Simulator.book() while running"
            )
        return self._books
