"""`ssmd tui`'s backend when the operations layer's local runtime runs the components
(what `ssmd ops start` leaves behind, no `ssmd up`): it says so, shows each component's
state and figures, and stops and starts the connector through that runtime (its process
gone, then a new one), the way the TUI's stop and start keys do."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import pytest

from _support import ROOT
from ssmd.config import Overrides, load_environment
from ssmd.exceptions import ActionError
from ssmd.ops.local import LocalRuntime
from ssmd.tui.backend import Backend
from ssmd.up import procs
from ssmd.up.nats import free_port

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow, pytest.mark.xdist_group("tui-e2e")]


async def test_the_tui_stops_and_starts_a_component_of_the_ops_runtime(tmp_path: Path) -> None:
    env = load_environment(
        "kalshi-sim", ROOT / "exchanges", Overrides(data_dir=str(tmp_path / "data")), environ={}
    )
    port = free_port()
    runtime = LocalRuntime(env, gateway_port=port, sim_markets=20)
    backend = Backend(env, gateway_url=f"http://127.0.0.1:{port}")
    try:
        assert backend.supervision().kind == "none"
        await runtime.prepare()
        sync = subprocess.run(
            (await runtime.sync_commands())["kalshi"], capture_output=True, timeout=120
        )
        assert sync.returncode == 0, sync.stderr.decode()[-2000:]
        for name in ("connector", "archiver", "gateway"):
            assert await runtime.start(name) == "started"

        sup = backend.supervision()
        assert sup.kind == "ssmd ops"
        assert {n: s for n, (s, _) in sup.states.items()} == {
            "nats": "running",
            "simulator": "running",
            "connector": "running",
            "archiver": "running",
            "gateway": "running",
        }
        status = await backend.status()
        assert status.health is not None, status.health_error
        first = runtime.read()["processes"]["connector"]

        # The secmaster is not one of the runtime's components: refused, with what is.
        with pytest.raises(ActionError, match="starts and stops connector, archiver, gateway"):
            await backend.control("stop", "secmaster")

        assert await backend.control("stop", "connector") == "connector: stopped"
        assert not procs.is_running(first, procs.boot_id())
        assert backend.supervision().states["connector"] == ("stopped", "")
        assert await backend.control("stop", "connector") == "connector: already stopped"

        assert await backend.control("start", "connector") == "connector: started"
        again = runtime.read()["processes"]["connector"]
        assert again["pid"] != first["pid"] and procs.is_running(again, procs.boot_id())
        # Its figures come from its new process: frames it received, from its /metrics.
        deadline = time.monotonic() + 60
        while True:
            figures = (await backend.status()).figures
            if figures is not None and figures.frames_received > 0:
                break
            assert time.monotonic() < deadline, figures
            await asyncio.sleep(0.2)  # polling the connector's metrics, as the TUI does
    finally:
        await runtime.stop_everything()
        await backend.aclose()  # after the stop: it collects the connector it started
    assert backend.supervision().kind == "none"  # everything stopped: nothing supervises
