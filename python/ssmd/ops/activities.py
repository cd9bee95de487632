"""The activities of the daily workflows: each one idempotent, bounded and retried.

Every activity works through the worker's Runtime (ssmd.ops.runtime), so a retry,
or a resume on a restarted worker after the first one was killed, finds what the
first attempt did (a started component runs: it is waited for, not started again;
a stopped one is not stopped twice; a day opened by this workflow run is found
again). Waits heartbeat, so Temporal notices a dead worker within the heartbeat
timeout and retries on another. A configuration error is not retried.

An environment that captures several venues is one day across its feeds: each feed's
secmaster is synced, its stream's first sequence recorded, its archive verified.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from temporalio import activity
from temporalio.exceptions import ApplicationError

from ssmd.exceptions import ChildFailed, ConfigError
from ssmd.ops import days as day_records
from ssmd.ops.runtime import Runtime
from ssmd.ops.verify import (
    DayFigures,
    Verification,
    combine,
    day_figures,
    days_between,
    verify_day,
)
from ssmd.secmaster.model import now_iso
from ssmd.up.children import ChildSpec, Supervisor

__all__ = ["Activities"]

POLL: Final = 0.5  # seconds between looks at a condition the components report
DRAIN_POLL: Final = 0.1
BEAT: Final = 2.0  # seconds between heartbeats of a long step (the timeout is 10 s)


def _heartbeat(*details: Any) -> None:
    if activity.in_activity():
        activity.heartbeat(*details)


@contextlib.asynccontextmanager
async def _beating(*details: Any) -> AsyncIterator[None]:
    """Heartbeats every BEAT seconds while the body runs: a long step (the verification of
    a day of a million frames) would otherwise outlast the heartbeat timeout."""

    async def beat() -> None:
        while True:
            _heartbeat(*details)
            await asyncio.sleep(BEAT)  # the heartbeat period

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class Activities:
    """Bound to one environment and one runtime (the worker's). `venues`: the environment
    resolved for each of its further venues (`load_environment(name, feed=...)`)."""

    def __init__(
        self, env: Any, runtime: Runtime, client: Any = None, venues: Sequence[Any] = ()
    ) -> None:
        self.env, self.runtime, self.client = env, runtime, client
        self.envs = [env, *venues]

    # ---- helpers -------------------------------------------------------------------------

    async def _guard(self, component: str, step: Any) -> Any:
        """Run `step`; record its error on `component` (for `ssmd ops status`) and turn a
        configuration error into one Temporal does not retry."""
        try:
            result = await step
        except ConfigError as exc:
            self.runtime.record_error(component, str(exc))
            raise ApplicationError(str(exc), type="ConfigError", non_retryable=True) from None
        except ChildFailed as exc:
            why = f"{exc.name} {exc.why}" + (f": {' | '.join(exc.tail[-3:])}" if exc.tail else "")
            self.runtime.record_error(component, why)
            raise ApplicationError(why, type="ComponentFailed") from None
        self.runtime.record_error(component, None)
        return result

    async def _nats(self) -> Any:
        import nats

        async def quiet(_exc: Exception) -> None:
            return None  # failures surface as the calls' own errors

        return await nats.connect(
            self.runtime.nats_url(), connect_timeout=5, max_reconnect_attempts=3, error_cb=quiet
        )

    def _store(self) -> Any:
        from ssmd.secmaster.db import open_store

        return open_store(self.env)

    async def _record(self, day: dict[str, Any], nc: Any) -> None:
        """A day's change to the journal and, when configured, Redis."""
        await day_records.publish(nc.jetstream(), self.env.name, day)
        if self.env.redis_url:
            await day_records.cache(self.env.redis_url, self.env.name, day)

    # ---- startup -------------------------------------------------------------------------

    @activity.defn(name="prepare")
    async def prepare(self) -> dict[str, Any]:
        """NATS and the simulator, where this runtime runs them."""
        result: dict[str, Any] = await self._guard("nats", self.runtime.prepare(_heartbeat))
        return result

    @activity.defn(name="components")
    async def components(self) -> dict[str, list[str]]:
        """The components the day starts and stops, per kind (`component_names`)."""
        return self.runtime.components

    @activity.defn(name="sync_secmaster")
    async def sync_secmaster(self) -> dict[str, Any]:
        """One `ssmd market sync` per feed (idempotent: an unchanged market writes
        nothing); per feed, its figures."""

        async def sync(feed: str, argv: list[str]) -> dict[str, Any]:
            import orjson

            name = "secmaster-sync" if feed == self.env.feed.name else f"secmaster-sync-{feed}"
            spec = ChildSpec(
                name,
                argv,
                restart=False,
                capture_stdout=True,
                log_path=self.env.data_dir / "logs" / f"{name}.log",
            )
            sup = Supervisor(lambda *_: None)
            task = asyncio.create_task(sup.run_once(spec, 300.0))
            while not task.done():
                _heartbeat("syncing", feed)
                await asyncio.wait({task}, timeout=2.0)
            child = task.result()
            try:
                report = orjson.loads("\n".join(child.stdout))
            except orjson.JSONDecodeError:
                return {}
            return {k: report.get(k) for k in ("series", "events", "markets", "seconds")}

        async def run() -> dict[str, Any]:
            commands = await self.runtime.sync_commands()
            return {feed: await sync(feed, argv) for feed, argv in commands.items()}

        result: dict[str, Any] = await self._guard("secmaster-sync", run())
        return result

    @activity.defn(name="start_component")
    async def start_component(self, name: str) -> str:
        result: str = await self._guard(name, self.runtime.start(name, _heartbeat))
        return result

    @activity.defn(name="open_day")
    async def open_day(self, opened_by: str) -> dict[str, Any]:
        """The trading day this startup opens (found again on a retry)."""
        nc = await self._nats()
        try:
            js = nc.jetstream()
            seqs = {env.feed.name: await _next_seq(js, env.nats.stream) for env in self.envs}
            first_seq = seqs.pop(self.env.feed.name)
            tz = ZoneInfo(self.env.schedule.timezone)
            trading_date = datetime.now(tz).date().isoformat()
            with self._store() as store:
                day = day_records.Days(store, self.env.name).open(
                    trading_date, opened_by, first_seq, seqs
                )
            await self._record(day, nc)
        finally:
            await nc.close()
        return day

    @activity.defn(name="wait_flowing")
    async def wait_flowing(self, timeout: float) -> dict[str, Any]:
        """Until a frame went from the exchange through the connector and NATS into the
        archive, and the gateway answers; the seconds it took and the figures."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        while True:
            flow = await self.runtime.flow()
            if flow.flowing:
                self.runtime.record_error("health", None)
                return {
                    "seconds": round(time.monotonic() - t0, 3),
                    "frames_received": flow.frames_received,
                    "records_archived": flow.records_archived,
                }
            if time.monotonic() >= deadline:
                idle = f" (nothing through {', '.join(flow.idle)})" if flow.idle else ""
                why = (
                    f"no data flowing end to end after {timeout:g} s: frames received "
                    f"{flow.frames_received:g}, records archived {flow.records_archived:g}"
                    f"{idle}, gateway {'up' if flow.gateway_ok else 'not answering'}"
                )
                self.runtime.record_error("health", why)
                raise ApplicationError(why, type="NotFlowing")
            _heartbeat(flow.frames_received, flow.records_archived)
            await asyncio.sleep(POLL)  # the poll interval of the components' metrics

    # ---- teardown ------------------------------------------------------------------------

    @activity.defn(name="wait_startups")
    async def wait_startups(self, timeout: float) -> dict[str, Any]:
        """Until no DailyStartup of this environment runs: a teardown that comes while a
        startup is still starting components waits for it, or the startup would start
        what the teardown just stopped."""
        from ssmd.ops.temporal import task_queue

        if self.client is None:
            return {"waited_s": 0.0}
        query = (
            f'TaskQueue = "{task_queue(self.env.name)}" AND WorkflowType = "DailyStartup" '
            'AND ExecutionStatus = "Running"'
        )
        t0 = time.monotonic()
        while True:
            running = [wf.id async for wf in self.client.list_workflows(query)]
            if not running:
                return {"waited_s": round(time.monotonic() - t0, 3)}
            if time.monotonic() - t0 >= timeout:
                raise ApplicationError(
                    f"{', '.join(running)} still running after {timeout:g} s", type="Busy"
                )
            _heartbeat(running)
            await asyncio.sleep(POLL)  # Temporal's visibility is polled

    @activity.defn(name="stop_component")
    async def stop_component(self, name: str) -> dict[str, Any]:
        outcome = await self._guard(name, self.runtime.stop(name, _heartbeat))
        return {"outcome": outcome, "at": time.time()}

    @activity.defn(name="wait_archived")
    async def wait_archived(self, timeout: float) -> dict[str, Any]:
        """Until each feed's archiver consumer has nothing pending (what the connectors
        drained is in the archivers' hands before they are stopped); per feed, how it
        ended, all within `timeout`."""
        nc = await self._nats()
        try:
            js = nc.jetstream()
            deadline = time.monotonic() + timeout
            return {
                env.feed.name: await _drained(js, env.nats.stream, deadline) for env in self.envs
            }
        finally:
            await nc.close()

    @activity.defn(name="close_day")
    async def close_day(self, connector_stopped_at: float) -> dict[str, Any]:
        """Verify the archive of the current day, record its figures, publish the summary."""
        nc = await self._nats()
        try:
            with self._store() as store:
                days = day_records.Days(store, self.env.name)
                day = days.current()
                if day is None:  # already closed by an earlier attempt: the newest day
                    done = days.history(1)
                    if not done:
                        raise ApplicationError("no trading day to close", non_retryable=True)
                    return done[0]
                day = days.update(day["id"], state="ending")
                first_seqs = {self.env.feed.name: int(day["first_seq"] or 1)}
                first_seqs |= days.venue_seqs(day["id"])
            await self._record(day, nc)
            started = datetime.fromisoformat(str(day["started_at"]).replace("Z", "+00:00"))
            span = days_between(started.timestamp(), time.time())
            async with _beating("verifying"):
                verification, figures = await self._verify(
                    nc.jetstream(), span, first_seqs, connector_stopped_at
                )
            with self._store() as store:
                day = day_records.Days(store, self.env.name).update(
                    day["id"],
                    state="ended" if verification.ok else "failed",
                    ended_at=now_iso(),
                    # The day's own: its stream messages archived (raw frames, normalized
                    # records, events); the manifests' totals are the whole UTC date's.
                    records=verification.acked_messages,
                    bytes=figures.bytes,
                    gaps=figures.gaps,
                    quality_score=figures.quality_score,
                    verification=verification.as_dict(),
                )
            await self._record(day, nc)
        finally:
            await nc.close()
        if not verification.ok:
            self.runtime.record_error("verification", "; ".join(verification.problems))
        else:
            self.runtime.record_error("verification", None)
        return day

    async def _verify(
        self, js: Any, span: list[Any], first_seqs: dict[str, int], stopped_at: float
    ) -> tuple[Verification, DayFigures]:
        """Each feed's archive verified from its first sequence of the day (a feed with
        none recorded, added since the day opened, from the stream's start), and the
        figures of them all: one verification, a further venue's problems named by it."""
        results = []
        for env in self.envs:
            feed = env.feed.name
            one = await verify_day(env, js, span, first_seqs.get(feed, 1), stopped_at)
            figures = await asyncio.to_thread(day_figures, env, span)
            results.append((feed, one, figures))
        return combine(self.env.feed.name, results)

    def all(self) -> list[Any]:
        return [
            self.components,
            self.prepare,
            self.sync_secmaster,
            self.start_component,
            self.open_day,
            self.wait_flowing,
            self.wait_startups,
            self.stop_component,
            self.wait_archived,
            self.close_day,
        ]


async def _next_seq(js: Any, stream: str) -> int:
    """The sequence the next message of `stream` gets (1 when there is no stream yet:
    the connector creates it)."""
    try:
        return int((await js.stream_info(stream)).state.last_seq) + 1
    except Exception:
        return 1


async def _drained(js: Any, stream: str, deadline: float) -> dict[str, Any]:
    """Until the archiver consumer of `stream` has nothing pending, or `deadline`."""
    while True:
        try:
            info = await js.consumer_info(stream, "archiver")
        except Exception as exc:
            return {"caught_up": False, "why": f"no archiver consumer: {exc}"}
        if not info.num_pending and not info.num_ack_pending:
            return {"caught_up": True, "ack_floor": info.ack_floor.stream_seq}
        if time.monotonic() >= deadline:
            return {"caught_up": False, "pending": info.num_pending}
        _heartbeat(stream, info.num_pending)
        await asyncio.sleep(DRAIN_POLL)  # the poll interval of a condition
