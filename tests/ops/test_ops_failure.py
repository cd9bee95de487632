"""A failed activity shows in `ssmd ops status`: the component, its error with its last
log lines, and the failed workflow with the cause."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from opsfix import Ops, temporal_server

pytestmark = [pytest.mark.timeout(420), pytest.mark.xdist_group("ops-e2e"), pytest.mark.services]


async def test_a_gateway_that_cannot_listen_fails_the_startup_and_shows_in_status(
    tmp_path: Path,
) -> None:
    async with temporal_server(tmp_path) as address:
        ops = Ops(tmp_path, address)
        with socket.create_server(("127.0.0.1", ops.gateway_port)):  # the port is taken
            try:
                ops.start_worker()
                out = ops.run("ops", "start", "--json")
                assert out.returncode == 1, out.stdout + out.stderr
                result = json.loads(out.stdout)
                assert result["outcome"] == "failed"
                assert "gateway" in result["result"]

                status = ops.run("ops", "status", "--json")
                assert status.returncode == 0, status.stderr
                report = json.loads(status.stdout)
                states = {c["name"]: c for c in report["components"]}
                assert states["gateway"]["state"] == "failed"
                assert "gateway exited while starting" in states["gateway"]["last_error"]
                assert states["connector"]["state"] == states["archiver"]["state"] == "running"
                assert states["connector"]["last_error"] is None
                failure = report["failures"][0]
                assert failure["workflow"] == "DailyStartup"
                assert "gateway exited while starting" in failure["error"]
                table = ops.run("ops", "status")
                assert "gateway exited while starting" in table.stdout
            finally:
                ops.down()
