"""Bad input: Temporal that does not answer is one line naming the address and how to
run a dev server; an environment naming no Temporal says where to add one."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from opsfix import SSMD

from _support import ROOT
from ssmd.up.nats import free_port

COMMON = ["--env", "kalshi-sim", "--config-dir", str(ROOT / "exchanges")]


def _ssmd(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SSMD_TEMPORAL_ADDRESS"}
    return subprocess.run(
        [SSMD, *args, *COMMON, "--data-dir", str(tmp / "data")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


@pytest.mark.parametrize(
    "command",
    [
        ("ops", "start"),
        ("day", "roll"),
        ("ops", "schedule", "show"),
        ("worker", "run"),
    ],
)
def test_temporal_unreachable_names_the_address_and_the_fix(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    address = f"127.0.0.1:{free_port()}"
    out = _ssmd(tmp_path, *command, "--temporal-address", address)
    assert out.returncode == 2, out.stdout + out.stderr
    assert f"Temporal at {address} does not answer" in out.stderr
    assert "temporal server start-dev" in out.stderr
    assert "Traceback" not in out.stderr


def test_status_shows_the_components_then_the_temporal_error(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    out = _ssmd(tmp_path, "ops", "status", "--temporal-address", address)
    assert out.returncode == 2
    for name in ("connector", "archiver", "gateway"):
        assert name in out.stdout
    assert f"Temporal at {address} does not answer" in out.stderr


def test_an_environment_without_temporal_says_where_to_name_one(tmp_path: Path) -> None:
    out = _ssmd(tmp_path, "ops", "start")
    assert out.returncode == 2
    assert "names no Temporal server (spec.temporal)" in out.stderr
    assert "--temporal-address" in out.stderr
