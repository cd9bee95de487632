"""Waiting out a bucket that fails: what the archiver says, and when it tries again.

A bucket that cannot be reached (or refuses the archiver) is no reason to stop: acks
depend only on the local spool, so the archiver goes on consuming and spooling, and
seals later. It says so once (the bucket, the endpoint, the error class and the fix),
sums it up every 60 s, and says when the bucket is back. It tries again after a
backoff: 1 s doubling to 60 s with jitter while the store does not answer, every 60 s
while it refuses (a deleted bucket or revoked credentials wait for someone to fix them).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Final

from ssmd.exceptions import StoreUnavailableError

__all__ = ["BACKOFF_CAP", "SUMMARY_EVERY", "StoreOutage"]

BACKOFF_FIRST: Final = 1.0
BACKOFF_CAP: Final = 60.0
SUMMARY_EVERY: Final = 60.0


def _jitter(delay: float) -> float:
    # Spread the retries so that archivers waiting on one store do not return together.
    return delay * random.uniform(0.8, 1.2)


@dataclass
class StoreOutage:
    """One spell of a bucket failing."""

    error: StoreUnavailableError  # the latest failure
    since: float = field(default_factory=time.monotonic)
    failures: int = 1
    next_try: float = 0.0
    summarised: float = 0.0  # when it was last said

    def __post_init__(self) -> None:
        self.first_state = self.error.state  # what was said
        self.next_try = self.since + self._delay()
        self.summarised = self.since

    def _delay(self) -> float:
        if not self.error.transient:
            return _jitter(BACKOFF_CAP)
        return _jitter(min(BACKOFF_CAP, BACKOFF_FIRST * 2 ** (self.failures - 1)))

    def due(self, now: float) -> bool:
        return now >= self.next_try

    def failed_again(self, error: StoreUnavailableError, now: float) -> str | None:
        """Note another failure; returns a summary line when one is due."""
        self.error = error
        self.failures += 1
        self.next_try = now + self._delay()
        if now - self.summarised < SUMMARY_EVERY:
            return None
        self.summarised = now
        return (
            f"{error.state} still, for {now - self.since:.0f} s, {self.failures} failed "
            f"attempts (last: {error.code}); spooling and acking go on"
        )

    def first_words(self, spool: str) -> str:
        """What is said once, when the bucket first fails."""
        return (
            f"{self.error.state} ({self.error.code}): sealing waits, while consuming, "
            f"spooling and acking go on (the spool at {spool} holds the data); retrying "
            f"{'with a backoff up to 60 s' if self.error.transient else 'every 60 s'}. "
            f"{self.error}"
        )

    def last_words(self, now: float) -> str:
        """What is said when the bucket works again."""
        return (
            f"{self.first_state.split(': ', 1)[-1]} is back after {now - self.since:.0f} s "
            f"({self.failures} failed attempts): sealing resumed"
        )
