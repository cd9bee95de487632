"""A worker killed with SIGKILL in the middle of DailyStartup: a new worker resumes the
workflow, the components the dead one started keep running and none starts twice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from opsfix import Ops, alive, temporal_server, until

from ssmd.ops.control import trigger
from ssmd.ops.temporal import connect

pytestmark = [pytest.mark.timeout(420), pytest.mark.xdist_group("ops-e2e"), pytest.mark.services]


async def test_worker_killed_mid_startup_resumes_without_starting_anything_twice(
    tmp_path: Path,
) -> None:
    async with temporal_server(tmp_path) as address:
        ops = Ops(tmp_path, address)
        before: dict[str, object] = {"processes": {}}
        try:
            ops.start_worker()
            client = await connect(address)
            handle = await trigger(client, "kalshi-sim", "startup")
            # Killed while the archiver starts: the connector is up, the workflow is not done.
            await until(
                lambda: "archiver" in ops.state().get("processes", {}),
                240,
                "the archiver's process to be started",
            )
            before = ops.state()
            ops.kill_worker()
            started = ops.state()["processes"]
            assert {"nats", "simulator", "connector", "archiver"} <= set(started)
            assert all(alive(r["pid"]) for r in started.values()), "components died with the worker"

            ops.start_worker()
            result = await handle.result()

            after = ops.state()
            for name, record in started.items():  # the same processes: nothing started twice
                assert after["processes"][name] == record, name
                assert after["started"][name] == ops_started(before)[name], name
            assert result["archiver"] in ("started", "already running")
            assert result["gateway"] == "started"
            assert result["flow"]["records_archived"] > 0
            # The retried activity found the archiver the killed worker had started.
            desc = await handle.fetch_history()
            attempts = [
                e.activity_task_started_event_attributes.attempt
                for e in desc.events
                if e.HasField("activity_task_started_event_attributes")
            ]
            assert max(attempts) >= 2, "no activity was retried after the kill"
            status = ops.run("ops", "status", "--json")
            assert status.returncode == 0, status.stderr
            states = {c["name"]: c["state"] for c in json.loads(status.stdout)["components"]}
            assert states == {
                "nats": "running",
                "simulator": "running",
                "connector": "running",
                "archiver": "running",
                "gateway": "running",
            }

            # DayRoll: the day ends (verified) and the next one starts, on the same date.
            rolled = ops.run("day", "roll", "--json")
            assert rolled.returncode == 0, (rolled.returncode, rolled.stderr, rolled.stdout[-2000:])
            history = ops.run("day", "history", "--json", temporal=False)
            second, first = json.loads(history.stdout)
            assert first["state"] == "ended" and first["verification"]["ok"]
            assert second["state"] == "started" and second["id"] == first["id"] + "#2"
            assert second["first_seq"] > first["first_seq"]
            assert ops.state()["processes"]["connector"] != started["connector"]  # a new one
        finally:
            ops.down()
        assert not any(alive(r["pid"]) for r in ops_processes(before))


def ops_started(state: dict[str, object]) -> dict[str, float]:
    started = state.get("started")
    assert isinstance(started, dict)
    return started


def ops_processes(state: dict[str, object]) -> list[dict[str, int]]:
    processes = state.get("processes")
    assert isinstance(processes, dict)
    return list(processes.values())
