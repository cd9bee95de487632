"""The day's cycle on a schedule: the environment's schedule (startup at T, teardown at
T+60 s) becomes Temporal Schedules; the worker starts the system against the simulator,
it captures, tears down, verifies, and `ssmd day history` shows the day's figures."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
import orjson
import pytest
from opsfix import Ops, config_tree, temporal_server, until

pytestmark = [pytest.mark.timeout(480), pytest.mark.xdist_group("ops-e2e"), pytest.mark.services]


def _clock(t: datetime) -> str:
    return t.strftime("%H:%M:%S")


async def test_scheduled_day_starts_captures_tears_down_and_is_recorded(tmp_path: Path) -> None:
    async with temporal_server(tmp_path) as address:
        # Far enough ahead that the three commands below run before it, also on a loaded
        # machine (at 20 s, one under a load of 11 found the next start a day later).
        start = (datetime.now(UTC) + timedelta(seconds=40)).replace(microsecond=0)
        end = start + timedelta(seconds=60)
        config = config_tree(
            tmp_path, {"timezone": "UTC", "startup": _clock(start), "teardown": _clock(end)}
        )
        ops = Ops(tmp_path, address, config)
        try:
            applied = ops.run("ops", "schedule", "apply", "--json")
            assert applied.returncode == 0, applied.stderr
            assert json.loads(applied.stdout) == {
                "startup": "created",
                "teardown": "created",
                "secmaster": "created",
            }
            again = ops.run("ops", "schedule", "apply", "--json")
            assert set(json.loads(again.stdout).values()) == {"updated"}
            shown = ops.run("ops", "schedule", "show", "--json")
            assert shown.returncode == 0, shown.stderr
            nxt = {r["kind"]: r["next"][0] for r in json.loads(shown.stdout)}
            assert datetime.fromisoformat(nxt["startup"]) == start
            assert datetime.fromisoformat(nxt["teardown"]) == end

            ops.start_worker()

            def ended() -> dict[str, object] | None:
                out = ops.run("day", "history", "--json", temporal=False)
                if out.returncode != 0:
                    return None
                days = json.loads(out.stdout)
                return days[0] if days and days[0]["state"] in ("ended", "failed") else None

            day = await until(ended, 360, "the scheduled day to end", every=2.0)
            assert day["state"] == "ended", day["verification"]
            verification = day["verification"]
            assert verification["ok"] and verification["gaps_final"]
            assert verification["acked_checked"] > 0 and verification["missing"] == 0
            assert day["records"] == verification["acked_messages"] > verification["acked_checked"]
            assert day["quality_score"] is not None
            assert day["started_at"] >= start.strftime("%Y-%m-%dT%H:%M:%S")
            assert day["ended_at"] >= end.strftime("%Y-%m-%dT%H:%M:%S")

            table = ops.run("day", "history", temporal=False)
            assert day["id"] in table.stdout and "ok" in table.stdout

            # The day's changes went to the journal; the last one is the summary.
            nc = await nats.connect(ops.state()["nats_url"])
            try:
                msg = await nc.jetstream().get_last_msg(
                    "SSMD_KALSHI_SIM_JOURNAL", "kalshi-sim.journal.day"
                )
            finally:
                await nc.close()
            summary = orjson.loads(msg.data)
            assert summary["id"] == day["id"] and summary["state"] == "ended"
            assert summary["records"] == day["records"]

            # The secmaster's own schedule (every symbols.sync_interval, 1m) ran meanwhile.
            shown = ops.run("ops", "schedule", "show", "--json")
            rows = {r["kind"]: r for r in json.loads(shown.stdout)}
            assert rows["secmaster"]["last_run"] is not None

            status = ops.run("ops", "status", "--json")
            states = {c["name"]: c["state"] for c in json.loads(status.stdout)["components"]}
            assert states["connector"] == states["archiver"] == states["gateway"] == "stopped"
        finally:
            ops.down()
