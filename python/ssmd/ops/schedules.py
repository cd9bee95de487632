"""The environment's `schedule` as Temporal Schedules.

    schedule:
      timezone: America/New_York
      startup: "08:55"        # DailyStartup every day at this time ("HH:MM" or "HH:MM:SS")
      teardown: "17:05"       # DailyTeardown

gives the schedules `ssmd-{env}-startup` and `ssmd-{env}-teardown` (calendar times in
that zone), plus `ssmd-{env}-secmaster`, a SecmasterSync every `symbols.sync_interval`.
A run that comes while the previous run of the same schedule still runs is skipped
(overlap SKIP). `apply` creates what is missing, updates what exists, and deletes the
startup and teardown schedules when the environment no longer names those times
(absent = the system runs continuously: nothing is started or stopped by the clock).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final

from ssmd.ops.control import workflow_args, workflow_id
from ssmd.ops.temporal import task_queue

__all__ = ["apply", "desired", "schedule_id", "show"]

KINDS: Final = ("startup", "teardown", "secmaster")


def schedule_id(env: str, kind: str) -> str:
    return f"ssmd-{env}-{kind}"


def _clock(text: str) -> tuple[int, int, int]:
    parts = [int(p) for p in text.split(":")]
    return parts[0], parts[1], parts[2] if len(parts) > 2 else 0


def desired(env: Any) -> dict[str, Any]:
    """kind -> temporalio Schedule for what the environment says (absent kinds: None)."""
    from temporalio.client import (
        Schedule,
        ScheduleActionStartWorkflow,
        ScheduleCalendarSpec,
        ScheduleIntervalSpec,
        SchedulePolicy,
        ScheduleRange,
        ScheduleSpec,
    )
    from temporalio.client import ScheduleOverlapPolicy as Overlap

    from ssmd.config import parse_duration

    def schedule(kind: str, spec: ScheduleSpec) -> Schedule:
        run, args = workflow_args(kind)
        return Schedule(
            action=ScheduleActionStartWorkflow(
                run, args=args, id=workflow_id(env.name, kind), task_queue=task_queue(env.name)
            ),
            spec=spec,
            policy=SchedulePolicy(overlap=Overlap.SKIP),
        )

    out: dict[str, Any] = {}
    for kind in ("startup", "teardown"):
        at = getattr(env.schedule, kind)
        if at is None:
            out[kind] = None
            continue
        h, m, s = _clock(at)
        calendar = ScheduleCalendarSpec(
            hour=[ScheduleRange(h)], minute=[ScheduleRange(m)], second=[ScheduleRange(s)]
        )
        out[kind] = schedule(
            kind, ScheduleSpec(calendars=[calendar], time_zone_name=env.schedule.timezone)
        )
    every = parse_duration(env.symbols.sync_interval)
    out["secmaster"] = schedule(
        "secmaster",
        ScheduleSpec(intervals=[ScheduleIntervalSpec(every=max(every, timedelta(minutes=1)))]),
    )
    return out


async def apply(client: Any, env: Any) -> dict[str, str]:
    """Create, update or delete each schedule; kind -> what was done."""
    from temporalio.client import ScheduleUpdate
    from temporalio.service import RPCError, RPCStatusCode

    done: dict[str, str] = {}
    for kind, wanted in desired(env).items():
        handle = client.get_schedule_handle(schedule_id(env.name, kind))
        try:
            await handle.describe()
            exists = True
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            exists = False
        if wanted is None:
            if exists:
                await handle.delete()
                done[kind] = "deleted"
            else:
                done[kind] = "none"
            continue
        if exists:

            def replace(_input: Any, schedule: Any = wanted) -> ScheduleUpdate:
                return ScheduleUpdate(schedule=schedule)

            await handle.update(replace)
            done[kind] = "updated"
        else:
            await client.create_schedule(schedule_id(env.name, kind), wanted)
            done[kind] = "created"
    return done


async def show(client: Any, env: Any, upcoming: int = 3) -> list[dict[str, Any]]:
    """Each schedule of the environment with its next run times (in its time zone)."""
    from zoneinfo import ZoneInfo

    from temporalio.service import RPCError, RPCStatusCode

    tz = ZoneInfo(env.schedule.timezone)
    rows: list[dict[str, Any]] = []
    for kind in KINDS:
        sid = schedule_id(env.name, kind)
        try:
            desc = await client.get_schedule_handle(sid).describe()
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            rows.append({"schedule": sid, "kind": kind, "exists": False, "next": []})
            continue
        nxt: list[datetime] = list(desc.info.next_action_times)[:upcoming]
        recent = desc.info.recent_actions[-1] if desc.info.recent_actions else None
        rows.append(
            {
                "schedule": sid,
                "kind": kind,
                "exists": True,
                "paused": desc.schedule.state.paused,
                "next": [t.astimezone(tz).isoformat() for t in nxt],
                "last_run": recent.started_at.astimezone(tz).isoformat() if recent else None,
            }
        )
    return rows
