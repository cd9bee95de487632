"""Waiting out a full disk: what the archiver says, and when it tries again.

A full disk is no reason to stop: what the archiver has not acked stays in the stream.
So it stops writing and acking, says once which file is full and how much the write
needed, and tries again (the spool taken up from disk, as at a restart) as soon as that
much space is free, or after a backoff (1 s, doubling, at most 60 s) in any case.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Final

from ssmd.exceptions import DiskFullError
from ssmd.store import space

__all__ = ["BACKOFF_CAP", "DiskWait"]

BACKOFF_FIRST: Final = 1.0
BACKOFF_CAP: Final = 60.0
ROOM: Final = 1 << 20  # free bytes that count as "space is back" when the need is unknown


@dataclass
class DiskWait:
    """One spell of a full disk."""

    error: DiskFullError  # the latest failed write
    since: float = field(default_factory=time.monotonic)
    retries: int = 0
    next_try: float = 0.0

    def __post_init__(self) -> None:
        self.next_try = self.since + BACKOFF_FIRST
        self.first_path = self.error.path  # what was said

    def due(self, now: float) -> bool:
        """Time to try again: the space the write needed is free, or the backoff is over."""
        if now >= self.next_try:
            return True
        want = self.error.needed if self.error.needed > 0 else ROOM
        return space.free_bytes(self.error.path) >= want

    def failed_again(self, error: DiskFullError, now: float) -> None:
        self.error = error
        self.retries += 1
        self.next_try = now + min(BACKOFF_CAP, BACKOFF_FIRST * 2**self.retries)

    def first_words(self) -> str:
        """What is said once, when the disk is found full."""
        e = self.error
        need = f"needs {e.needed:,} bytes" if e.needed > 0 else "needs more space"
        have = f", {e.free:,} free" if e.free >= 0 else ""
        return (
            f"disk full: cannot write {e.path} ({need}{have}); not acking: the stream "
            "keeps the messages, and archiving resumes by itself when space returns. "
            "Fix: free space on that filesystem, or move the data dir (--data-dir) to a "
            "bigger one"
        )

    def last_words(self, now: float) -> str:
        """What is said when archiving resumes."""
        return (
            f"disk space is back for {self.first_path}: archiving resumed after "
            f"{now - self.since:.0f} s ({self.retries} retries)"
        )
