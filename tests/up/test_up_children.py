"""Child processes of `ssmd up`: readiness, the restart policy, bounded stops, the stop order."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from _support.upfix import RecordingDisplay, child_spec
from ssmd.config import LocalStore
from ssmd.exceptions import ChildFailed
from ssmd.testing import until
from ssmd.up import procs
from ssmd.up.children import Supervisor
from ssmd.up.run import Up, UpOptions


def _supervisor(display: RecordingDisplay, **kw: Any) -> Supervisor:
    return Supervisor(display.event, display.child_line, backoff=0.01, **kw)


async def test_a_child_that_crashes_is_restarted_and_reported(tmp_path: Path) -> None:
    display = RecordingDisplay()
    sup = _supervisor(display)
    child = await sup.launch(child_spec(tmp_path, "connector", sup, code=1))
    first = child.pid
    child.signal(signal.SIGUSR1)  # it exits with code 1: a crash
    await until(lambda: "component restarted" in display.messages(), 20, "the restart")
    crash = next(f for _, m, f in display.events if m.startswith("component exited"))
    assert crash["component"] == "connector" and crash["exit_code"] == 1
    assert child.starts == 2 and child.running and child.pid != first
    assert not sup.failed.is_set()
    assert sup.restarted == {"connector": 1}
    # Its output went to its log file, across both runs.
    assert (tmp_path / "logs" / "connector.log").read_text().count('"msg":"ready"') == 2
    result = await sup.stop("connector")
    assert result is not None and result.returncode == 0 and not result.killed


@pytest.mark.parametrize("code", [2, 3])
async def test_a_configuration_or_auth_exit_code_stops_everything(
    tmp_path: Path, code: int
) -> None:
    display = RecordingDisplay()
    sup = _supervisor(display)
    child = await sup.launch(child_spec(tmp_path, "archiver", sup, code=code))
    child.signal(signal.SIGUSR1)
    await until(sup.failed.is_set, 20, "the failure")
    assert sup.failure is not None and sup.failure.name == "archiver"
    assert f"exited with code {code}" in sup.failure.why
    assert child.starts == 1  # a restart cannot fix a bad configuration
    level, msg, _ = display.events[-1]
    assert level == "error" and "stopping everything" in msg


async def test_too_many_restarts_are_fatal(tmp_path: Path) -> None:
    display = RecordingDisplay()
    sup = _supervisor(display, max_restarts=2)
    child = await sup.launch(child_spec(tmp_path, "gateway", sup, code=1))
    for n in (1, 2, 3):
        # Each run is signalled once the supervisor has seen it ready.
        await until(
            lambda n=n: display.messages().count("component restarted") == n - 1,
            20,
            f"run {n} ready",
        )
        child.signal(signal.SIGUSR1)
    await until(sup.failed.is_set, 20, "the failure")
    assert child.starts == 3
    assert sup.failure is not None and "after 2 restarts" in sup.failure.why


async def test_a_child_that_exits_while_starting_fails_with_its_last_lines(
    tmp_path: Path,
) -> None:
    sup = _supervisor(RecordingDisplay())
    with pytest.raises(ChildFailed) as info:
        await sup.launch(child_spec(tmp_path, "connector", sup, "boom"))
    assert "exited with code 3 while starting" in info.value.why
    assert any("boom: cannot start" in line for line in info.value.tail)


async def test_a_child_that_ignores_sigterm_is_killed_in_bounded_time(tmp_path: Path) -> None:
    display = RecordingDisplay()
    sup = _supervisor(display)
    await sup.launch(child_spec(tmp_path, "archiver", sup, "stubborn", stop_timeout=0.5))
    result = await sup.stop("archiver")
    assert result is not None and result.killed
    assert result.returncode == -signal.SIGKILL
    assert result.seconds < 5
    assert ("error", "component killed: it did not exit in time") in [
        (lvl, m) for lvl, m, _ in display.events
    ]


class _FakeSim:
    def __init__(self, out: Path) -> None:
        self.out = out

    async def __aexit__(self, *exc: object) -> None:
        with (self.out / "stopped").open("a") as fh:
            fh.write("simulator\n")


async def test_shutdown_stops_components_in_order(tmp_path: Path) -> None:
    """connector, archiver, gateway, secmaster, simulator, nats; a stuck one is killed."""
    env = SimpleNamespace(
        name="kalshi-sim",
        extra_feed=None,
        feeds=("kalshi",),
        data_dir=tmp_path / "data",
        nats=SimpleNamespace(url="nats://127.0.0.1:1", stream="SSMD_KALSHI_SIM"),
        raw_store=LocalStore(tmp_path / "data" / "raw"),
        normalized_store=LocalStore(tmp_path / "data" / "normalized"),
    )
    display = RecordingDisplay()
    up = Up(env, UpOptions(), display)
    up.supervisor = sup = _supervisor(display)
    # Started in the start order; the gateway will not stop on SIGTERM.
    for name in ("nats", "connector", "archiver", "secmaster", "gateway"):
        mode = "stubborn" if name == "gateway" else "ok"
        await sup.launch(child_spec(tmp_path, name, sup, mode, stop_timeout=1.0))
    up.sim = _FakeSim(tmp_path)
    report = await up._shutdown()
    stopped = (tmp_path / "stopped").read_text().split()
    assert stopped == ["connector", "archiver", "secmaster", "simulator", "nats"]
    by_name = {s.name: s for s in up.stops}
    assert [s.name for s in up.stops] == ["connector", "archiver", "gateway", "secmaster", "nats"]
    assert by_name["gateway"].killed and not by_name["connector"].killed
    assert report is not None and report.rows == []  # nothing was archived
    assert not any(c.running for c in sup.children.values())


async def test_processes_left_by_a_killed_run_are_stopped_and_others_are_not(
    tmp_path: Path,
) -> None:
    pause = [sys.executable, "-c", "import signal; signal.pause()"]
    left = subprocess.Popen(pause)
    frozen = subprocess.Popen(pause)  # stopped: it would never act on SIGTERM alone
    reused = subprocess.Popen(pause)  # its pid, recorded with another start: not ours
    other_boot = subprocess.Popen(pause)
    try:
        frozen.send_signal(signal.SIGSTOP)
        env = SimpleNamespace(name="kalshi-sim", data_dir=tmp_path, nats=SimpleNamespace(url="x"))
        display = RecordingDisplay()
        up = Up(env, UpOptions(stop_timeout=10.0), display)
        ticks = {p.pid: procs.start_ticks(p.pid) for p in (left, frozen, reused, other_boot)}
        assert all(isinstance(t, int) for t in ticks.values())
        previous = {
            "boot_id": procs.boot_id(),
            "children": {
                "connector": {"pid": left.pid, "start": ticks[left.pid]},
                "archiver": {"pid": frozen.pid, "start": ticks[frozen.pid]},
                "gateway": {"pid": reused.pid, "start": ticks[reused.pid] - 1},  # type: ignore[operator]
            },
        }
        await up._stop_leftovers(previous)
        assert left.wait(10) == -signal.SIGTERM
        assert frozen.wait(10) == -signal.SIGTERM
        assert reused.poll() is None  # same pid, another process: never signalled
        stopped = [f["component"] for _, m, f in display.events if "left by" in m]
        assert stopped == ["connector", "archiver"]
        # A state file from another boot names no process of this one.
        await up._stop_leftovers(
            {
                "boot_id": "another-boot",
                "children": {"nats": {"pid": other_boot.pid, "start": ticks[other_boot.pid]}},
            }
        )
        assert other_boot.poll() is None
    finally:
        for p in (left, frozen, reused, other_boot):
            p.kill()
            p.wait()


async def test_every_failed_component_is_named_and_a_clean_stop_is_not(tmp_path: Path) -> None:
    """A crash that a restart repaired, and a non-zero exit at the stop, are failures."""
    env = SimpleNamespace(
        name="kalshi-sim",
        extra_feed=None,
        feeds=("kalshi",),
        data_dir=tmp_path / "data",
        nats=SimpleNamespace(url="nats://127.0.0.1:1", stream="SSMD_KALSHI_SIM"),
        raw_store=LocalStore(tmp_path / "data" / "raw"),
        normalized_store=LocalStore(tmp_path / "data" / "normalized"),
    )
    display = RecordingDisplay()
    up = Up(env, UpOptions(), display)
    up.supervisor = sup = _supervisor(display)
    await sup.launch(child_spec(tmp_path, "nats", sup))
    connector = await sup.launch(child_spec(tmp_path, "connector", sup, code=1))
    await sup.launch(child_spec(tmp_path, "archiver", sup, "badstop", code=3))
    await sup.launch(child_spec(tmp_path, "gateway", sup))
    assert up._failures(None) == []
    connector.signal(signal.SIGUSR1)  # a crash, then a restart
    await until(lambda: "component restarted" in display.messages(), 20, "the restart")
    await up._shutdown()
    assert up._failures(None) == [
        "connector exited 1 time(s) while running (exit codes 1; restarted)",
        "archiver exited with code 3 when stopped",
    ]
