"""What `ssmd ops` asks Temporal: start a workflow, and what is running or failed.

Workflow ids: `ssmd-{env}-{kind}` (startup, teardown, roll, secmaster) for a manual
run; a schedule's runs get Temporal's suffix of the scheduled time. A second manual
run of a kind while one runs is refused by Temporal (one id runs at most once).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final

from ssmd.ops.temporal import task_queue
from ssmd.ops.workflows import (
    DailyStartup,
    DailyTeardown,
    DayRoll,
    SecmasterSync,
    StartupInput,
    TeardownInput,
)

__all__ = ["KINDS", "recent_failures", "running", "trigger", "workflow_id"]

KINDS: Final = {
    "startup": "DailyStartup",
    "teardown": "DailyTeardown",
    "roll": "DayRoll",
    "secmaster": "SecmasterSync",
}
RUN_TIMEOUT: Final = timedelta(hours=2)  # a day's workflow that hangs is ended


def workflow_id(env: str, kind: str) -> str:
    return f"ssmd-{env}-{kind}"


def workflow_args(kind: str) -> tuple[Any, list[Any]]:
    """The workflow's run method and its arguments (the defaults)."""
    if kind == "startup":
        return DailyStartup.run, [StartupInput()]
    if kind == "teardown":
        return DailyTeardown.run, [TeardownInput()]
    if kind == "roll":
        return DayRoll.run, [StartupInput(), TeardownInput()]
    if kind == "secmaster":
        return SecmasterSync.run, []
    raise ValueError(f"unknown workflow kind {kind!r}; expected one of {sorted(KINDS)}")


async def trigger(client: Any, env: str, kind: str) -> Any:
    """Start the workflow `kind` for `env`; its handle."""
    run, args = workflow_args(kind)
    return await client.start_workflow(
        run,
        args=args,
        id=workflow_id(env, kind),
        task_queue=task_queue(env),
        execution_timeout=RUN_TIMEOUT,
    )


async def running(client: Any, env: str) -> list[dict[str, Any]]:
    """The workflows of `env` in progress: kind, id, step, and each pending activity's
    attempt and last failure."""
    query = f'TaskQueue = "{task_queue(env)}" AND ExecutionStatus = "Running"'
    out = []
    async for wf in client.list_workflows(query):
        handle = client.get_workflow_handle(wf.id, run_id=wf.run_id)
        desc = await handle.describe()
        pending = [
            {
                "activity": a.activity_type.name,
                "attempt": a.attempt,
                "last_failure": a.last_failure.message or None
                if a.HasField("last_failure")
                else None,
            }
            for a in desc.raw_description.pending_activities
        ]
        step = None
        if wf.workflow_type in ("DailyStartup", "DailyTeardown"):
            try:
                step = await handle.query("current_step")
            except Exception:
                step = None  # no worker answers queries right now
        out.append(
            {
                "workflow": wf.workflow_type,
                "id": wf.id,
                "started": wf.start_time.isoformat() if wf.start_time else None,
                "step": step,
                "pending": pending,
            }
        )
    return out


async def recent_failures(client: Any, env: str, limit: int = 3) -> list[dict[str, Any]]:
    """The newest failed workflows of `env` and why each failed."""
    from temporalio.client import WorkflowFailureError

    query = f'TaskQueue = "{task_queue(env)}" AND ExecutionStatus = "Failed"'
    out: list[dict[str, Any]] = []
    async for wf in client.list_workflows(query, limit=limit):
        handle = client.get_workflow_handle(wf.id, run_id=wf.run_id)
        why = "failed"
        try:
            await handle.result()
        except WorkflowFailureError as exc:
            cause: Any = exc.cause
            while getattr(cause, "cause", None) is not None:
                cause = cause.cause
            why = str(cause) if cause is not None else str(exc)
        out.append(
            {
                "workflow": wf.workflow_type,
                "id": wf.id,
                "closed": wf.close_time.isoformat() if wf.close_time else None,
                "error": why,
            }
        )
    return out
