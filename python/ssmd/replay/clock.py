"""The replay's clock: archive time running at a speed, paused, resumed or moved.

Archive time is the receive time of the frames (UTC nanoseconds). At speed s, one
second of wall time is s seconds of archive time; `speed=None` is as fast as the
target takes the frames. A replay loop asks `due(t)` before each frame and waits
with `wait_until(t)` when it is not; pause, resume and seek wake the waiter at once
(no polling). A seek is a request: the loop takes it with `take_seek()` and reopens
the archive there.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

__all__ = ["ReplayClock"]


class ReplayClock:
    def __init__(
        self,
        start_ns: int,
        speed: float | None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if speed is not None and not speed > 0:
            raise ValueError(f"speed must be more than 0, got {speed}")
        self._monotonic = monotonic
        self.speed = speed
        self.start_ns = start_ns
        self.position_ns = start_ns  # archive time of the last frame handed out
        self.paused = False
        self.frames = 0  # frames handed out
        self._anchor_archive = start_ns
        self._anchor_wall = monotonic()
        self._seek: int | None = None
        self._changed = asyncio.Event()
        self.waiting = asyncio.Event()  # set while the loop waits for a frame's time
        self.finished = False

    def now_ns(self) -> int:
        """The archive time the replay has reached: the clock's reading at a set speed,
        the last frame's time at maximum speed or while paused."""
        if self.speed is None or self.paused:
            return self.position_ns
        elapsed = self._monotonic() - self._anchor_wall
        return max(self.position_ns, self._anchor_archive + int(elapsed * self.speed * 1e9))

    def due(self, t_ns: int) -> bool:
        """True when a frame received at `t_ns` may go out now."""
        if self.paused or self._seek is not None:
            return False
        return self.speed is None or t_ns <= self.now_ns()

    async def wait_until(self, t_ns: int) -> None:
        """Return when `t_ns` is due, or at once when a seek is asked for."""
        self.waiting.set()
        try:
            while not self.due(t_ns) and self._seek is None:
                self._changed.clear()
                delay = None
                if not self.paused and self.speed is not None:
                    delay = (t_ns - self.now_ns()) / (self.speed * 1e9)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._changed.wait()
        finally:
            self.waiting.clear()

    def sent(self, t_ns: int, frames: int = 1) -> None:
        self.position_ns = max(self.position_ns, t_ns)
        self.frames += frames

    def _reanchor(self, at_ns: int) -> None:
        self._anchor_archive = at_ns
        self._anchor_wall = self._monotonic()
        self._changed.set()

    def skip_to(self, t_ns: int) -> None:
        """Jump ahead to `t_ns` (the first frame after the start) without waiting."""
        if t_ns > self.position_ns:
            self.position_ns = t_ns
            self._reanchor(t_ns)

    def restart(self) -> None:
        """Start the clock again from where it stands (after waiting for a client)."""
        self._reanchor(self.position_ns)

    def pause(self) -> None:
        if not self.paused:
            self.position_ns = self.now_ns()
            self.paused = True
            self._changed.set()

    def resume(self) -> None:
        if self.paused:
            self.paused = False
            self._reanchor(self.position_ns)

    def seek(self, to_ns: int) -> None:
        """Ask the loop to go on from `to_ns` (earlier or later)."""
        self._seek = to_ns
        self._changed.set()

    @property
    def seek_pending(self) -> int | None:
        """The time a seek asks for, until the loop takes it."""
        return self._seek

    def take_seek(self) -> int | None:
        """The time asked for by a seek since the last call, and the clock set there."""
        to, self._seek = self._seek, None
        if to is not None:
            self.position_ns = to
            self._reanchor(to)
        return to

    def state(self) -> dict[str, Any]:
        from ssmd.archiver.gaps import iso_ns

        now = self.now_ns()
        return {
            "time_ns": now,
            "time": iso_ns(now),
            "speed": "max" if self.speed is None else self.speed,
            "paused": self.paused,
            "frames": self.frames,
            "finished": self.finished,
        }
