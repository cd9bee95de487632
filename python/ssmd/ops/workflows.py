"""The daily workflows (docs/operations.md). Deterministic: they only order activities.

DailyStartup:  prepare (NATS, simulators) -> secmaster sync -> open the day ->
               connectors -> archivers -> gateway -> wait until data flows end to end
DailyTeardown: drain the gateway -> stop the connectors (they drain to NATS) -> wait
               until the archivers consumed the streams -> stop the archivers (they
               seal and write manifests) -> verify the archive, close the day

An environment that captures several venues has a connector and an archiver per
feed (the `components` activity names them) and one gateway.
SecmasterSync: prepare (as DailyStartup), then one secmaster sync
DayRoll:       DailyTeardown, then DailyStartup

Activities are named, not imported, so this module loads in Temporal's workflow
sandbox without the activities' dependencies.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from temporalio import workflow
from temporalio.common import RetryPolicy

__all__ = [
    "WORKFLOWS",
    "DailyStartup",
    "DailyTeardown",
    "DayRoll",
    "SecmasterSync",
    "StartupInput",
    "TeardownInput",
]

RETRY: Final = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=3,
    non_retryable_error_types=["ConfigError"],
)
HEARTBEAT: Final = timedelta(seconds=10)  # a killed worker's activity is retried after this


@dataclass
class StartupInput:
    flow_timeout_s: float = 300.0  # how long data may take to flow end to end


@dataclass
class TeardownInput:
    drain_timeout_s: float = 60.0  # how long the archiver may take to consume the stream
    startup_wait_s: float = 900.0  # how long a running DailyStartup is waited for


async def _act(name: str, *args: Any, timeout_s: float, heartbeat: bool = True) -> Any:
    return await workflow.execute_activity(
        name,
        args=list(args),
        start_to_close_timeout=timedelta(seconds=timeout_s),
        heartbeat_timeout=HEARTBEAT if heartbeat else None,
        retry_policy=RETRY,
    )


@workflow.defn(name="DailyStartup")
class DailyStartup:
    def __init__(self) -> None:
        self.step = "starting"

    @workflow.query
    def current_step(self) -> str:
        return self.step

    @workflow.run
    async def run(self, options: StartupInput) -> dict[str, Any]:
        out: dict[str, Any] = {}
        self.step = "prepare"
        out["prepare"] = await _act("prepare", timeout_s=120)
        self.step = "sync_secmaster"
        out["secmaster"] = await _act("sync_secmaster", timeout_s=330)
        self.step = "open_day"
        # The run id, not the workflow id: a manual startup reuses its id every day.
        day = await _act("open_day", workflow.info().run_id, timeout_s=60, heartbeat=False)
        out["day"] = day["id"]
        names = await _act("components", timeout_s=30, heartbeat=False)
        for name in [*names["connector"], *names["archiver"], *names["gateway"]]:
            self.step = f"start {name}"
            out[name] = await _act("start_component", name, timeout_s=360)
        self.step = "wait_flowing"
        out["flow"] = await _act(
            "wait_flowing", options.flow_timeout_s, timeout_s=options.flow_timeout_s + 30
        )
        self.step = "done"
        return out


@workflow.defn(name="DailyTeardown")
class DailyTeardown:
    def __init__(self) -> None:
        self.step = "starting"

    @workflow.query
    def current_step(self) -> str:
        return self.step

    @workflow.run
    async def run(self, options: TeardownInput) -> dict[str, Any]:
        out: dict[str, Any] = {}
        self.step = "wait for startups"
        out["startups"] = await _act(
            "wait_startups", options.startup_wait_s, timeout_s=options.startup_wait_s + 30
        )
        names = await _act("components", timeout_s=30, heartbeat=False)
        stopped_at = 0.0
        for name in [*names["gateway"], *names["connector"]]:
            self.step = f"stop {name}"
            out[name] = await _act("stop_component", name, timeout_s=60)
            stopped_at = out[name]["at"]  # the last connector's stop
        self.step = "wait_archived"
        out["drain"] = await _act(
            "wait_archived", options.drain_timeout_s, timeout_s=options.drain_timeout_s + 30
        )
        for name in names["archiver"]:
            self.step = f"stop {name}"
            out[name] = await _act("stop_component", name, timeout_s=60)
        self.step = "close_day"
        out["day"] = await _act("close_day", stopped_at, timeout_s=600)
        self.step = "done"
        return out


@workflow.defn(name="SecmasterSync")
class SecmasterSync:
    @workflow.run
    async def run(self) -> dict[str, Any]:
        # The sync needs NATS (its journal) and the exchange: for a simulator
        # environment on the local runtime, both are started by `prepare`.
        await _act("prepare", timeout_s=120)
        result: dict[str, Any] = await _act("sync_secmaster", timeout_s=330)
        return result


@workflow.defn(name="DayRoll")
class DayRoll:
    @workflow.run
    async def run(self, startup: StartupInput, teardown: TeardownInput) -> dict[str, Any]:
        wid = workflow.info().workflow_id
        ended = await workflow.execute_child_workflow(
            DailyTeardown.run, teardown, id=f"{wid}-teardown"
        )
        started = await workflow.execute_child_workflow(
            DailyStartup.run, startup, id=f"{wid}-startup"
        )
        return {"teardown": ended, "startup": started}


WORKFLOWS: Final = [DailyStartup, DailyTeardown, SecmasterSync, DayRoll]
