"""A component whose ordered stop outlasts the activity's heartbeat timeout.

The archiver seals what it holds when it stops, which on a loaded machine can take
longer than the heartbeat timeout of the stop activity. The local runtime's stop
heartbeats while it waits, so Temporal does not time the activity out and retry it
(a retry would find the component gone and report it stopped, hiding how it ended).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from opsfix import config_tree, temporal_server
from temporalio import workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from ssmd.config import Overrides, load_environment
from ssmd.ops.activities import Activities
from ssmd.ops.local import LocalRuntime
from ssmd.up import procs

pytestmark = [pytest.mark.timeout(300), pytest.mark.xdist_group("ops-e2e"), pytest.mark.services]

BEAT_TIMEOUT = timedelta(seconds=4)  # the workflows' is 10 s: a shorter one, for time
STOP_SECONDS = 3.5 * BEAT_TIMEOUT.total_seconds()

# Says it is ready once its SIGTERM handler is in place; on SIGTERM it takes
# STOP_SECONDS to exit, as a component sealing its files would.
SLOW_STOP = f"""
import signal, sys, time
stopping = []
signal.signal(signal.SIGTERM, lambda *_: stopping.append(time.monotonic()))
print("ready", flush=True)
while not stopping:
    signal.pause()
time.sleep({STOP_SECONDS})
"""


@workflow.defn(name="StopOne")
class StopOne:
    @workflow.run
    async def run(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = await workflow.execute_activity(
            "stop_component",
            name,
            start_to_close_timeout=timedelta(seconds=60),
            heartbeat_timeout=BEAT_TIMEOUT,
            retry_policy=RetryPolicy(maximum_attempts=1),
        )
        return result


async def test_a_stop_longer_than_the_heartbeat_timeout_completes_in_one_attempt(
    tmp_path: Path,
) -> None:
    env = load_environment(
        "kalshi-sim", config_tree(tmp_path), Overrides(data_dir=str(tmp_path / "data")), environ={}
    )
    runtime = LocalRuntime(env)
    child = subprocess.Popen(
        [sys.executable, "-c", SLOW_STOP], stdout=subprocess.PIPE, start_new_session=True
    )
    reaped = asyncio.ensure_future(asyncio.to_thread(child.wait))
    try:
        assert child.stdout is not None
        assert await asyncio.to_thread(child.stdout.readline) == b"ready\n"
        record = procs.identity(child.pid)
        assert record is not None
        # The state the runtime keeps of what it started (ssmd.ops.local's module doc).
        runtime.state_path.parent.mkdir(parents=True)
        state = {"boot_id": procs.boot_id(), "processes": {"simulator": record}}
        runtime.state_path.write_text(json.dumps(state))

        async with temporal_server(tmp_path) as address:
            client = await Client.connect(address)
            queue = f"stop-{uuid.uuid4().hex}"
            activities = Activities(env, runtime, client)
            async with Worker(
                client,
                task_queue=queue,
                workflows=[StopOne],
                activities=[activities.stop_component],
                workflow_runner=UnsandboxedWorkflowRunner(),
            ):
                handle = await client.start_workflow(
                    StopOne.run, "simulator", id=f"stop-{uuid.uuid4().hex}", task_queue=queue
                )
                result = await handle.result()
                history = [e async for e in handle.fetch_history_events()]
        assert result["outcome"] == "stopped"
        assert child.returncode == 0, "it exited by itself, not killed"
        started = [
            e.activity_task_started_event_attributes
            for e in history
            if e.HasField("activity_task_started_event_attributes")
        ]
        assert [s.attempt for s in started] == [1], "the activity ran once, with no retry"
        first = history[0].event_time.ToDatetime()
        last = history[-1].event_time.ToDatetime()
        assert (last - first).total_seconds() >= STOP_SECONDS, "the stop outlasted the timeout"
        assert "simulator" not in runtime.read().get("processes", {})
    finally:
        if child.poll() is None:
            child.kill()
        await reaped
        if child.stdout is not None:
            child.stdout.close()
