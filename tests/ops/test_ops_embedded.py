"""`temporal: embedded`: `ssmd up` runs the Temporal dev server for the environment
(on $SSMD_TEMPORAL_ADDRESS when set), `ssmd ops` reaches it, and the ordered stop
stops it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml
from opsfix import SSMD, config_tree, temporal_available

from _support import ROOT
from _support.upfix import UpProcess
from ssmd.config import Overrides, load_environment
from ssmd.ops.temporal import connect
from ssmd.up.nats import free_port

pytestmark = [pytest.mark.timeout(300), pytest.mark.xdist_group("up-e2e"), pytest.mark.services]


def _embedded(tmp: Path) -> Path:
    tree = config_tree(tmp)
    path = tree / "environments" / "kalshi-sim.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["spec"]["temporal"] = "embedded"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return tree


def test_embedded_resolves_to_the_dev_servers_address(tmp_path: Path) -> None:
    tree = _embedded(tmp_path)
    env = load_environment("kalshi-sim", tree, Overrides(data_dir=str(tmp_path)), environ={})
    assert env.temporal_embedded and env.temporal_address == "127.0.0.1:7233"
    moved = load_environment(
        "kalshi-sim",
        tree,
        Overrides(data_dir=str(tmp_path)),
        environ={"SSMD_TEMPORAL_ADDRESS": "127.0.0.1:17233"},
    )
    assert moved.temporal_address == "127.0.0.1:17233"
    plain = load_environment(
        "kalshi-sim", ROOT / "exchanges", Overrides(data_dir=str(tmp_path)), environ={}
    )
    assert not plain.temporal_embedded and plain.temporal_address is None


async def test_ssmd_up_runs_the_dev_server_and_stops_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    temporal_available()
    tree = _embedded(tmp_path)
    address = f"127.0.0.1:{free_port()}"
    monkeypatch.setenv("SSMD_TEMPORAL_ADDRESS", address)
    up = UpProcess(tmp_path / "data", free_port(), "--config-dir", str(tree))
    async with httpx.AsyncClient(timeout=5) as http:
        await up.start()
        try:
            await up.wait_ready(http, timeout=180)
            assert "temporal" in up.children
            await connect(address)  # it answers a client
            shown = subprocess.run(
                [SSMD, "ops", "schedule", "show", "--env", "kalshi-sim", "--config-dir", str(tree),
                 "--json"],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert shown.returncode == 0, shown.stderr
            assert {r["kind"] for r in json.loads(shown.stdout)} == {
                "startup",
                "teardown",
                "secmaster",
            }
            assert await up.stop() == 0, up.tail()
        finally:
            await up.ensure_gone()
    stopped = [r["component"] for r in up.find("component stopped")]
    assert "temporal" in stopped
    assert (tmp_path / "data" / "temporal" / "dev.db").exists()
