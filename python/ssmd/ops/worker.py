"""`ssmd worker run`: the Temporal worker of one environment.

It serves the task queue `ssmd-{env}` with the daily workflows and their activities,
on the runtime chosen (local processes or Kubernetes), for every feed the environment
captures. Activities run concurrently
on the worker's event loop; a few at a time is plenty (a day runs one workflow).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Final

from ssmd.ops.activities import Activities
from ssmd.ops.runtime import Runtime
from ssmd.ops.temporal import connect, task_queue
from ssmd.ops.workflows import WORKFLOWS

__all__ = ["make_runtime", "run_worker"]

log = logging.getLogger("ssmd.ops.worker")

MAX_ACTIVITIES: Final = 8


def make_runtime(
    kind: str,
    env: Any,
    *,
    venues: Sequence[Any] = (),
    namespace: str = "default",
    **local: Any,
) -> Runtime:
    """The runtime `kind`: local (`local` are LocalRuntime's options) or kubernetes.
    `venues`: the environment resolved for each of its further venues."""
    if kind == "local":
        from ssmd.ops.local import LocalRuntime

        return LocalRuntime(env, venues=venues, **local)
    if kind == "kubernetes":
        from ssmd.ops.kube import KubernetesRuntime

        return KubernetesRuntime(env, venues=venues, namespace=namespace)
    raise ValueError(f"unknown runtime {kind!r}; expected local or kubernetes")


async def run_worker(
    env: Any, address: str, runtime: Runtime, stop: asyncio.Event, venues: Sequence[Any] = ()
) -> None:
    """Serve until `stop` is set (ConfigError when Temporal does not answer)."""
    from temporalio.worker import Worker

    client = await connect(address, env.temporal_namespace)
    activities = Activities(env, runtime, client, venues)
    worker = Worker(
        client,
        task_queue=task_queue(env.name),
        workflows=WORKFLOWS,
        activities=activities.all(),
        max_concurrent_activities=MAX_ACTIVITIES,
    )
    log.info(
        "worker started",
        extra={"env": env.name, "temporal": address, "task_queue": task_queue(env.name),
               "runtime": runtime.kind},
    )  # fmt: skip
    async with worker:
        await stop.wait()
    log.info("worker stopped", extra={"env": env.name})
