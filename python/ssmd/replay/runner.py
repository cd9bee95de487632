"""A replay: what to send (`plan`), the clock, the control endpoint and a target.

    p = plan("kalshi-dev", "2026-12-02", speed=10.0, replay_id="1", nats_url=...)
    await Replay(p, NatsTarget(p.replay)).run()

The loop reads the archive as a stream (ssmd.replay.source), hands each frame to the
target when the clock says it is due, in batches of up to BATCH entries that are all
due, and takes pause, resume and seek from the control endpoint between batches. A
seek reopens the archive at the time asked for and is announced with a gap notice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Protocol

from ssmd.archiver.gaps import iso_ns
from ssmd.config import Overrides, ResolvedEnvironment, load_environment
from ssmd.data.inventory import Archive
from ssmd.data.query import check_tickers, held_days_of, window
from ssmd.data.source import Dataset
from ssmd.exceptions import DataError
from ssmd.replay.clock import ReplayClock
from ssmd.replay.control import ControlServer, parse_time
from ssmd.replay.env import check_no_collision, replay_environment
from ssmd.replay.source import Entry, ReplaySource, as_event, gap_record
from ssmd.store import keys

__all__ = ["BATCH", "Replay", "ReplayPlan", "Target", "plan"]

log = logging.getLogger(__name__)

BATCH = 1024  # entries handed to the target at once


class Target(Protocol):
    async def start(self) -> None: ...
    async def ready(self) -> None:
        """Return when the clock may start (the kalshi target: a client subscribed)."""

    async def books(self, records: list[tuple[str, bytes]]) -> None:
        """The books to start from (ticker, `book` checkpoint record)."""

    async def send(self, entries: list[Entry]) -> None: ...
    async def stop(self) -> bool: ...
    def state(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ReplayPlan:
    live: ResolvedEnvironment
    replay: ResolvedEnvironment  # the replay's own name, stream and subjects
    ds: Dataset
    start_ns: int
    end_ns: int
    tickers: set[str] | None
    speed: float | None  # None: as fast as the target takes it


def _on_day(day: date, text: str | None, what: str, default: int) -> int:
    """A --from/--to value: a time of day on `day` (HH:MM[:SS]), a full time, or UTC
    nanoseconds."""
    if text is None:
        return default
    value = text.strip()
    try:
        if "T" in value or len(value) > 8:
            return parse_time(value)
        clock = time.fromisoformat(value)
    except ValueError:
        raise DataError(
            f"{what} {text!r} is not a time. Fix: HH:MM[:SS] on the day, or YYYY-MM-DDTHH:MM:SSZ"
        ) from None
    return window(datetime.combine(day, clock)).start_ns


def parse_speed(text: str) -> float | None:
    """`max`, or a positive number (1, 10, 0.5)."""
    if text.strip().lower() == "max":
        return None
    try:
        speed = float(text)
    except ValueError:
        speed = 0.0
    if not speed > 0:
        raise DataError(f"speed {text!r} is not a positive number or max. Fix: --speed 1|10|max")
    return speed


def plan(
    env: str,
    day_text: str,
    *,
    start: str | None = None,
    end: str | None = None,
    symbols: list[str] | None = None,
    speed: float | None = 1.0,
    replay_id: str = "1",
    nats_url: str | None = None,
    config_dir: str | Path | None = None,
    data_dir: str | Path | None = None,
    feed: str | None = None,
) -> ReplayPlan:
    """Checks the request against the configuration and the archive: DataError for a
    day without raw data (naming the days with some), a window outside the day or
    tickers not archived that day (naming close ones); ConfigError for a replay
    environment that collides with a configured one."""
    live = load_environment(
        env,
        config_dir,
        Overrides(nats_url=nats_url, data_dir=str(data_dir) if data_dir else None),
    )
    ds = Dataset(Archive.from_environment(live), feed or live.feed.metadata.name, live.data_dir)
    try:
        day = date.fromisoformat(day_text.strip())
    except ValueError:
        raise DataError(f"date {day_text!r} is not a day. Fix: --date YYYY-MM-DD") from None
    if day not in ds.days(keys.RAW_DATA_TYPE):
        raise DataError(
            f"no raw data in environment {ds.env} (feed {ds.feed}) on {day}; days with raw "
            f"data: {held_days_of(ds, [keys.RAW_DATA_TYPE])}. Fix: choose one of those"
        )
    whole = window(day)
    start_ns = _on_day(day, start, "--from", whole.start_ns)
    end_ns = _on_day(day, end, "--to", whole.end_ns)
    if not whole.start_ns <= start_ns < end_ns <= whole.end_ns:
        raise DataError(
            f"the window {iso_ns(start_ns)} to {iso_ns(end_ns)} is not within {day} or is "
            "empty. Fix: --from and --to on that day, --from first"
        )
    tickers = None
    if symbols:
        tickers = set(symbols)
        check_tickers(ds, sorted(tickers), tickers & ds.tickers_of([day]), "market", [day])
    replay = replay_environment(live, replay_id)
    check_no_collision(replay, config_dir)
    return ReplayPlan(live, replay, ds, start_ns, end_ns, tickers, speed)


class Replay:
    def __init__(
        self,
        p: ReplayPlan,
        target: Target,
        *,
        control_host: str = "127.0.0.1",
        control_port: int = 0,
    ) -> None:
        self.plan = p
        self.target = target
        self.clock = ReplayClock(p.start_ns, p.speed)
        self.source = ReplaySource(p.ds, p.start_ns, p.end_ns, p.tickers)
        self.control = ControlServer(self.clock, self.state, control_host, control_port)
        self.done = asyncio.Event()

    def state(self) -> dict[str, Any]:
        p = self.plan
        return {
            "env": p.live.name,
            "replay_env": p.replay.name,
            "from": iso_ns(p.start_ns),
            "to": iso_ns(p.end_ns),
            **self.clock.state(),
            "damaged_files": list(self.source.damaged),
            "target": self.target.state(),
        }

    async def run(
        self,
        stop: asyncio.Event | None = None,
        *,
        linger: bool = False,
        ready: Callable[[], None] | None = None,
    ) -> None:
        """Replay the window; with `linger`, keep the target and the control endpoint up
        after the end until `stop` is set. `ready` is called once both listen."""
        await self.control.start()
        await self.target.start()
        if ready is not None:
            ready()
        await self.target.ready()
        self.clock.restart()
        stopper = asyncio.Event() if stop is None else stop
        try:
            play = asyncio.create_task(self._play())
            waiter = asyncio.create_task(stopper.wait())
            await asyncio.wait([play, waiter], return_when=asyncio.FIRST_COMPLETED)
            if play.done():
                play.result()
                if linger:
                    await waiter
            play.cancel()
            waiter.cancel()
        finally:
            await self.target.stop()
            await self.control.stop()

    async def _play(self) -> None:
        clock = self.clock
        start: int | None = None
        while True:
            seek = await self._play_from(start)
            if seek is None:
                break
            log.info("replay seek to %s", iso_ns(seek))
            note = gap_record(seek, f"seek from {iso_ns(clock.position_ns)} to {iso_ns(seek)}")
            start = clock.take_seek()
            await self.target.send([Entry(seek, event=as_event(note))])
        clock.finished = True
        self.done.set()
        log.info("replay done: %d frames to %s", clock.frames, iso_ns(clock.position_ns))

    async def _play_from(self, start: int | None) -> int | None:
        """Send from `start` to the end; the time of a seek asked for on the way."""
        clock, source = self.clock, self.source
        batch: list[Entry] = []
        await self.target.books(source.books_at(self.plan.start_ns if start is None else start))
        entries = source.entries(start)
        try:
            for entry in entries:
                if clock.frames == 0 and not batch:
                    clock.skip_to(entry.receive_ns)  # no waiting for the day's first frame
                if not clock.due(entry.receive_ns):
                    await self._send(batch)
                    await clock.wait_until(entry.receive_ns)
                    if clock.seek_pending is not None:
                        return clock.seek_pending
                batch.append(entry)
                for notice in source.drain_notices():
                    batch.append(Entry(notice.receive_ns, event=notice))
                if len(batch) >= BATCH:
                    await self._send(batch)
                    if clock.seek_pending is not None:
                        return clock.seek_pending
            for notice in source.drain_notices():
                batch.append(Entry(notice.receive_ns, event=notice))
            await self._send(batch)
            return clock.seek_pending
        finally:
            entries.close()

    async def _send(self, batch: list[Entry]) -> None:
        if not batch:
            await asyncio.sleep(0)
            return
        await self.target.send(batch)
        self.clock.sent(max(e.receive_ns for e in batch), len(batch))
        batch.clear()
        await asyncio.sleep(0)  # the control endpoint answers between batches
